"""Errors of one (log, frame, future step) of the 4D occupancy forecasting benchmark (SPEC s. 5).

With ground-truth depths d, predicted depths d_hat, origins o and unit directions u (up_lidar
frame of t = 0)::

    L1     = mean |d - d_hat|                                   (m)
    AbsRel = mean |d - d_hat| / d                               (fraction; x 100 for %)
    CD     = squared Chamfer distance of P = o + u d and P_hat = o + u d_hat   (m^2)
    NFCD   = CD of the points of each cloud inside the near-field box (0 if one side is empty)

Variant ``clamp_to_box`` (the paper's): before L1 and AbsRel both depths are clamped to the
distance where the ray leaves the near-field box; CD and NFCD are unchanged.
"""
from typing import Dict, Sequence

import torch

from gasp_ops import ray_box_intersection
from .chamfer import DEFAULT_CHUNK, chamfer_distance_squared
from .occ_forecasting_protocol import NEAR_FIELD_RANGE

METRIC_NAMES = ('L1', 'AbsRel', 'CD', 'NFCD')


def inside_range(points: torch.Tensor, point_cloud_range: Sequence[float]) -> torch.Tensor:
    """(N,) mask of points inside the closed box (x_min, y_min, z_min, x_max, y_max, z_max)."""
    lower = points.new_tensor(point_cloud_range[:3])
    upper = points.new_tensor(point_cloud_range[3:])
    return ((points >= lower) & (points <= upper)).all(dim=1)


def clamp_depths_to_box(origins: torch.Tensor, directions: torch.Tensor, depths: torch.Tensor,
                        point_cloud_range: Sequence[float]) -> torch.Tensor:
    """(R,) depths clamped to the distance where each ray leaves the box (origins inside)."""
    _, exit_distance = ray_box_intersection(origins, directions, point_cloud_range)
    return torch.minimum(depths, exit_distance.clamp(min=0))


def occ_forecasting_step_errors(origins: torch.Tensor,
                                directions: torch.Tensor,
                                gt_depths: torch.Tensor,
                                pred_depths: torch.Tensor,
                                near_field_range: Sequence[float] = NEAR_FIELD_RANGE,
                                clamp_to_box: bool = False,
                                chunk: int = DEFAULT_CHUNK,
                                chamfer_backend: str = 'auto') -> Dict[str, float]:
    """L1, AbsRel, CD and NFCD of one set of query rays.

    Args:
        origins: (R, 3) ray origins (m), or (3,) shared by all rays.
        directions: (R, 3) unit directions.
        gt_depths: (R,) measured depths (m), > 0.
        pred_depths: (R,) predicted expected depths (m).
        near_field_range: NFCD box (and clamping box), up_lidar frame at t = 0.
        clamp_to_box: the paper's variant (clamp both depths to the box before L1/AbsRel).
        chunk: queries per cdist call of the Chamfer distance.
        chamfer_backend: nearest-neighbour search of the Chamfer distance ('auto': KD-tree on
            CPU, chunked cdist on GPU; both exact).

    Returns:
        dict with ``L1`` (m), ``AbsRel`` (fraction), ``CD`` and ``NFCD`` (m^2), ``num_rays``.
    """
    if gt_depths.shape != pred_depths.shape or directions.shape != gt_depths.shape + (3, ):
        raise ValueError('occ_forecasting_step_errors: expected directions (R, 3) and depths '
                         f'(R,), got {tuple(directions.shape)}, {tuple(gt_depths.shape)} and '
                         f'{tuple(pred_depths.shape)}')
    origins = origins.expand_as(directions)
    gt_cloud = origins + directions * gt_depths[:, None]
    pred_cloud = origins + directions * pred_depths[:, None]
    gt_d, pred_d = gt_depths.double(), pred_depths.double()
    if clamp_to_box:
        gt_d = clamp_depths_to_box(origins.double(), directions.double(), gt_d, near_field_range)
        pred_d = clamp_depths_to_box(origins.double(), directions.double(), pred_d,
                                     near_field_range)
    error = (gt_d - pred_d).abs()
    gt_near = gt_cloud[inside_range(gt_cloud, near_field_range)]
    pred_near = pred_cloud[inside_range(pred_cloud, near_field_range)]
    nfcd = (
        chamfer_distance_squared(pred_near, gt_near, chunk, chamfer_backend)
        if len(gt_near) and len(pred_near) else torch.zeros((), dtype=torch.float64))
    return dict(
        L1=float(error.mean()),
        AbsRel=float((error / gt_d).mean()),
        CD=float(chamfer_distance_squared(pred_cloud, gt_cloud, chunk, chamfer_backend)),
        NFCD=float(nfcd),
        num_rays=int(gt_depths.shape[0]))
