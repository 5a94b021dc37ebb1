from .av2_infos import SampleTiming, create_av2_infos
from .av2_occ_dataset import AV2OccDataset
from .collate import gasp_collate, unpack_batch
from .errors import AV2DataError
from .nuscenes_infos import create_nuscenes_infos
from .nuscenes_occ_dataset import NuScenesOccDataset
from .transforms import *  # noqa: F401,F403

__all__ = [
    'AV2OccDataset', 'AV2DataError', 'SampleTiming', 'create_av2_infos', 'NuScenesOccDataset',
    'create_nuscenes_infos', 'gasp_collate', 'unpack_batch'
]
