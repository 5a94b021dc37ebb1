"""One nuScenes scene seen from its LIDAR_TOP: the frames of the 4D occupancy benchmark.

The nuScenes variant of the benchmark (4D-Occ, Khurana et al. CVPR 2023) works in the
LIDAR_TOP frame of the t = 0 key frame, on the 2 Hz key frames. :class:`NuScenesLidarLog` has
the interface of :class:`gasp.evaluation.UpLidarLog` (``log_id``, ``frame_ns``,
``ego_from_lidar``, ``ref_lidar_from_lidar``, ``sweep_points_lidar``, ``sweep_points_ref``), so
the query rays, baselines and metric of :mod:`gasp.evaluation` run on it unchanged. It reads
the log table of a nuScenes info file (:mod:`.nuscenes_infos`).
"""
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
from mmengine.fileio import load

from ..geometry import invert
from .errors import AV2DataError
from .log_frames import ReferenceLidarLog, read_log_sweep
from .nuscenes_io import LIDAR_TOP


class NuScenesLidarLog(ReferenceLidarLog):
    """Poses and ego-free sweeps of one scene, in LIDAR_TOP frames.

    Args:
        log: ``logs[scene name]`` of a nuScenes info file.
        data_root: the nuScenes root the info file was made from.

    Attributes:
        lidar_ns: (T,) every LIDAR_TOP sweep timestamp (20 Hz).
        frame_ns: (K,) key-frame timestamps (2 Hz): the benchmark's frames.
    """

    def __init__(self, log: dict, data_root):
        if log.get('format') != 'nuscenes':
            raise AV2DataError(
                f'log table of format {log.get("format", "av2")!r}, not nuscenes',
                log_id=log.get('log_id'),
                fix='pass a log table of an info file made by `tools/create_data.py nuscenes`.')
        self.log = log
        self.log_id = log['log_id']
        self.data_root = Path(data_root)
        self.lidar_ns = np.array(sorted(log['lidar_files']), np.int64)
        self.frame_ns = np.asarray(log['keyframe_ns'], np.int64)
        self.ego_from_lidar = log['ego_from_lidar'][LIDAR_TOP]
        self.lidar_from_ego = invert(self.ego_from_lidar)
        self.pose_table = log
        self._results = dict(log=log, data_root=str(self.data_root))

    def read_sweep_ego(self, timestamp_ns: int):
        return read_log_sweep(self._results, timestamp_ns)


def nuscenes_logs(info_file: str, data_root) -> Dict[str, NuScenesLidarLog]:
    """Scene name -> :class:`NuScenesLidarLog` of every log of a nuScenes info file.

    Raises:
        AV2DataError: the file is missing or not a nuScenes info file.
    """
    if not Path(info_file).is_file():
        raise AV2DataError(
            'info file not found',
            path=str(info_file),
            fix='create it with `python tools/create_data.py nuscenes`.')
    infos = load(info_file)
    if not isinstance(infos, dict) or infos.get('metainfo', {}).get('dataset') != 'nuscenes':
        raise AV2DataError(
            'not a nuScenes info file',
            path=str(info_file),
            fix='create it with `python tools/create_data.py nuscenes`.')
    return {name: NuScenesLidarLog(log, data_root) for name, log in sorted(infos['logs'].items())}


def nuscenes_query_frames(logs: Dict[str, NuScenesLidarLog],
                          protocol,
                          max_frames_per_log: Optional[int] = None,
                          max_logs: Optional[int] = None) -> List:
    """Benchmark frames (:class:`gasp.evaluation.OccForecastingFrame`) of nuScenes scenes.

    Args:
        logs: from :func:`nuscenes_logs`.
        protocol: a nuScenes protocol (``get_protocol(h, dataset='nuscenes')``): frames are
            key frames.
        max_frames_per_log: keep at most this many frames per scene.
        max_logs: use only the first scenes (sorted by name).
    """
    from ..evaluation.query_rays import log_query_frames
    frames = []
    for name in sorted(logs)[:max_logs]:
        log_frames = log_query_frames(logs[name], protocol, max_frames_per_log)
        if not log_frames:
            print(f'[occ_forecasting] scene {name}: {len(logs[name].frame_ns)} key frames, too '
                  f'few for the {protocol.horizon} protocol ({protocol.span_sweeps + 1} needed); '
                  'skipped')
        frames.extend(log_frames)
    return frames
