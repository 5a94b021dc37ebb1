"""Load the future ego path and the vehicle footprint of a sample."""
from typing import Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet3d.registry import TRANSFORMS

from ...geometry import yaw_of
from ..log_frames import ref_from_ego_at
from .load_past_sweeps import NS_PER_S


@TRANSFORMS.register_module()
class LoadFutureEgoPath(BaseTransform):
    """Future ego poses in the reference frame, for the ego-occupancy targets.

    Adds ``ego_path``: dict with ``times_s`` (E,) float32 (0 = reference time),
    ``xy`` (E, 2) float32 rear-axle position (m) and ``yaw`` (E,) float32 (rad), all in the
    reference frame; and ``ego_footprint``: (x_min, y_min, x_max, y_max) of the vehicle in
    its own frame (AV2: origin at the rear axle, 4.87 m x 1.90 m).

    Args:
        footprint_xy: the vehicle's box in its own frame (m).
    """

    def __init__(self, footprint_xy: Sequence[float] = (-1.0, -0.95, 3.87, 0.95)):
        self.footprint_xy = tuple(float(v) for v in footprint_xy)

    def transform(self, results: dict) -> dict:
        stamps = results['ego_path_timestamps_ns']
        ref_from_ego = ref_from_ego_at(results['log'], stamps, results['timestamp_ns'])
        results['ego_path'] = dict(
            times_s=((np.asarray(stamps) - results['timestamp_ns']) / NS_PER_S).astype(np.float32),
            xy=ref_from_ego[:, :2, 3].astype(np.float32),
            yaw=yaw_of(ref_from_ego).astype(np.float32))
        results['ego_footprint'] = np.asarray(self.footprint_xy, dtype=np.float32)
        return results
