"""The frames of the 4D occupancy forecasting benchmark as an mmengine dataset (SPEC s. 5)."""
from dataclasses import asdict
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
from mmdet3d.registry import DATASETS, TRANSFORMS
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from ..datasets.av2_io import list_lidar_timestamps, read_city_from_ego
from ..datasets.errors import AV2DataError
from .occ_forecasting_protocol import get_protocol
from .query_rays import NS_PER_S, frame_indices, split_log_dirs


def nearest_sweeps(lidar_ns: np.ndarray, wanted_ns: np.ndarray, tolerance_s: float, log_id: str,
                   log_dir: Path) -> List[int]:
    """Timestamps of the sweeps nearest to each wanted time.

    Raises:
        AV2DataError: no sweep lies within ``tolerance_s`` of a wanted time.
    """
    index = np.clip(np.searchsorted(lidar_ns, wanted_ns), 1, len(lidar_ns) - 1)
    index = np.where(
        np.abs(lidar_ns[index - 1] - wanted_ns) <= np.abs(lidar_ns[index] - wanted_ns), index - 1,
        index)
    far = np.abs(lidar_ns[index] - wanted_ns) > tolerance_s * NS_PER_S
    if far.any():
        raise AV2DataError(
            f'no lidar sweep within {tolerance_s * 1e3:.0f} ms of a model input time',
            log_id=log_id,
            path=str(log_dir / 'sensors' / 'lidar'),
            timestamp_ns=int(wanted_ns[far][0]),
            fix='restore the dropped sweep, or give the dataset a smaller num_past_sweeps / '
            'past_interval_s.')
    return lidar_ns[index].tolist()


@DATASETS.register_module()
class AV2OccForecastingDataset(BaseDataset):
    """Benchmark frames of an AV2-format split, read straight from ``<data_root>/sensor``.

    Frames are exactly those of :func:`~.query_rays.generate_query_frames` for each horizon
    (same logs, same t = 0 sweeps), so a model is scored on the rows the baselines are. A
    sample holds only timestamps: ``timestamp_ns`` (t = 0), ``future_timestamps_ns`` (the
    protocol's future frames, one set of query rays each), ``past_timestamps_ns`` (the
    model's input sweeps: ``num_past_sweeps`` at ``past_interval_s``, as in pre-training,
    which is not the protocol's 0.6 s spacing at 3 s), ``horizon`` ('1s' / '3s') and
    ``protocol`` (the protocol's fields), plus ``log`` (its pose table) and ``data_root``.

    Args:
        data_root: the folder that contains ``sensor/``.
        split: split folder ('val' for the benchmark).
        horizons: horizons in seconds (1 and / or 3); each frame appears once per horizon.
        protocol_overrides: fields replaced in every horizon's protocol (e.g. ``num_future``,
            ``frame_stride_sweeps``, for short logs).
        max_logs: use only the first logs (sorted by id).
        max_frames_per_log: use only the first frames of each log and horizon.
        num_past_sweeps: model input sweeps, t = 0 included.
        past_interval_s: spacing of the model input sweeps (s).
        pipeline: transforms (``LoadPastSweeps``, ``LoadOccForecastingQueries``,
            ``PackOccForecastingInputs``).
        **kwargs: passed to :class:`mmengine.dataset.BaseDataset`.

    Raises:
        AV2DataError: no frame in the split (every log too short), or a model input sweep is
            missing.
    """

    METAINFO = dict(dataset='av2_occ_forecasting')

    def __init__(self,
                 data_root: str,
                 split: str = 'val',
                 horizons: Sequence[int] = (1, 3),
                 protocol_overrides: Optional[dict] = None,
                 max_logs: Optional[int] = None,
                 max_frames_per_log: Optional[int] = None,
                 num_past_sweeps: int = 5,
                 past_interval_s: float = 0.2,
                 pipeline=(),
                 **kwargs):
        self.split = split
        self.protocols = [get_protocol(h, **(protocol_overrides or {})) for h in horizons]
        self.max_logs = max_logs
        self.max_frames_per_log = max_frames_per_log
        self.num_past_sweeps = num_past_sweeps
        self.past_interval_s = past_interval_s
        self.logs = {}
        pipeline = [TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline]
        kwargs.setdefault('test_mode', True)
        super().__init__(data_root=data_root, pipeline=pipeline, **kwargs)

    def load_data_list(self) -> List[dict]:
        root = Path(self.data_root)
        data_list = []
        past_offsets_ns = np.round(-self.past_interval_s *
                                   np.arange(self.num_past_sweeps - 1, -1, -1) * NS_PER_S).astype(
                                       np.int64)
        for log_dir in split_log_dirs(root, self.split)[:self.max_logs]:
            lidar_ns = list_lidar_timestamps(log_dir)
            pose_ns, city_from_ego = read_city_from_ego(log_dir)
            frames = 0
            for protocol in self.protocols:
                past, future = protocol.sweep_offsets()
                for k in frame_indices(lidar_ns, protocol)[:self.max_frames_per_log]:
                    stamp = int(lidar_ns[k])
                    data_list.append(
                        dict(
                            sample_idx=len(data_list),
                            log_id=log_dir.name,
                            timestamp_ns=stamp,
                            horizon=protocol.horizon,
                            protocol=asdict(protocol),
                            past_timestamps_ns=nearest_sweeps(lidar_ns, stamp + past_offsets_ns,
                                                              protocol.max_time_error_s,
                                                              log_dir.name, log_dir),
                            future_timestamps_ns=[int(lidar_ns[k + o]) for o in future]))
                    frames += 1
            if frames == 0:
                print_log(
                    f'[occ_forecasting] log {log_dir.name} ({self.split}): too short for the '
                    f'{[p.horizon for p in self.protocols]} protocol(s); skipped',
                    logger='current')
                continue
            self.logs[log_dir.name] = dict(
                log_id=log_dir.name,
                log_dir=str(log_dir.relative_to(root)),
                pose_timestamps_ns=pose_ns,
                city_from_ego=city_from_ego)
        if not data_list:
            raise AV2DataError(
                f'no 4D occupancy forecasting frame in split {self.split!r}: every log is '
                f'shorter than the {[p.horizon for p in self.protocols]} protocol needs',
                path=str(root / 'sensor' / self.split),
                fix='use horizons=[1], or protocol_overrides=dict(num_future=...) for short '
                'logs.')
        return data_list

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        info['log'] = self.logs[info['log_id']]
        info['data_root'] = self.data_root
        return info
