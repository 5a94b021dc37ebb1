"""GASP's model parts, registered into ``mmdet3d.registry.MODELS`` (query samplers into
``TASK_UTILS``) on import."""
from .backbones import BEVResNetFPN
from .data_preprocessors import GASPDataPreprocessor
from .decoders import ImplicitOccupancyDecoder
from .gasp_model import GASP
from .layers import FourierEmbedding, ResidualMLPBlock
from .losses import FeatureDistillationLoss, OccupancyBCELoss
from .renderers import GASPOccForecaster, LearnedDepthRenderer
from .samplers import EgoQuerySampler, OccupancyQuerySampler

__all__ = [
    'BEVResNetFPN', 'ImplicitOccupancyDecoder', 'FourierEmbedding', 'ResidualMLPBlock',
    'FeatureDistillationLoss', 'OccupancyBCELoss', 'EgoQuerySampler', 'OccupancyQuerySampler',
    'GASPDataPreprocessor', 'GASP', 'GASPOccForecaster', 'LearnedDepthRenderer'
]
