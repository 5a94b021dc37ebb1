"""Training-time extensions: hooks registered into ``mmdet3d.registry.HOOKS``."""
from .hooks import (FieldVisualizationHook, NonFiniteGuardHook, NonFiniteLossError, RandomStateHook,
                    RankConsistencyHook, SkippedSamplesHook, ValidateAtStartHook)

__all__ = [
    'FieldVisualizationHook', 'NonFiniteGuardHook', 'NonFiniteLossError', 'RandomStateHook',
    'RankConsistencyHook', 'SkippedSamplesHook', 'ValidateAtStartHook'
]
