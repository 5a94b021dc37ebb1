from .load_feature_targets import LoadFeatureTargets
from .load_future_ego_path import LoadFutureEgoPath
from .load_future_rays import LoadFutureRays
from .load_missing_rays import LoadMissingRays
from .load_past_sweeps import LoadPastSweeps
from .pack_gasp_inputs import PackGASPInputs
from .random_yaw_rotation import RandomYawRotation

__all__ = [
    'LoadPastSweeps', 'LoadFutureRays', 'LoadFutureEgoPath', 'RandomYawRotation', 'PackGASPInputs',
    'LoadMissingRays', 'LoadFeatureTargets'
]
