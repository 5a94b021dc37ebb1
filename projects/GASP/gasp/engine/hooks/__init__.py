from .field_visualization_hook import FieldVisualizationHook
from .rank_consistency_hook import RankConsistencyHook
from .validate_at_start_hook import ValidateAtStartHook

__all__ = ['FieldVisualizationHook', 'RankConsistencyHook', 'ValidateAtStartHook']
