"""Load the query rays of a benchmark frame: ground truth in the benchmark's frame, rays for the
model in its reference frame."""
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet3d.registry import TRANSFORMS

from ..datasets.log_frames import log_dir_of
from ..geometry import transform_points
from .occ_forecasting_protocol import OccForecastingProtocol
from .query_rays import NS_PER_S, future_query_rays
from .up_lidar_log import UpLidarLog


@TRANSFORMS.register_module()
class LoadOccForecastingQueries(BaseTransform):
    """Query rays of a frame of :class:`AV2OccForecastingDataset` (SPEC s. 5).

    The rays are the benchmark's (:func:`~.query_rays.future_query_rays`: every 5th ego-free
    return of each future sweep, up_lidar frame at t = 0). Adds:

    - ``occ_queries``: dict of F lists (one entry per future frame) ``origins`` (M_k, 3),
      ``directions`` (M_k, 3) and ``gt_depths`` (M_k,), float32, up_lidar frame at t = 0:
      what :class:`OccForecastingMetric` scores;
    - ``query_rays``: the same M = sum M_k rays for the model, flattened in step order, in the
      model's reference frame (the ego frame at t = 0,
      ``origins_ref = ego_from_lidar @ origins_lidar``; depths are frame-free):
      ``origins`` (M, 3), ``directions`` (M, 3), ``times_s`` (M,) (future sweep time minus
      t = 0) and ``step_index`` (M,) int16.
    """

    def __init__(self):
        self._log = None  # the last log read (samples of one log come in a row)

    def log(self, results: dict) -> UpLidarLog:
        log_dir = log_dir_of(results)
        if self._log is None or self._log.log_dir != log_dir:
            self._log = UpLidarLog(log_dir)
        return self._log

    def transform(self, results: dict) -> dict:
        log = self.log(results)
        protocol = OccForecastingProtocol(**results['protocol'])
        stamp, future_ns = results['timestamp_ns'], results['future_timestamps_ns']
        origins, directions, depths = future_query_rays(log, stamp, future_ns, protocol)
        results['occ_queries'] = dict(origins=origins, directions=directions, gt_depths=depths)

        counts = [len(d) for d in depths]
        origins_lidar = np.concatenate(origins).astype(np.float64)
        rotation = log.ego_from_lidar[:3, :3]
        times_s = [(t - stamp) / NS_PER_S for t in future_ns]
        results['query_rays'] = dict(
            origins=transform_points(log.ego_from_lidar, origins_lidar).astype(np.float32),
            directions=(np.concatenate(directions) @ rotation.T).astype(np.float32),
            times_s=np.repeat(np.float32(times_s), counts),
            step_index=np.repeat(np.arange(len(counts), dtype=np.int16), counts))
        return results
