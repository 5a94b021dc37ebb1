"""Ego poses between table rows: rotation by slerp, translation linearly."""
import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from ..geometry import invert


class PoseInterpolator:
    """``city_from_ego`` at any time inside (clamped to) the span of a pose table.

    Args:
        timestamps_ns: (T,) sorted pose times.
        city_from_ego: (T, 4, 4) poses.
    """

    def __init__(self, timestamps_ns: np.ndarray, city_from_ego: np.ndarray):
        self.timestamps_ns = np.asarray(timestamps_ns, dtype=np.int64)
        self.city_from_ego = np.asarray(city_from_ego, dtype=np.float64)
        self._t0 = self.timestamps_ns[0]
        times_s = (self.timestamps_ns - self._t0) * 1e-9
        self._times_s = times_s
        self._slerp = Slerp(times_s, Rotation.from_matrix(self.city_from_ego[:, :3, :3]))

    def __call__(self, query_ns) -> np.ndarray:
        """(Q, 4, 4) ``city_from_ego`` at the query times (clamped to the table span)."""
        query = np.clip(
            np.asarray(query_ns, dtype=np.int64), self.timestamps_ns[0], self.timestamps_ns[-1])
        times_s = (query - self._t0) * 1e-9
        out = np.zeros((len(query), 4, 4))
        out[:, :3, :3] = self._slerp(times_s).as_matrix()
        for axis in range(3):
            out[:, axis, 3] = np.interp(times_s, self._times_s, self.city_from_ego[:, axis, 3])
        out[:, 3, 3] = 1.0
        return out

    def sweep_from_firing(self, sweep_ns: int, offsets_ns: np.ndarray) -> np.ndarray:
        """(Q, 4, 4) ``ego_sweep_from_ego_fire``: the ego frame at firing time ``sweep_ns +
        offset`` expressed in the ego frame at the sweep timestamp (AV2's motion
        compensation target)."""
        city_from_sweep = self([sweep_ns])[0]
        # int64: sweep_ns + int32 offsets overflows int32 under numpy 2's promotion rules.
        fire_ns = sweep_ns + np.asarray(offsets_ns, dtype=np.int64)
        return invert(city_from_sweep)[None] @ self(fire_ns)
