"""Frames of one log: ego poses looked up by timestamp, the reference frame of a sample."""
import os.path as osp
from pathlib import Path

import numpy as np

from ..geometry import invert
from .errors import AV2DataError


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
            path=osp.join(log['log_dir'], 'city_SE3_egovehicle.feather'),
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
