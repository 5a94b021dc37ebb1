"""Evaluation: the 4D occupancy forecasting benchmark (SPEC s. 5) and field metrics.

- :class:`OccForecastingProtocol` / :func:`get_protocol`: which sweeps and rays (1 s, 3 s).
- :func:`generate_query_frames`, :class:`OccForecastingFrame`: query rays of an AV2 root.
- :func:`write_challenge_rays`, :func:`read_challenge_rays`, :func:`write_submission`,
  :func:`read_submission`: the challenge's JSON files.
- :class:`OccForecastingMetric` (METRICS), :func:`evaluate_frames`: L1, AbsRel, CD, NFCD.
- :class:`ExpectedDepthRenderer` (MODELS): expected depth from a field or a dense grid.
- :class:`StaticWorldBaseline`, :class:`ConstantVelocityBaseline`: model-free baselines.
- :class:`AV2OccForecastingDataset` (DATASETS), :class:`LoadOccForecastingQueries`,
  :class:`PackOccForecastingInputs` (TRANSFORMS): the benchmark in mmengine's test loop.
- :class:`OccForecastingVisualizationHook` (HOOKS): PNG of rendered against true depths.
"""
from .challenge_json import (read_challenge_rays, read_submission, write_challenge_rays,
                             write_submission)
from .chamfer import chamfer_distance_squared, nearest_neighbour, nearest_squared_distance
from .expected_depth_renderer import ExpectedDepthRenderer
from .load_occ_forecasting_queries import LoadOccForecastingQueries
from .occ_forecasting_baselines import (BASELINES, ConstantVelocityBaseline, StaticWorldBaseline,
                                        predict_frames)
from .occ_forecasting_dataset import AV2OccForecastingDataset
from .occ_forecasting_errors import occ_forecasting_step_errors
from .occ_forecasting_metric import OccForecastingMetric, evaluate_frames
from .occ_forecasting_protocol import PROTOCOLS, OccForecastingProtocol, get_protocol
from .occ_forecasting_vis_hook import OccForecastingVisualizationHook, draw_occ_forecasting_frame
from .occupancy_field_metric import OccupancyFieldMetric
from .pack_occ_forecasting_inputs import PackOccForecastingInputs
from .query_rays import OccForecastingFrame, generate_query_frames, log_query_frames
from .up_lidar_log import UpLidarLog

__all__ = [
    'OccForecastingProtocol', 'PROTOCOLS', 'get_protocol', 'OccForecastingFrame',
    'generate_query_frames', 'log_query_frames', 'UpLidarLog', 'write_challenge_rays',
    'read_challenge_rays', 'write_submission', 'read_submission', 'OccForecastingMetric',
    'evaluate_frames', 'occ_forecasting_step_errors', 'chamfer_distance_squared',
    'nearest_squared_distance', 'nearest_neighbour', 'ExpectedDepthRenderer', 'StaticWorldBaseline',
    'ConstantVelocityBaseline', 'BASELINES', 'predict_frames', 'OccupancyFieldMetric',
    'AV2OccForecastingDataset', 'LoadOccForecastingQueries', 'PackOccForecastingInputs',
    'OccForecastingVisualizationHook', 'draw_occ_forecasting_frame'
]
