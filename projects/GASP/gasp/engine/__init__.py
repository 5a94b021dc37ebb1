"""Training-time extensions: hooks (``mmdet3d.registry.HOOKS``) and the sync-free optimizer
wrapper (``OPTIM_WRAPPERS``)."""
from .hooks import (DeferredRuntimeInfoHook, FieldVisualizationHook, NonFiniteGuardHook,
                    NonFiniteLossError, RandomStateHook, RankConsistencyHook, SkippedSamplesHook,
                    ValidateAtStartHook)
from .optim_wrapper import SyncFreeOptimWrapper

__all__ = [
    'DeferredRuntimeInfoHook', 'FieldVisualizationHook', 'NonFiniteGuardHook', 'NonFiniteLossError',
    'RandomStateHook', 'RankConsistencyHook', 'SkippedSamplesHook', 'SyncFreeOptimWrapper',
    'ValidateAtStartHook'
]
