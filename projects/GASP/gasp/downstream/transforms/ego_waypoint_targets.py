"""Future ego waypoints (ego trajectory prediction targets) from the future ego path."""
from typing import Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet3d.registry import TRANSFORMS

from ...datasets.errors import AV2DataError


@TRANSFORMS.register_module()
class EgoWaypointTargets(BaseTransform):
    """Ego rear-axle positions at fixed future times, linearly interpolated along the path of
    :class:`LoadFutureEgoPath` (reference frame).

    Adds ``ego_waypoints``: (W, 2) float32 (x, y) in metres.

    Args:
        times_s: waypoint times after the reference (default 1, 2, 3 s, SPEC s. 5).
        max_time_error_s: how far the path may end before a waypoint time.
    """

    def __init__(self, times_s: Sequence[float] = (1.0, 2.0, 3.0), max_time_error_s: float = 0.05):
        self.times_s = np.asarray(times_s, dtype=np.float64)
        self.max_time_error_s = max_time_error_s

    def transform(self, results: dict) -> dict:
        path = results['ego_path']
        times = np.asarray(path['times_s'], dtype=np.float64)
        if times[-1] < self.times_s.max() - self.max_time_error_s:
            raise AV2DataError(
                f'the ego path ends {times[-1]:.2f} s after t0, before the waypoint at '
                f'{self.times_s.max():.2f} s',
                log_id=results['log']['log_id'],
                timestamp_ns=int(results['timestamp_ns']),
                fix='re-create the info files with --future-horizon at least the last waypoint '
                'time, or choose earlier times_s.')
        xy = np.asarray(path['xy'], dtype=np.float64)
        wanted = np.minimum(self.times_s, times[-1])
        results['ego_waypoints'] = np.stack(
            [np.interp(wanted, times, xy[:, 0]),
             np.interp(wanted, times, xy[:, 1])], axis=1).astype(np.float32)
        return results
