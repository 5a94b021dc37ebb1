from .bev_forecasting_metric import BEVForecastingMetric, binned_average_precision
from .ego_trajectory_metric import EgoTrajectoryMetric
from .map_segmentation_metric import MapSegmentationMetric
from .semantic_occupancy_metric import SemanticOccupancyMetric, iou_from_confusion

__all__ = [
    'BEVForecastingMetric', 'binned_average_precision', 'SemanticOccupancyMetric',
    'iou_from_confusion', 'MapSegmentationMetric', 'EgoTrajectoryMetric'
]
