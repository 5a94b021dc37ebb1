"""2D polylines parameterised by arc length (lane centerlines, agent paths)."""
from dataclasses import dataclass

import numpy as np


@dataclass
class Polyline2D:
    """A polyline in the world frame, queried by arc length.

    Args:
        xy: (K, 2) vertices, world frame, metres; consecutive vertices distinct.
    """

    xy: np.ndarray

    def __post_init__(self):
        self.xy = np.asarray(self.xy, dtype=np.float64)
        seg = np.linalg.norm(np.diff(self.xy, axis=0), axis=1)
        keep = np.concatenate([[True], seg > 1e-9])
        self.xy = self.xy[keep]
        seg = np.linalg.norm(np.diff(self.xy, axis=0), axis=1)
        self.cum_s = np.concatenate([[0.0], np.cumsum(seg)])

    @property
    def length(self) -> float:
        """Total arc length in metres."""
        return float(self.cum_s[-1])

    def point_and_heading(self, s: np.ndarray):
        """Position and heading at arc lengths ``s`` (clamped; extrapolated linearly past ends).

        Args:
            s: (...,) arc lengths in metres.

        Returns:
            xy: (..., 2) positions; yaw: (...,) headings in radians (tangent direction).
        """
        s = np.asarray(s, dtype=np.float64)
        i = np.clip(np.searchsorted(self.cum_s, s, side='right') - 1, 0, len(self.xy) - 2)
        d = self.xy[i + 1] - self.xy[i]
        seg_len = self.cum_s[i + 1] - self.cum_s[i]
        w = ((s - self.cum_s[i]) / seg_len)[..., None]
        xy = self.xy[i] + w * d
        yaw = np.arctan2(d[..., 1], d[..., 0])
        return xy, yaw

    def offset(self, lateral_m: float) -> 'Polyline2D':
        """Parallel polyline shifted to the left (positive) or right (negative) of travel."""
        normals = self.vertex_normals()
        return Polyline2D(self.xy + lateral_m * normals)

    def vertex_normals(self) -> np.ndarray:
        """(K, 2) unit left normals at the vertices (averaged over adjacent segments)."""
        d = np.diff(self.xy, axis=0)
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        tang = np.concatenate([d[:1], d[:-1] + d[1:], d[-1:]], axis=0)
        tang /= np.linalg.norm(tang, axis=1, keepdims=True)
        return np.stack([-tang[:, 1], tang[:, 0]], axis=1)

    def resample(self, spacing_m: float) -> 'Polyline2D':
        """Polyline with vertices every ``spacing_m`` (ends kept)."""
        n = max(2, int(np.ceil(self.length / spacing_m)) + 1)
        xy, _ = self.point_and_heading(np.linspace(0.0, self.length, n))
        return Polyline2D(xy)

    def slice(self, s0: float, s1: float, spacing_m: float = 2.0) -> 'Polyline2D':
        """Sub-polyline between arc lengths s0 < s1, resampled."""
        n = max(2, int(np.ceil((s1 - s0) / spacing_m)) + 1)
        xy, _ = self.point_and_heading(np.linspace(s0, s1, n))
        return Polyline2D(xy)

    def reversed(self) -> 'Polyline2D':
        """Same polyline traversed the other way."""
        return Polyline2D(self.xy[::-1].copy())

    def concat(self, other: 'Polyline2D') -> 'Polyline2D':
        """This polyline followed by ``other`` (a shared end vertex is dropped)."""
        return Polyline2D(np.concatenate([self.xy, other.xy], axis=0))


def hermite_curve(p0: np.ndarray,
                  yaw0: float,
                  p1: np.ndarray,
                  yaw1: float,
                  num: int = 16) -> Polyline2D:
    """Cubic Hermite curve from (p0, yaw0) to (p1, yaw1) (intersection connectors)."""
    dist = float(np.linalg.norm(p1 - p0))
    m0 = dist * np.array([np.cos(yaw0), np.sin(yaw0)])
    m1 = dist * np.array([np.cos(yaw1), np.sin(yaw1)])
    u = np.linspace(0.0, 1.0, num)[:, None]
    h00 = 2 * u**3 - 3 * u**2 + 1
    h10 = u**3 - 2 * u**2 + u
    h01 = -2 * u**3 + 3 * u**2
    h11 = u**3 - u**2
    return Polyline2D(h00 * p0 + h10 * m0 + h01 * p1 + h11 * m1)
