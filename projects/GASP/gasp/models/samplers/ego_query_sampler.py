"""Labelled ego-occupancy queries from the future ego path and the vehicle footprint."""
import math
from typing import Dict, Optional, Sequence, Union

import torch
from mmdet3d.registry import TASK_UTILS


def interpolate_path(path: Dict[str, torch.Tensor], times_s: torch.Tensor):
    """Ego pose at arbitrary times by linear interpolation of the path.

    Args:
        path: ``times_s`` (..., E) increasing, ``xy`` (..., E, 2), ``yaw`` (..., E), reference
            frame; leading dimensions are a batch of paths.
        times_s: (..., Q) query times, clamped to each path's time span.

    Returns:
        xy (..., Q, 2) and yaw (..., Q) at the query times.
    """
    knots = path['times_s']
    t = torch.minimum(torch.maximum(times_s, knots[..., :1]), knots[..., -1:])
    right = torch.searchsorted(knots, t).clamp(1, knots.shape[-1] - 1)
    left = right - 1
    knot_left, knot_right = knots.gather(-1, left), knots.gather(-1, right)
    w = (t - knot_left) / (knot_right - knot_left).clamp(min=1e-9)

    def at(index):
        return path['xy'].gather(-2, index[..., None].expand(*index.shape, 2))

    xy = at(left) * (1 - w[..., None]) + at(right) * w[..., None]
    yaw_left, yaw_right = path['yaw'].gather(-1, left), path['yaw'].gather(-1, right)
    dyaw = torch.remainder(yaw_right - yaw_left + math.pi, 2 * math.pi) - math.pi
    return xy, yaw_left + dyaw * w


def inside_footprint(points_xy: torch.Tensor, pose_xy: torch.Tensor, pose_yaw: torch.Tensor,
                     footprint: Union[torch.Tensor, Sequence[float]]) -> torch.Tensor:
    """(..., Q) bool: is each point inside the vehicle box placed at the matching pose.

    Args:
        points_xy: (..., Q, 2) points in the reference frame.
        pose_xy, pose_yaw: (..., Q, 2), (..., Q) vehicle (rear-axle) poses in the reference
            frame.
        footprint: (x_min, y_min, x_max, y_max) of the box in the vehicle frame: 4 numbers, or
            a (..., 4) tensor on the points' device (one box per leading index).
    """
    footprint = torch.as_tensor(footprint, dtype=points_xy.dtype, device=points_xy.device)
    box = footprint[..., None, :]  # broadcasts over the queries
    d = points_xy - pose_xy
    c, s = torch.cos(pose_yaw), torch.sin(pose_yaw)
    local_x = c * d[..., 0] + s * d[..., 1]
    local_y = -s * d[..., 0] + c * d[..., 1]
    return ((local_x >= box[..., 0]) & (local_x <= box[..., 2]) & (local_y >= box[..., 1]) &
            (local_y <= box[..., 3]))


def stack_paths(paths: Sequence[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    """B paths as one batch of (B, E) knots; shorter paths repeat their last knot (which
    changes no interpolated pose)."""
    length = max(p['times_s'].shape[0] for p in paths)

    def padded(path, key):
        value = path[key]
        missing = length - value.shape[0]
        if missing == 0:
            return value
        return torch.cat([value, value[-1:].expand(missing, *value.shape[1:])])

    return {key: torch.stack([padded(p, key) for p in paths]) for key in ('times_s', 'xy', 'yaw')}


@TASK_UTILS.register_module()
class EgoQuerySampler:
    """Sample (x, y, t) ego-occupancy queries (returned as (x, y, 0, t)).

    Times are uniform over the path's future span. A third of the queries is drawn inside
    the footprint at the interpolated pose, a third in a band around the path (the hard
    negatives and positives near the vehicle) and a third uniformly over the region.
    Every label is computed by the footprint test, so a band or region query that falls
    inside the vehicle is a positive.

    Args:
        num_queries: queries per sample.
        band_width: half-width of the band around the path (m).
        region_xy: (x_min, y_min, x_max, y_max) of the uniform draw (m).
    """

    def __init__(self,
                 num_queries: int = 2**14,
                 band_width: float = 5.0,
                 region_xy: Sequence[float] = (-70.0, -70.0, 70.0, 70.0)):
        self.num_queries = num_queries
        self.band_width = band_width
        self.region_xy = region_xy

    def __call__(self,
                 path: Dict[str, torch.Tensor],
                 footprint: Union[torch.Tensor, Sequence[float]],
                 generator: Optional[torch.Generator] = None):
        """Returns queries (Q, 4) float32 (x, y, 0, t) and labels (Q,) float32."""
        queries, labels = self.sample_batch([path], [footprint], generator)
        return queries[0], labels[0]

    def sample_batch(self,
                     paths: Sequence[Dict[str, torch.Tensor]],
                     footprints: Sequence[Union[torch.Tensor, Sequence[float]]],
                     generator: Optional[torch.Generator] = None):
        """:meth:`__call__` for B samples at once, in a fixed number of GPU kernels and without
        host synchronisation (bounds stay on the device). Returns queries (B, Q, 4) and
        labels (B, Q)."""
        path = stack_paths(paths)
        device = path['xy'].device
        box = torch.stack([
            torch.as_tensor(f, dtype=torch.float32, device=device) for f in footprints
        ])[:, None, :]  # (B, 1, 4)
        batch, n = len(paths), self.num_queries

        def uniform(*shape):
            return torch.rand(batch, *shape, generator=generator, device=device)

        t_lo, t_hi = path['times_s'][:, :1], path['times_s'][:, -1:]
        times = t_lo + (t_hi - t_lo) * uniform(n)
        pose_xy, pose_yaw = interpolate_path(path, times)
        n_in, n_band = n // 3, n // 3
        n_region = n - n_in - n_band
        # Inside the footprint, in the vehicle frame, then placed at the pose.
        local = box[..., :2] + (box[..., 2:] - box[..., :2]) * uniform(n_in, 2)
        c, s = torch.cos(pose_yaw[:, :n_in]), torch.sin(pose_yaw[:, :n_in])
        inside = pose_xy[:, :n_in] + torch.stack(
            [c * local[..., 0] - s * local[..., 1], s * local[..., 0] + c * local[..., 1]], -1)
        # Around the path: the pose at the query time plus a uniform offset in the band.
        band = pose_xy[:, n_in:n_in + n_band] + self.band_width * (2 * uniform(n_band, 2) - 1)
        x0, y0, x1, y1 = self.region_xy
        scale = (x1 - x0, y1 - y0)
        region = torch.stack(
            [x0 + scale[0] * uniform(n_region), y0 + scale[1] * uniform(n_region)], -1)
        xy = torch.cat([inside, band, region], dim=1)
        labels = inside_footprint(xy, pose_xy, pose_yaw, box[:, 0]).float()
        queries = torch.cat([xy, torch.zeros(batch, n, 1, device=device), times[..., None]], -1)
        return queries.float(), labels
