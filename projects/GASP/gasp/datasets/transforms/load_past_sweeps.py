"""Load the input sweeps of a sample into its reference frame."""
from typing import Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet3d.registry import TRANSFORMS

from ...geometry import outside_box_xy, transform_points
from ..log_frames import read_log_sweep, ref_from_ego_at

NS_PER_S = 1e9


@TRANSFORMS.register_module()
class LoadPastSweeps(BaseTransform):
    """Read the past sweeps of a sample and move them into the reference frame.

    Sweeps are read in the ego frame at their own timestamp (AV2 stores them so; nuScenes
    sweeps are moved there from the sensor frame by the reader). Each is moved by
    ``ref_from_ego_t = inv(city_from_ego_ref) @ city_from_ego_t``.

    Adds ``points``: (N, 5) float32 with columns x, y, z (reference frame, m),
    intensity / 255, t_rel_s (sweep time minus reference time, <= 0).

    Args:
        ego_box_xy: (x_min, y_min, x_max, y_max) of the ego vehicle in its own frame (m);
            returns inside it are removed. None keeps them.
    """

    def __init__(self, ego_box_xy: Sequence[float] = (-1.25, -1.2, 4.1, 1.2)):
        self.ego_box_xy = ego_box_xy

    def _outside_ego_box(self, sweep: dict):
        """(xyz_ego (N, 3), intensity (N,)) of the returns outside the ego box."""
        if self.ego_box_xy is None:
            return sweep['xyz_ego'], sweep['intensity']
        keep = outside_box_xy(sweep['xyz_ego'], self.ego_box_xy)
        # np.compress: boolean row indexing of an (N, 3) array is 4x slower.
        return np.compress(keep, sweep['xyz_ego'], axis=0), np.compress(keep, sweep['intensity'])

    def transform(self, results: dict) -> dict:
        log = results['log']
        stamps = results['past_timestamps_ns']
        ref_from_ego = ref_from_ego_at(log, stamps, results['timestamp_ns'])
        sweeps = [
            self._outside_ego_box(read_log_sweep(results, stamp, fields=('intensity', )))
            for stamp in stamps
        ]
        # One output array, each sweep written into its rows (no per-sweep chunks to join).
        points = np.empty((sum(len(xyz) for xyz, _ in sweeps), 5), dtype=np.float32)
        start = 0
        for k, (stamp, (xyz_ego, intensity)) in enumerate(zip(stamps, sweeps)):
            rows = points[start:start + len(xyz_ego)]
            start += len(xyz_ego)
            transform_points(ref_from_ego[k], xyz_ego, out=rows[:, :3])
            rows[:, 3] = intensity / np.float32(255.0)
            rows[:, 4] = np.float32((stamp - results['timestamp_ns']) / NS_PER_S)
        results['points'] = points
        return results
