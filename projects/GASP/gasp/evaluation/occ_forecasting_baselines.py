"""Model-free baselines of 4D occupancy forecasting: render a forecast point cloud's voxel
occupancy along the query rays.

- :class:`StaticWorldBaseline`: the world stays as the t = 0 sweep saw it. The t = 0 returns
  (ego removed, up_lidar frame of t = 0) are voxelized into a 0.2 m grid over the near-field
  region, occupied cells get density ``occupied_density`` (default inf: opaque), and every
  future step's rays are marched through that one grid
  (:func:`gasp_ops.render_expected_depth`). ``num_input_sweeps > 1`` also voxelizes the
  latest past frames (a denser static map, fewer rays leaking through unobserved cells).
- :class:`ConstantVelocityBaseline`: each t = 0 return moves with a constant velocity estimated
  from the last two past sweeps; the grid of step k is built from ``p + v t_k``.
  The velocity is nearest-neighbour scene flow: both sweeps are in the t = 0 frame (ego motion
  removed), ``v = (p - q) / dt`` in x, y with q the nearest return of the previous sweep; it is
  set to 0 when its speed is below ``min_speed_mps`` (sampling noise of static surfaces) or
  above ``max_speed_mps`` (a wrong match). This is crude: a moving object's returns often match
  returns of the same object in the previous sweep, so its speed is underestimated.

Why not "extrapolate the ego motion, keep the world static": the benchmark's query rays carry
their true origins, and a static world rendered along them is exactly the static baseline, so
that variant would only duplicate its numbers.
"""
import math
from functools import partial
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from gasp_ops import bev_voxelize, render_expected_depth
from .challenge_json import Predictions
from .chamfer import DEFAULT_CHUNK, nearest_neighbour
from .occ_forecasting_protocol import EGO_BOX_LIDAR_XY, NEAR_FIELD_RANGE
from .query_rays import NS_PER_S, OccForecastingFrame
from .up_lidar_log import UpLidarLog

GRID_VOXEL_SIZE = (0.2, 0.2, 0.2)  # the benchmark's grid (m)


class StaticWorldBaseline:
    """The t = 0 sweep's occupancy rendered at every future time.

    Args:
        point_cloud_range: grid region, up_lidar frame of t = 0 (m).
        voxel_size: grid cell size (m).
        occupied_density: density of cells with a return (1/m); inf makes them opaque.
        step: marching step (m).
        max_depth: marching limit (m); None: the grid exit.
        ego_box_lidar_xy: ego box (x_min, y_min, x_max, y_max) removed from the input sweeps
            in their lidar frame (m), as for the query rays.
        num_input_sweeps: voxelize the last this many past frames (1: the t = 0 sweep only;
            None: every past frame of the protocol).
    """

    def __init__(self,
                 point_cloud_range: Sequence[float] = NEAR_FIELD_RANGE,
                 voxel_size: Sequence[float] = GRID_VOXEL_SIZE,
                 occupied_density: float = math.inf,
                 step: float = 0.2,
                 max_depth: Optional[float] = None,
                 ego_box_lidar_xy: Sequence[float] = EGO_BOX_LIDAR_XY,
                 num_input_sweeps: Optional[int] = 1):
        self.point_cloud_range = tuple(point_cloud_range)
        self.voxel_size = tuple(voxel_size)
        self.occupied_density = occupied_density
        self.step = step
        self.max_depth = max_depth
        self.ego_box_lidar_xy = tuple(ego_box_lidar_xy)
        self.num_input_sweeps = num_input_sweeps

    def density_grid(self, points_ref: np.ndarray) -> torch.Tensor:
        """(Z, Y, X) density of the cells that contain at least one of the (N, 3) points."""
        points = torch.as_tensor(points_ref, dtype=torch.float32)
        zeros = torch.zeros(points.shape[0], dtype=torch.long)
        density = bev_voxelize(points, zeros, zeros, 1, 1, self.point_cloud_range,
                               self.voxel_size)[0]
        return density.masked_fill_(density > 0, self.occupied_density)

    def render(self, density: torch.Tensor, origins: np.ndarray,
               directions: np.ndarray) -> np.ndarray:
        """(M,) float32 expected depths of rays through a density grid."""
        depth = render_expected_depth(
            torch.as_tensor(origins, dtype=torch.float32),
            torch.as_tensor(directions, dtype=torch.float32), density, self.point_cloud_range,
            self.voxel_size, self.step, self.max_depth)
        return depth.numpy().astype(np.float32)

    def future_points(self, log: UpLidarLog, frame: OccForecastingFrame) -> List[np.ndarray]:
        """The forecast point cloud of each future step, up_lidar frame of t = 0."""
        count = self.num_input_sweeps or len(frame.past_timestamps_ns)
        stamps = frame.past_timestamps_ns[-count:] or [frame.timestamp_ns]
        points = np.concatenate([
            log.sweep_points_ref(stamp, frame.timestamp_ns, self.ego_box_lidar_xy)
            for stamp in stamps
        ])
        return [points] * len(frame.directions)

    def predict(self, log: UpLidarLog, frame: OccForecastingFrame) -> List[np.ndarray]:
        """Expected depth along every query ray of a frame.

        Args:
            log: the frame's log (sweeps and poses).
            frame: query rays (up_lidar frame of t = 0).

        Returns:
            one (M_k,) float32 array per future step.
        """
        clouds = self.future_points(log, frame)
        out, last_cloud, density = [], None, None
        for cloud, origins, directions in zip(clouds, frame.origins, frame.directions):
            if cloud is not last_cloud:
                density, last_cloud = self.density_grid(cloud), cloud
            out.append(self.render(density, origins, directions))
        return out


class ConstantVelocityBaseline(StaticWorldBaseline):
    """The t = 0 returns moved with nearest-neighbour velocities (see the module docstring).

    Args:
        min_speed_mps: estimated speeds below this are set to 0 (m/s).
        max_speed_mps: estimated speeds above this are set to 0 (m/s).
        chunk: query points per cdist call of the nearest-neighbour search (GPU tensors only).
        **kwargs: see :class:`StaticWorldBaseline`.
    """

    def __init__(self,
                 min_speed_mps: float = 2.5,
                 max_speed_mps: float = 30.0,
                 chunk: int = DEFAULT_CHUNK,
                 **kwargs):
        super().__init__(**kwargs)
        self.min_speed_mps = min_speed_mps
        self.max_speed_mps = max_speed_mps
        self.chunk = chunk

    def velocities(self, points_now: np.ndarray, points_prev: np.ndarray,
                   dt_s: float) -> np.ndarray:
        """(N, 3) velocities (m/s; z = 0) of the (N, 3) current points from the (M, 3) points
        of the sweep ``dt_s`` earlier, both in one frame."""
        now = torch.as_tensor(points_now, dtype=torch.float64)
        prev = torch.as_tensor(points_prev, dtype=torch.float64)
        velocity = np.zeros_like(points_now)
        if len(prev) == 0 or len(now) == 0:
            return velocity
        nearest, _ = nearest_neighbour(now, prev, self.chunk)
        flow = (now - prev[nearest]).numpy()
        flow[:, 2] = 0.0
        speed = np.linalg.norm(flow, axis=1) / dt_s
        moving = (speed >= self.min_speed_mps) & (speed <= self.max_speed_mps)
        velocity[moving] = flow[moving] / dt_s
        return velocity

    def future_points(self, log: UpLidarLog, frame: OccForecastingFrame) -> List[np.ndarray]:
        points = log.sweep_points_lidar(frame.timestamp_ns, self.ego_box_lidar_xy)
        prev_ns = frame.past_timestamps_ns[-2]
        prev = log.sweep_points_ref(prev_ns, frame.timestamp_ns, self.ego_box_lidar_xy)
        velocity = self.velocities(points, prev, (frame.timestamp_ns - prev_ns) / NS_PER_S)
        return [
            points + velocity * ((stamp - frame.timestamp_ns) / NS_PER_S)
            for stamp in frame.future_timestamps_ns
        ]


#: Baselines by name -> a factory (no arguments) of the baseline object.
BASELINES = {
    'static_world': StaticWorldBaseline,
    'static_world_all_past': partial(StaticWorldBaseline, num_input_sweeps=None),
    'constant_velocity': ConstantVelocityBaseline,
}


def predict_frames(baseline: StaticWorldBaseline,
                   frames: List[OccForecastingFrame],
                   split_dir=None,
                   logs: Optional[Dict[str, UpLidarLog]] = None) -> Predictions:
    """Run a baseline on benchmark frames.

    Args:
        baseline: a baseline object (``predict(log, frame)``).
        frames: benchmark frames of logs under ``split_dir``.
        split_dir: ``<root>/sensor/<split>`` (AV2).
        logs: log id -> log object (instead of ``split_dir``; e.g. nuScenes scenes from
            :func:`gasp.datasets.nuscenes_lidar_log.nuscenes_logs`).

    Returns:
        log_id -> frame_id -> one (M_k,) float32 depth array per future step.
    """
    logs = dict(logs or {})
    predictions: Predictions = {}
    for frame in frames:
        if frame.log_id not in logs:
            logs[frame.log_id] = UpLidarLog(Path(split_dir) / frame.log_id)
        predictions.setdefault(frame.log_id,
                               {})[frame.frame_id] = baseline.predict(logs[frame.log_id], frame)
    return predictions
