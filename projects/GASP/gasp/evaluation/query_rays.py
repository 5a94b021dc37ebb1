"""Query rays of the 4D occupancy forecasting benchmark for any AV2-format root (SPEC s. 5).

For a frame (the sweep at t = 0) and each future frame of the protocol: read the future sweep,
move it into its own up_lidar frame, drop the ego-vehicle returns, keep every
``ray_stride``-th return (``[::5]``, in file order, after the ego filter), and move them into
the up_lidar frame at t = 0. Each kept return p gives one query ray: origin o = the up_lidar
position at the sweep time, unit direction u = (p - o) / |p - o| and ground-truth depth
d = |p - o|, so that p = o + u d.
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from ..datasets.errors import AV2DataError
from ..geometry import transform_points
from .occ_forecasting_protocol import OccForecastingProtocol
from .up_lidar_log import UpLidarLog

NS_PER_S = 1_000_000_000


@dataclass
class OccForecastingFrame:
    """Query rays of one benchmark frame, up_lidar frame at t = 0.

    Args:
        log_id: AV2 log id.
        timestamp_ns: lidar timestamp of t = 0.
        past_timestamps_ns: (P,) past frame timestamps, oldest first, t = 0 last.
        future_timestamps_ns: (F,) future frame timestamps.
        origins: F arrays (M_k, 3) float32, ray origins (m).
        directions: F arrays (M_k, 3) float32, unit directions.
        depths: F arrays (M_k,) float32 ground-truth depths (m), or None (queries only).
    """

    log_id: str
    timestamp_ns: int
    past_timestamps_ns: List[int]
    future_timestamps_ns: List[int]
    origins: List[np.ndarray] = field(default_factory=list)
    directions: List[np.ndarray] = field(default_factory=list)
    depths: Optional[List[np.ndarray]] = None

    @property
    def frame_id(self) -> str:
        """The challenge's frame key: the t = 0 sweep's file name."""
        return f'{self.timestamp_ns}.feather'

    @property
    def num_rays(self) -> int:
        """Query rays over all future frames."""
        return int(sum(len(d) for d in self.directions))


def frame_indices(lidar_ns: np.ndarray, protocol: OccForecastingProtocol) -> List[int]:
    """Indices of the sweeps of a log that are benchmark frames (``lidar_ns``: the log's frame
    timestamps, ``frame_ns`` of its log object: every AV2 sweep, nuScenes key frames).

    A sweep is a frame when all its past and future frames exist, every used sweep is within
    ``max_time_error_s`` of its nominal time, and it lies on the ``frame_stride`` grid counted
    from the first sweep that has a full past.
    """
    past, future = protocol.sweep_offsets()
    offsets = np.array(past + future)
    first, last = -offsets[0], len(lidar_ns) - 1 - offsets[-1]
    chosen = []
    tol_ns = protocol.max_time_error_s * NS_PER_S
    for k in range(first, last + 1, protocol.frame_stride):
        nominal = lidar_ns[k] + offsets * protocol.frame_period_s * NS_PER_S
        if np.all(np.abs(lidar_ns[k + offsets] - nominal) <= tol_ns):
            chosen.append(k)
    return chosen


def future_query_rays(log: UpLidarLog, timestamp_ns: int, future_timestamps_ns: Sequence[int],
                      protocol: OccForecastingProtocol):
    """Origins, unit directions and depths of each future sweep's query rays.

    Returns:
        three lists over the future frames: (M_k, 3), (M_k, 3), (M_k,) float32 arrays, up_lidar
        frame at ``timestamp_ns``.
    """
    ref_from_lidar = log.ref_lidar_from_lidar(future_timestamps_ns, timestamp_ns)
    origins, directions, depths = [], [], []
    for k, stamp in enumerate(future_timestamps_ns):
        points = log.sweep_points_lidar(stamp, protocol.ego_box_lidar_xy)[::protocol.ray_stride]
        points_ref = transform_points(ref_from_lidar[k], points)
        origin = ref_from_lidar[k, :3, 3]
        offset = points_ref - origin
        depth = np.linalg.norm(offset, axis=1)
        keep = depth > 0
        origins.append(np.repeat(origin[None], int(keep.sum()), 0).astype(np.float32))
        directions.append((offset[keep] / depth[keep, None]).astype(np.float32))
        depths.append(depth[keep].astype(np.float32))
    return origins, directions, depths


def log_query_frames(log_dir,
                     protocol: OccForecastingProtocol,
                     max_frames: Optional[int] = None) -> List[OccForecastingFrame]:
    """Benchmark frames of one log with their query rays and ground-truth depths.

    Args:
        log_dir: ``<root>/sensor/<split>/<log_id>``, or a log object (:class:`UpLidarLog`,
            :class:`gasp.datasets.nuscenes_lidar_log.NuScenesLidarLog`).
        protocol: which sweeps and rays.
        max_frames: keep at most this many frames (the first ones) of the log.

    Returns:
        The frames in time order (empty when the log is too short for the protocol).
    """
    log = log_dir if hasattr(log_dir, 'sweep_points_lidar') else UpLidarLog(log_dir)
    past, future = protocol.sweep_offsets()
    frames = []
    for k in frame_indices(log.frame_ns, protocol)[:max_frames]:
        stamp = int(log.frame_ns[k])
        future_ns = [int(log.frame_ns[k + o]) for o in future]
        origins, directions, depths = future_query_rays(log, stamp, future_ns, protocol)
        frames.append(
            OccForecastingFrame(
                log_id=log.log_id,
                timestamp_ns=stamp,
                past_timestamps_ns=[int(log.frame_ns[k + o]) for o in past],
                future_timestamps_ns=future_ns,
                origins=origins,
                directions=directions,
                depths=depths))
    return frames


def split_log_dirs(root_path, split: str) -> List[Path]:
    """Sorted log folders of ``<root>/sensor/<split>`` (those with a lidar folder).

    Raises:
        AV2DataError: the split folder does not exist.
    """
    split_dir = Path(root_path) / 'sensor' / split
    if not split_dir.is_dir():
        raise AV2DataError(
            f'no split folder {split!r}',
            path=str(split_dir),
            fix='pass the folder that contains sensor/<split>/<log_id> as the '
            'root path.')
    return sorted(p for p in split_dir.iterdir() if (p / 'sensors' / 'lidar').is_dir())


def generate_query_frames(root_path,
                          split: str,
                          protocol: OccForecastingProtocol,
                          max_frames_per_log: Optional[int] = None,
                          max_logs: Optional[int] = None) -> List[OccForecastingFrame]:
    """Benchmark frames of every log of a split, logs sorted by id.

    Logs too short for the protocol contribute no frame (printed).
    """
    frames = []
    for log_dir in split_log_dirs(root_path, split)[:max_logs]:
        log_frames = log_query_frames(log_dir, protocol, max_frames_per_log)
        if not log_frames:
            print(f'[occ_forecasting] log {log_dir.name} ({split}): too short for the '
                  f'{protocol.horizon} protocol ({protocol.span_sweeps + 1} sweeps needed); '
                  'skipped')
        frames.extend(log_frames)
    return frames
