from .deferred_runtime_info_hook import DeferredRuntimeInfoHook
from .field_visualization_hook import FieldVisualizationHook
from .nonfinite_guard_hook import NonFiniteGuardHook, NonFiniteLossError
from .random_state_hook import RandomStateHook
from .rank_consistency_hook import RankConsistencyHook
from .skipped_samples_hook import SkippedSamplesHook
from .validate_at_start_hook import ValidateAtStartHook

__all__ = [
    'DeferredRuntimeInfoHook', 'FieldVisualizationHook', 'NonFiniteGuardHook', 'NonFiniteLossError',
    'RandomStateHook', 'RankConsistencyHook', 'SkippedSamplesHook', 'ValidateAtStartHook'
]
