from .bev_segmentation_head import BEVSegmentationHead, BEVSemanticForecastHead, MapSegmentationHead
from .downstream_model import DownstreamModel
from .ego_trajectory_head import EgoTrajectoryHead
from .semantic_occupancy_head import SemanticOccupancyHead

__all__ = [
    'DownstreamModel', 'BEVSegmentationHead', 'BEVSemanticForecastHead', 'MapSegmentationHead',
    'SemanticOccupancyHead', 'EgoTrajectoryHead'
]
