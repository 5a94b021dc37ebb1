from .bev_semantic_targets import BEVSemanticTargets
from .ego_waypoint_targets import EgoWaypointTargets
from .load_future_cuboids import LoadFutureCuboids
from .map_raster_targets import MapRasterTargets
from .pack_downstream_inputs import PackDownstreamInputs
from .semantic_occupancy_targets import SemanticOccupancyTargets

__all__ = [
    'LoadFutureCuboids', 'BEVSemanticTargets', 'SemanticOccupancyTargets', 'MapRasterTargets',
    'EgoWaypointTargets', 'PackDownstreamInputs'
]
