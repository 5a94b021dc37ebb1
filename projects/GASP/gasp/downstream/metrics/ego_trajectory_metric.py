"""Ego trajectory prediction: L2 error of the waypoints in metres."""
from typing import Dict, List, Sequence

import numpy as np
from mmdet3d.registry import METRICS
from mmengine.evaluator import BaseMetric


@METRICS.register_module()
class EgoTrajectoryMetric(BaseMetric):
    """Mean L2 distance (m) between predicted and true ego waypoints.

    Reads ``pred_ego_waypoints`` and ``ego_waypoints`` (W, 2). Reports ``L2@<t>s`` per
    waypoint (mean over samples) and ``L2`` (mean over waypoints and samples).

    Args:
        times_s: the W waypoint times (names of the per-waypoint results).
    """

    default_prefix = 'ego_traj'

    def __init__(self,
                 times_s: Sequence[float] = (1.0, 2.0, 3.0),
                 collect_device: str = 'cpu',
                 prefix: str = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.times_s = tuple(times_s)

    def process(self, data_batch, data_samples: Sequence) -> None:
        for sample in data_samples:
            sample = sample.to_dict() if hasattr(sample, 'to_dict') else sample
            pred = sample['pred_ego_waypoints'].float().cpu().numpy()
            true = sample['ego_waypoints'].float().cpu().numpy()
            self.results.append(np.linalg.norm(pred - true, axis=-1))  # (W,)

    def compute_metrics(self, results: List[np.ndarray]) -> Dict[str, float]:
        errors = np.stack(results)  # (N, W)
        metrics = {f'L2@{t:g}s': float(errors[:, k].mean()) for k, t in enumerate(self.times_s)}
        metrics['L2'] = float(errors.mean())
        return metrics
