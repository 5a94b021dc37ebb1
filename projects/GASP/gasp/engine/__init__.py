"""Training-time extensions: hooks registered into ``mmdet3d.registry.HOOKS``."""
from .hooks import FieldVisualizationHook, RankConsistencyHook, ValidateAtStartHook

__all__ = ['FieldVisualizationHook', 'RankConsistencyHook', 'ValidateAtStartHook']
