"""nuScenes occupancy pre-training dataset: the AV2 dataset over a nuScenes info file."""
import os.path as osp
from typing import List

from mmdet3d.registry import DATASETS

from .av2_occ_dataset import AV2OccDataset
from .errors import AV2DataError

MAKE_INFOS = ('python tools/create_data.py nuscenes --root-path <nuScenes root> --version '
              '<v1.0-...> --out-dir <folder>')


@DATASETS.register_module()
class NuScenesOccDataset(AV2OccDataset):
    """Samples for GASP/UnO pre-training from an info file of ``tools/create_data.py nuscenes``.

    Samples and log tables have the AV2 form (:mod:`.nuscenes_infos`); the log tables say
    ``format='nuscenes'``, so the transforms read nuScenes sweeps through
    :func:`.log_frames.read_log_sweep`. Arguments as :class:`AV2OccDataset`, with
    ``data_root`` the nuScenes root (the folder that holds ``samples/`` and ``sweeps/``).

    Raises:
        AV2DataError: the info file is missing or was not made from nuScenes.
    """

    METAINFO = dict(dataset='nuscenes')

    def load_data_list(self) -> List[dict]:
        if not osp.isfile(self.ann_file):
            raise AV2DataError(
                'info file not found',
                path=self.ann_file,
                fix=f'create it with '
                f'`{MAKE_INFOS}`.')
        data_list = super().load_data_list()
        other = sorted({log.get('format', 'av2') for log in self.logs.values()} - {'nuscenes'})
        if other:
            raise AV2DataError(
                f'not a nuScenes info file (its logs have format {other})',
                path=self.ann_file,
                fix=f'use AV2OccDataset for AV2 info files, or create a nuScenes one with '
                f'`{MAKE_INFOS}`.')
        return data_list
