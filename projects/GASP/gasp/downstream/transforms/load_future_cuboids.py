"""Load the annotation cuboids of a sample at its reference time and future sweeps."""
import os.path as osp
from collections import OrderedDict
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
from av2.geometry.geometry import quat_to_mat
from av2.utils.io import read_feather
from mmcv.transforms import BaseTransform
from mmdet3d.registry import TRANSFORMS

from ...datasets.errors import AV2DataError
from ...datasets.log_frames import ref_from_ego_at
from ..av2_classes import AV2_CLASS_GROUPS, category_to_class, check_class_groups

NS_PER_S = 1e9
ANNOTATION_COLUMNS = ('timestamp_ns', 'category', 'length_m', 'width_m', 'height_m', 'qw', 'qx',
                      'qy', 'qz', 'tx_m', 'ty_m', 'tz_m')


def read_annotations(path: str, log_id: str, class_groups: Dict[str, Sequence[str]]) -> dict:
    """The cuboids of one ``annotations.feather`` (read with av2) that belong to a class group.

    Returns:
        dict of arrays over the kept cuboids, sorted by time: ``timestamps_ns`` (N,) int64,
        ``ego_from_object`` (N, 4, 4) float64 (ego frame at the row's timestamp),
        ``size_lwh`` (N, 3) float32, ``class_index`` (N,) int64.

    Raises:
        AV2DataError: the file is missing, unreadable or lacks a column.
    """
    if not osp.isfile(path):
        raise AV2DataError(
            'annotation file is missing',
            log_id=log_id,
            path=path,
            fix='downstream tasks need labelled logs (train/val; the test split has none): '
            'restore the file or build the info file from labelled splits only.')
    try:
        table = read_feather(Path(path))
    except Exception as err:  # pyarrow raises several types for corrupt files
        raise AV2DataError(
            f'cannot read annotations ({type(err).__name__}: {err})', log_id=log_id,
            path=path) from err
    missing = [c for c in ANNOTATION_COLUMNS if c not in table.columns]
    if missing:
        raise AV2DataError(f'annotation columns {missing} are missing', log_id=log_id, path=path)
    class_index = category_to_class(table['category'].to_numpy(), class_groups)
    keep = np.flatnonzero(class_index >= 0)
    stamps = table['timestamp_ns'].to_numpy(np.int64)[keep]
    order = np.argsort(stamps, kind='stable')
    keep = keep[order]
    pose = np.zeros((len(keep), 4, 4))
    pose[:, :3, :3] = quat_to_mat(table.loc[:, ['qw', 'qx', 'qy', 'qz']].to_numpy(np.float64)[keep])
    pose[:, :3, 3] = table.loc[:, ['tx_m', 'ty_m', 'tz_m']].to_numpy(np.float64)[keep]
    pose[:, 3, 3] = 1.0
    return dict(
        timestamps_ns=stamps[order],
        ego_from_object=pose,
        size_lwh=table.loc[:, ['length_m', 'width_m', 'height_m']].to_numpy(np.float32)[keep],
        class_index=class_index[keep])


@TRANSFORMS.register_module()
class LoadFutureCuboids(BaseTransform):
    """Annotation cuboids at the reference time and at future sweeps, in the reference frame.

    The cuboids of the sweep at time ``t`` are stored in the ego frame at ``t``; they are
    moved with ``ref_from_object = ref_from_ego_t @ ego_from_object``. Only categories of a
    class group are kept.

    Adds ``future_cuboids``, a dict:
        ``times_s`` (T,) float32 and ``timestamps_ns`` (T,) int64 of the chosen frames;
        per cuboid: ``frame_index`` (N,) int64 into ``times_s``, ``ref_from_object``
        (N, 4, 4) float64, ``size_lwh`` (N, 3) float32, ``class_index`` (N,) int64.

    Args:
        times_s: wanted times after the reference (s), each matched to the reference sweep
            (t = 0) or a future sweep of the info entry; None: t = 0 and every future sweep.
        class_groups: class name -> AV2 categories (default :data:`AV2_CLASS_GROUPS`).
        max_time_error_s: matching tolerance of ``times_s``.
        cache_logs: annotation tables kept in memory (per worker).
    """

    def __init__(self,
                 times_s: Optional[Sequence[float]] = None,
                 class_groups: Optional[Dict[str, Sequence[str]]] = None,
                 max_time_error_s: float = 0.05,
                 cache_logs: int = 4):
        self.times_s = None if times_s is None else [float(t) for t in times_s]
        self.class_groups = check_class_groups(class_groups or AV2_CLASS_GROUPS)
        self.max_time_error_s = max_time_error_s
        self.cache_logs = cache_logs
        self._cache = OrderedDict()

    def _annotations(self, results: dict) -> dict:
        log = results['log']
        if log.get('annotations') is None:
            raise AV2DataError(
                'the info file records no annotations.feather for this log',
                log_id=log['log_id'],
                path=log['log_dir'],
                fix='downstream tasks need labelled logs: use train/val info files.')
        path = osp.join(results['data_root'], log['annotations'])
        if path not in self._cache:
            self._cache[path] = read_annotations(path, log['log_id'], self.class_groups)
            while len(self._cache) > self.cache_logs:
                self._cache.popitem(last=False)
        return self._cache[path]

    def frame_timestamps(self, results: dict) -> np.ndarray:
        """(T,) sweep timestamps of the wanted times (the reference sweep or future sweeps)."""
        t0 = int(results['timestamp_ns'])
        candidates = np.array([t0] + list(results['future_timestamps_ns']), dtype=np.int64)
        if self.times_s is None:
            return candidates
        wanted = t0 + np.round(np.asarray(self.times_s) * NS_PER_S).astype(np.int64)
        pick = np.abs(candidates[None] - wanted[:, None]).argmin(1)
        error = np.abs(candidates[pick] - wanted)
        if (error > self.max_time_error_s * NS_PER_S).any():
            bad = int(np.argmax(error))
            raise AV2DataError(
                f'no sweep within {self.max_time_error_s} s of t0 + {self.times_s[bad]} s '
                f'(future sweeps reach {(candidates[-1] - t0) / NS_PER_S:.2f} s)',
                log_id=results['log']['log_id'],
                timestamp_ns=t0,
                fix='choose times within the info file horizon, or re-create the info files '
                'with a longer --future-horizon.')
        return candidates[pick]

    def transform(self, results: dict) -> dict:
        table = self._annotations(results)
        stamps = self.frame_timestamps(results)
        ref_from_ego = ref_from_ego_at(results['log'], stamps, results['timestamp_ns'])
        frame_index, rows = [], []
        for k, stamp in enumerate(stamps):
            lo, hi = np.searchsorted(table['timestamps_ns'], [stamp, stamp + 1])
            rows.append(np.arange(lo, hi))
            frame_index.append(np.full(hi - lo, k, dtype=np.int64))
        rows, frame_index = np.concatenate(rows), np.concatenate(frame_index)
        results['future_cuboids'] = dict(
            times_s=((stamps - int(results['timestamp_ns'])) / NS_PER_S).astype(np.float32),
            timestamps_ns=stamps,
            frame_index=frame_index,
            ref_from_object=ref_from_ego[frame_index] @ table['ego_from_object'][rows],
            size_lwh=table['size_lwh'][rows],
            class_index=table['class_index'][rows])
        return results
