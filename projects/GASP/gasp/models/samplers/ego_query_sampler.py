"""Labelled ego-occupancy queries from the future ego path and the vehicle footprint."""
import math
from typing import Dict, Optional, Sequence, Union

import torch
from mmdet3d.registry import TASK_UTILS


def interpolate_path(path: Dict[str, torch.Tensor], times_s: torch.Tensor):
    """Ego pose at arbitrary times by linear interpolation of the path.

    Args:
        path: ``times_s`` (E,) increasing, ``xy`` (E, 2), ``yaw`` (E,), reference frame.
        times_s: (Q,) query times, clamped to the path's time span.

    Returns:
        xy (Q, 2) and yaw (Q,) at the query times.
    """
    knots = path['times_s']
    t = times_s.clamp(knots[0], knots[-1])
    right = torch.searchsorted(knots, t).clamp(1, len(knots) - 1)
    left = right - 1
    span = (knots[right] - knots[left]).clamp(min=1e-9)
    w = ((t - knots[left]) / span).unsqueeze(1)
    xy = path['xy'][left] * (1 - w) + path['xy'][right] * w
    dyaw = torch.remainder(path['yaw'][right] - path['yaw'][left] + math.pi, 2 * math.pi) - math.pi
    yaw = path['yaw'][left] + dyaw * w.squeeze(1)
    return xy, yaw


def inside_footprint(points_xy: torch.Tensor, pose_xy: torch.Tensor, pose_yaw: torch.Tensor,
                     footprint: Union[torch.Tensor, Sequence[float]]) -> torch.Tensor:
    """(Q,) bool: is each point inside the vehicle box placed at the matching pose.

    Args:
        points_xy: (Q, 2) points in the reference frame.
        pose_xy, pose_yaw: (Q, 2), (Q,) vehicle (rear-axle) poses in the reference frame.
        footprint: (x_min, y_min, x_max, y_max) of the box in the vehicle frame (numbers or
            a (4,) tensor on the points' device).
    """
    d = points_xy - pose_xy
    c, s = torch.cos(pose_yaw), torch.sin(pose_yaw)
    local_x = c * d[:, 0] + s * d[:, 1]
    local_y = -s * d[:, 0] + c * d[:, 1]
    return ((local_x >= footprint[0]) & (local_x <= footprint[2]) & (local_y >= footprint[1]) &
            (local_y <= footprint[3]))


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
                 footprint: torch.Tensor,
                 generator: Optional[torch.Generator] = None):
        """Returns queries (Q, 4) float32 (x, y, 0, t) and labels (Q,) float32."""
        device = path['xy'].device
        n = self.num_queries
        # Bounds stay tensors on the device: reading them on the host would stall the GPU
        # once per sample.
        footprint = torch.as_tensor(footprint, dtype=torch.float32, device=device)

        def uniform(*shape):
            return torch.rand(*shape, generator=generator, device=device)

        t_lo, t_hi = path['times_s'][0], path['times_s'][-1]
        times = t_lo + (t_hi - t_lo) * uniform(n)
        pose_xy, pose_yaw = interpolate_path(path, times)
        n_in, n_band = n // 3, n // 3
        n_region = n - n_in - n_band
        # Inside the footprint, in the vehicle frame, then placed at the pose.
        local = torch.stack([
            footprint[0] + (footprint[2] - footprint[0]) * uniform(n_in), footprint[1] +
            (footprint[3] - footprint[1]) * uniform(n_in)
        ], 1)
        c, s = torch.cos(pose_yaw[:n_in]), torch.sin(pose_yaw[:n_in])
        inside = pose_xy[:n_in] + torch.stack(
            [c * local[:, 0] - s * local[:, 1], s * local[:, 0] + c * local[:, 1]], 1)
        # Around the path: the pose at the query time plus a uniform offset in the band.
        band = pose_xy[n_in:n_in + n_band] + self.band_width * (2 * uniform(n_band, 2) - 1)
        x0, y0, x1, y1 = self.region_xy
        region = torch.stack(
            [x0 + (x1 - x0) * uniform(n_region), y0 + (y1 - y0) * uniform(n_region)], 1)
        xy = torch.cat([inside, band, region])
        labels = inside_footprint(xy, pose_xy, pose_yaw, footprint).float()
        queries = torch.cat([xy, torch.zeros(n, 1, device=device), times[:, None]], 1)
        return queries.float(), labels
