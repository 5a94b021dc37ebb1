"""Reading nuScenes lidar files: the one place that knows nuScenes' sweep format.

nuScenes stores each LIDAR_TOP sweep as ``samples/LIDAR_TOP/<name>.pcd.bin`` (key frames, 2 Hz)
or ``sweeps/LIDAR_TOP/<name>.pcd.bin`` (the other sweeps of the 20 Hz lidar): float32 rows of
``x, y, z, intensity, ring_index`` in the **sensor frame** at the sweep timestamp (not the ego
frame, as AV2's). The info converter (:mod:`.nuscenes_infos`) stores each log's file names and
LIDAR_TOP calibration, and :func:`read_nuscenes_sweep` returns a sweep in the same form as
:func:`.av2_io.read_sweep`, so every transform reads both datasets alike.
"""
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from ..geometry import transform_points
from .errors import AV2DataError

LIDAR_TOP = 'LIDAR_TOP'
#: nuScenes' six cameras, in the order of the devkit's sample records.
NUSCENES_CAMERAS = ('CAM_FRONT', 'CAM_FRONT_RIGHT', 'CAM_BACK_RIGHT', 'CAM_BACK', 'CAM_BACK_LEFT',
                    'CAM_FRONT_LEFT')
#: Float32 values per point of a ``.pcd.bin`` file: x, y, z, intensity, ring index.
PCD_BIN_VALUES = 5
NUSCENES_BEAMS = 32  # LIDAR_TOP: Velodyne HDL-32E
US_TO_NS = 1000  # nuScenes timestamps are microseconds


def read_pcd_bin(path: Path,
                 log_id: Optional[str] = None,
                 timestamp_ns: Optional[int] = None) -> np.ndarray:
    """(N, 5) float32 rows ``x, y, z, intensity, ring_index`` of a ``.pcd.bin`` file, sensor
    frame.

    Raises:
        AV2DataError: missing, empty or truncated file, or non-finite coordinates.
    """
    where = dict(log_id=log_id, path=str(path), timestamp_ns=timestamp_ns)
    if not path.is_file():
        raise AV2DataError('lidar sweep file is missing', **where)
    raw = np.fromfile(path, dtype=np.float32)
    if raw.size == 0:
        raise AV2DataError('lidar sweep has no points', **where)
    if raw.size % PCD_BIN_VALUES:
        raise AV2DataError(
            f'{path.stat().st_size} bytes is not a whole number of {PCD_BIN_VALUES * 4}-byte '
            'points (truncated file)', **where)
    points = raw.reshape(-1, PCD_BIN_VALUES)
    bad = ~np.isfinite(points[:, :3]).all(1)
    if bad.any():
        raise AV2DataError(
            f'lidar sweep has {int(bad.sum())} points with NaN or infinite coordinates', **where)
    return points


def read_nuscenes_sweep(path: Path,
                        log_id: str,
                        ego_from_lidar: np.ndarray,
                        timestamp_ns: Optional[int] = None) -> Dict[str, np.ndarray]:
    """Read one LIDAR_TOP sweep into the ego frame at the sweep timestamp.

    Args:
        path: the ``.pcd.bin`` file.
        log_id: the log (scene) name, for errors.
        ego_from_lidar: (4, 4) LIDAR_TOP calibration of the log.
        timestamp_ns: the sweep timestamp, for errors.

    Returns:
        The keys of :func:`.av2_io.read_sweep`: ``xyz_ego`` (N, 3) float32, ``intensity`` (N,)
        uint8, ``laser_number`` (N,) uint8 (the ring index, 0-31) and ``offset_ns`` (N,) int32
        (zeros: nuScenes gives no per-point time).
    """
    points = read_pcd_bin(path, log_id, timestamp_ns)
    xyz_ego = transform_points(ego_from_lidar, points[:, :3].astype(np.float64))
    return dict(
        xyz_ego=xyz_ego.astype(np.float32),
        intensity=np.clip(np.round(points[:, 3]), 0, 255).astype(np.uint8),
        laser_number=points[:, 4].astype(np.uint8),
        offset_ns=np.zeros(len(points), np.int32))


def nuscenes_lidar_path(data_root, log: dict, timestamp_ns: int) -> Path:
    """Absolute ``.pcd.bin`` path of a log's sweep at ``timestamp_ns``.

    Raises:
        AV2DataError: the log table has no sweep at that timestamp.
    """
    files = log['lidar_files']
    if int(timestamp_ns) not in files:
        raise AV2DataError(
            'the info file lists no LIDAR_TOP sweep at this timestamp',
            log_id=log['log_id'],
            timestamp_ns=int(timestamp_ns),
            fix='re-create the info file with `python tools/create_data.py nuscenes`.')
    return Path(data_root) / files[int(timestamp_ns)]
