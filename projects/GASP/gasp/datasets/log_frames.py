"""Frames of one log: ego poses looked up by timestamp, the reference frame of a sample, and
the sweep files of a log (the one dispatch point between the AV2 and nuScenes formats: a log
table's ``format``, 'av2' when absent)."""
import os.path as osp
from pathlib import Path
from typing import Dict, Sequence, Tuple

import numpy as np

from ..geometry import invert, outside_box_xy, transform_points
from . import av2_io, nuscenes_io
from .errors import AV2DataError

#: Formats a log table can have: 'av2' (feather sweeps, ego frame) and 'nuscenes' (.pcd.bin
#: sweeps, sensor frame).
LOG_FORMATS = ('av2', 'nuscenes')


def city_from_ego_at(log: dict, timestamps_ns) -> np.ndarray:
    """Ego poses at exact timestamps from a log table of the info file.

    Args:
        log: ``logs[log_id]`` of an info file.
        timestamps_ns: (T,) int timestamps.

    Returns:
        (T, 4, 4) ``city_from_ego`` transforms.

    Raises:
        AV2DataError: a timestamp has no pose row (AV2 has one for every sensor timestamp).
    """
    table_ns = log['pose_timestamps_ns']
    wanted = np.asarray(timestamps_ns, dtype=np.int64)
    index = np.clip(np.searchsorted(table_ns, wanted), 0, len(table_ns) - 1)
    missing = table_ns[index] != wanted
    if missing.any():
        raise AV2DataError(
            'no ego pose row for this timestamp',
            log_id=log['log_id'],
            path=log.get('pose_file', osp.join(log['log_dir'], 'city_SE3_egovehicle.feather')),
            timestamp_ns=int(wanted[missing][0]))
    return log['city_from_ego'][index]


def ref_from_ego_at(log: dict, timestamps_ns, ref_timestamp_ns: int) -> np.ndarray:
    """(T, 4, 4) transforms from the ego frame at each timestamp to the reference frame
    (the ego frame at ``ref_timestamp_ns``)."""
    city_from_ego = city_from_ego_at(log, list(timestamps_ns) + [ref_timestamp_ns])
    return invert(city_from_ego[-1])[None] @ city_from_ego[:-1]


def log_dir_of(results: dict) -> Path:
    """Absolute folder of the sample's log."""
    return Path(results['data_root']) / results['log']['log_dir']


def log_format(log: dict) -> str:
    """The file format of a log table ('av2' for tables that do not say).

    Raises:
        AV2DataError: an unknown format.
    """
    fmt = log.get('format', 'av2')
    if fmt not in LOG_FORMATS:
        raise AV2DataError(
            f'unknown log format {fmt!r} (known: {LOG_FORMATS})',
            log_id=log.get('log_id'),
            fix='re-create the info file with tools/create_data.py.')
    return fmt


def lidar_names(log: dict) -> Tuple[str, ...]:
    """The lidars of a log, in the order of their ``laser_number`` blocks of 32."""
    return tuple(log.get('lidars', av2_io.LIDARS))


def lidar_index(log: dict, laser_number: np.ndarray) -> np.ndarray:
    """(N,) index into :func:`lidar_names` of the unit that fired each return."""
    last = len(lidar_names(log)) - 1
    return np.minimum(laser_number // av2_io.LASERS_PER_LIDAR, last).astype(np.intp)


def sweep_path(results: dict, timestamp_ns: int) -> Path:
    """The file of the sweep at ``timestamp_ns`` of a sample's log."""
    log = results['log']
    if log_format(log) == 'nuscenes':
        return nuscenes_io.nuscenes_lidar_path(results['data_root'], log, timestamp_ns)
    return av2_io.lidar_path(log_dir_of(results), timestamp_ns)


def read_log_sweep(results: dict,
                   timestamp_ns: int,
                   memo: bool = False,
                   fields: Sequence[str] = av2_io.SWEEP_FIELDS) -> Dict[str, np.ndarray]:
    """A sweep of the sample's log in the ego frame at its timestamp, whatever the format.

    Args:
        results: the sample (``log``, ``data_root``).
        timestamp_ns: the sweep.
        memo: remember the sweep in ``results['sweep_memo']`` (future rays and feature targets
            read the same sweeps); callers must not modify the arrays in place. A remembered
            sweep's ``xyz_ego`` is in the file's dtype (AV2: float16): take rows with
            :func:`.av2_io.xyz_rows_float32`.
        fields: the fields needed besides ``xyz_ego`` (see :func:`.av2_io.read_sweep`; AV2
            files are read for those only, nuScenes sweeps come with all).

    Returns:
        see :func:`.av2_io.read_sweep`.
    """
    log = results['log']
    path = sweep_path(results, timestamp_ns)
    if log_format(log) == 'av2':
        if memo:
            return av2_io.read_sample_sweep(results, path, log['log_id'], fields)
        return av2_io.read_sweep(path, log['log_id'], fields)
    cache = results.setdefault('sweep_memo', {}) if memo else {}
    if path not in cache:
        cache[path] = nuscenes_io.read_nuscenes_sweep(path, log['log_id'],
                                                      log['ego_from_lidar'][nuscenes_io.LIDAR_TOP],
                                                      int(timestamp_ns))
    return cache[path]


class ReferenceLidarLog:
    """A log seen from one of its lidars (the 4D occupancy benchmark's frames): poses from a
    log table, sweeps in that lidar's frame, ego-vehicle returns removed.

    Subclasses (AV2 ``up_lidar``, nuScenes ``LIDAR_TOP``) set ``log_id``, ``frame_ns``,
    ``pose_table`` (a table :func:`ref_from_ego_at` reads), ``ego_from_lidar`` and
    ``lidar_from_ego``, and implement :meth:`read_sweep_ego`.
    """

    def read_sweep_ego(self, timestamp_ns: int) -> Dict[str, np.ndarray]:
        """The sweep at ``timestamp_ns`` in the ego frame at its timestamp."""
        raise NotImplementedError

    def ref_lidar_from_lidar(self, timestamps_ns: Sequence[int],
                             ref_timestamp_ns: int) -> np.ndarray:
        """(T, 4, 4) transforms from the lidar frame at each timestamp to the lidar frame at
        ``ref_timestamp_ns``.

        Raises:
            AV2DataError: a timestamp has no ego pose row.
        """
        ref_from_ego = ref_from_ego_at(self.pose_table, list(timestamps_ns), ref_timestamp_ns)
        return self.lidar_from_ego[None] @ ref_from_ego @ self.ego_from_lidar[None]

    def sweep_points_lidar(self, timestamp_ns: int, ego_box_lidar_xy) -> np.ndarray:
        """(N, 3) float64 returns of one sweep in its own lidar frame, in file order, those
        inside ``ego_box_lidar_xy`` ((x_min, y_min, x_max, y_max), lidar frame, bounds
        included, any z) removed."""
        sweep = self.read_sweep_ego(timestamp_ns)
        points = transform_points(self.lidar_from_ego, sweep['xyz_ego'].astype(np.float64))
        return points[outside_box_xy(points, ego_box_lidar_xy)]

    def sweep_points_ref(self, timestamp_ns: int, ref_timestamp_ns: int,
                         ego_box_lidar_xy) -> np.ndarray:
        """(N, 3) float64 ego-free returns of a sweep in the lidar frame at the reference
        time."""
        points = self.sweep_points_lidar(timestamp_ns, ego_box_lidar_xy)
        return transform_points(
            self.ref_lidar_from_lidar([timestamp_ns], ref_timestamp_ns)[0], points)
