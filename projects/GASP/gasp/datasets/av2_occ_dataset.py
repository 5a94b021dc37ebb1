"""AV2 occupancy pre-training dataset: one info entry per reference sweep."""
import os.path as osp
from typing import List

from mmdet3d.registry import DATASETS, TRANSFORMS
from mmengine.dataset import BaseDataset
from mmengine.fileio import load

from .av2_infos import INFO_VERSION
from .errors import AV2DataError


@DATASETS.register_module()
class AV2OccDataset(BaseDataset):
    """Samples for GASP/UnO pre-training from an info file of ``tools/create_data.py av2``.

    Each sample the pipeline receives holds the info entry (timestamps of past sweeps,
    future sweeps, the ego path and matched camera frames) plus ``log``: the shared table
    of its log (pose table, calibration, folder), and ``data_root``.

    Args:
        ann_file: info pkl, relative to ``data_root`` or absolute.
        data_root: the folder that contains ``sensor/``.
        pipeline: transforms that load and pack a sample.
        max_samples: keep only the first ``max_samples`` samples (-1 = all); for quick runs.
        **kwargs: passed to :class:`mmengine.dataset.BaseDataset`.
    """

    METAINFO = dict(dataset='av2')

    def __init__(self, ann_file: str, data_root: str, pipeline=(), max_samples: int = -1, **kwargs):
        self.max_samples = max_samples
        self.logs = {}
        # Built from mmdet3d's registry, so the dataset works whatever the default scope.
        pipeline = [TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline]
        super().__init__(ann_file=ann_file, data_root=data_root, pipeline=pipeline, **kwargs)

    def load_data_list(self) -> List[dict]:
        if not osp.isfile(self.ann_file):
            raise AV2DataError(
                'info file not found',
                path=self.ann_file,
                fix='create it with `python tools/create_data.py av2 '
                '--root-path <data root> --out-dir <folder>`.')
        infos = load(self.ann_file)
        if not isinstance(infos, dict) or not {'metainfo', 'data_list', 'logs'} <= set(infos):
            raise AV2DataError(
                'not a GASP AV2 info file (needs metainfo, data_list, logs)',
                path=self.ann_file,
                fix='re-create it with tools/create_data.py.')
        version = infos['metainfo'].get('info_version')
        if version != INFO_VERSION:
            raise AV2DataError(
                f'info file version {version}, this code reads {INFO_VERSION}',
                path=self.ann_file,
                fix='re-create it with tools/create_data.py.')
        for key, value in infos['metainfo'].items():
            self._metainfo.setdefault(key, value)
        self.logs = infos['logs']
        data_list = infos['data_list']
        if self.max_samples >= 0:
            data_list = data_list[:self.max_samples]
        return data_list

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        info['log'] = self.logs[info['log_id']]
        info['data_root'] = self.data_root
        return info
