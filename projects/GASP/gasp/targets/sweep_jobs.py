"""Which sweeps get feature targets, and which camera frame each ring camera contributes.

From info files (``tools/create_data.py``): every future sweep of every sample, with the
camera frames the info file matched to it. From the AV2 root directly: every sweep of every
log, each camera's nearest frame within ``camera_max_offset_s``.
"""
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..datasets.av2_infos import match_nearest, split_logs
from ..datasets.av2_io import (RING_CAMERAS, list_camera_timestamps, list_lidar_timestamps,
                               read_city_from_ego, read_ego_from_sensor, read_intrinsics)
from ..datasets.errors import AV2DataError


@dataclass(frozen=True)
class SweepJob:
    """One sweep to process.

    Args:
        log_id: the log.
        timestamp_ns: lidar sweep timestamp.
        camera_timestamps_ns: ring camera -> matched image timestamp.
    """

    log_id: str
    timestamp_ns: int
    camera_timestamps_ns: Tuple[Tuple[str, int], ...]


def jobs_from_infos(info_files: Sequence[str], data_root) -> Tuple[List[SweepJob], Dict[str, dict]]:
    """Future sweeps of the samples of info files (each sweep once).

    Returns:
        jobs, and ``log_id -> log table`` (``log_dir`` made absolute).
    """
    jobs, logs = {}, {}
    for info_file in info_files:
        with open(info_file, 'rb') as f:
            infos = pickle.load(f)
        for log_id, table in infos['logs'].items():
            logs[log_id] = dict(table, log_dir=str(Path(data_root) / table['log_dir']))
        for sample in infos['data_list']:
            cams = sample['future_camera_timestamps_ns']
            for k, stamp in enumerate(sample['future_timestamps_ns']):
                key = (sample['log_id'], int(stamp))
                jobs.setdefault(
                    key,
                    SweepJob(sample['log_id'], int(stamp),
                             tuple((c, int(cams[c][k])) for c in RING_CAMERAS)))
    return [jobs[k] for k in sorted(jobs)], logs


def log_table_from_root(log_dir: Path) -> dict:
    """The parts of an info log table that feature extraction needs, read from the log."""
    pose_ns, city_from_ego = read_city_from_ego(log_dir)
    ego_from_sensor = read_ego_from_sensor(log_dir)
    intrinsics = read_intrinsics(log_dir)
    for name in RING_CAMERAS:
        if name not in ego_from_sensor or name not in intrinsics:
            raise AV2DataError(
                f'no calibration for camera {name!r}',
                log_id=log_dir.name,
                path=str(log_dir / 'calibration'))
    return dict(
        log_id=log_dir.name,
        log_dir=str(log_dir),
        pose_timestamps_ns=pose_ns,
        city_from_ego=city_from_ego,
        cameras={
            name: dict(ego_from_camera=ego_from_sensor[name], **intrinsics[name])
            for name in RING_CAMERAS
        })


def jobs_from_root(data_root,
                   splits: Sequence[str] = ('train', 'val', 'test'),
                   camera_max_offset_s: float = 0.025) -> Tuple[List[SweepJob], Dict[str, dict]]:
    """Every sweep of every log under ``<data_root>/sensor/<split>``.

    Raises:
        AV2DataError: a camera has no frame within the tolerance of a sweep.
    """
    jobs, logs = [], {}
    for split in splits:
        for log_dir in split_logs(Path(data_root), split):
            logs[log_dir.name] = log_table_from_root(log_dir)
            lidar_ns = list_lidar_timestamps(log_dir)
            picks = {}
            for camera in RING_CAMERAS:
                stamps = list_camera_timestamps(log_dir, camera)
                tolerance_ns = int(camera_max_offset_s * 1e9)
                pick = (
                    match_nearest(stamps, lidar_ns, tolerance_ns) if len(stamps) else np.full(
                        len(lidar_ns), -1))
                if (pick < 0).any():
                    raise AV2DataError(
                        f'no {camera} image within {camera_max_offset_s * 1e3:.0f} ms of this '
                        'lidar sweep',
                        log_id=log_dir.name,
                        path=str(log_dir / 'sensors' / 'cameras' / camera),
                        timestamp_ns=int(lidar_ns[np.argmax(pick < 0)]),
                        fix='restore the images, or use the info files (--info-files) which '
                        'only list sweeps with all cameras.')
                picks[camera] = stamps[pick]
            jobs.extend(
                SweepJob(log_dir.name, int(t), tuple((c, int(picks[c][i])) for c in RING_CAMERAS))
                for i, t in enumerate(lidar_ns))
    return jobs, logs
