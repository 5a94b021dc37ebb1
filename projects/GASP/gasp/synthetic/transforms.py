"""Rotations, quaternions and time-sampled poses used by the synthetic world.

Frames: ``world`` is the generator's local frame (intersection at the origin, z up); the AV2
``city`` frame is ``world`` shifted by a constant translation (no rotation), see
:class:`gasp.synthetic.scene.Scene`. ``ego`` is AV2's vehicle frame (rear axle, x forward, z up).
"""
from dataclasses import dataclass

import numpy as np


def rotation_from_ypr(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """Rotation matrices R = Rz(yaw) @ Ry(pitch) @ Rx(roll).

    Args:
        yaw, pitch, roll: (...,) angles in radians.

    Returns:
        (..., 3, 3) rotation matrices (columns are the rotated frame's axes).
    """
    yaw, pitch, roll = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64)
                                             for a in (yaw, pitch, roll)))
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    rot = np.empty(yaw.shape + (3, 3))
    rot[..., 0, 0] = cy * cp
    rot[..., 0, 1] = cy * sp * sr - sy * cr
    rot[..., 0, 2] = cy * sp * cr + sy * sr
    rot[..., 1, 0] = sy * cp
    rot[..., 1, 1] = sy * sp * sr + cy * cr
    rot[..., 1, 2] = sy * sp * cr - cy * sr
    rot[..., 2, 0] = -sp
    rot[..., 2, 1] = cp * sr
    rot[..., 2, 2] = cp * cr
    return rot


def quat_wxyz_from_rotation(rot: np.ndarray) -> np.ndarray:
    """Scalar-first unit quaternions (qw >= 0) from rotation matrices.

    Args:
        rot: (..., 3, 3) rotation matrices.

    Returns:
        (..., 4) quaternions (qw, qx, qy, qz).
    """
    rot = np.asarray(rot, dtype=np.float64)
    m = rot.reshape(-1, 3, 3)
    q = np.empty((m.shape[0], 4))
    tr = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    # Four branches (Shepperd); pick the numerically largest denominator per matrix.
    cand = np.stack([tr, m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]], axis=1)
    branch = np.argmax(cand, axis=1)
    for b in range(4):
        sel = branch == b
        if not sel.any():
            continue
        r = m[sel]
        if b == 0:
            s = np.sqrt(1.0 + tr[sel]) * 2.0
            q[sel] = np.stack([
                0.25 * s, (r[:, 2, 1] - r[:, 1, 2]) / s, (r[:, 0, 2] - r[:, 2, 0]) / s,
                (r[:, 1, 0] - r[:, 0, 1]) / s
            ], 1)
        elif b == 1:
            s = np.sqrt(1.0 + r[:, 0, 0] - r[:, 1, 1] - r[:, 2, 2]) * 2.0
            q[sel] = np.stack([(r[:, 2, 1] - r[:, 1, 2]) / s, 0.25 * s,
                               (r[:, 0, 1] + r[:, 1, 0]) / s, (r[:, 0, 2] + r[:, 2, 0]) / s], 1)
        elif b == 2:
            s = np.sqrt(1.0 + r[:, 1, 1] - r[:, 0, 0] - r[:, 2, 2]) * 2.0
            q[sel] = np.stack([(r[:, 0, 2] - r[:, 2, 0]) / s,
                               (r[:, 0, 1] + r[:, 1, 0]) / s, 0.25 * s,
                               (r[:, 1, 2] + r[:, 2, 1]) / s], 1)
        else:
            s = np.sqrt(1.0 + r[:, 2, 2] - r[:, 0, 0] - r[:, 1, 1]) * 2.0
            q[sel] = np.stack([(r[:, 1, 0] - r[:, 0, 1]) / s, (r[:, 0, 2] + r[:, 2, 0]) / s,
                               (r[:, 1, 2] + r[:, 2, 1]) / s, 0.25 * s], 1)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q[q[:, 0] < 0] *= -1.0
    return q.reshape(rot.shape[:-2] + (4, ))


def make_se3(rot: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """(..., 4, 4) homogeneous transforms from (..., 3, 3) rotations and (..., 3) translations."""
    rot = np.asarray(rot, dtype=np.float64)
    out = np.zeros(rot.shape[:-2] + (4, 4))
    out[..., :3, :3] = rot
    out[..., :3, 3] = trans
    out[..., 3, 3] = 1.0
    return out


def invert_se3(mat: np.ndarray) -> np.ndarray:
    """Inverse of (..., 4, 4) rigid transforms: ``b_from_a`` -> ``a_from_b``."""
    rot_t = np.swapaxes(mat[..., :3, :3], -1, -2)
    return make_se3(rot_t, -(rot_t @ mat[..., :3, 3:])[..., 0])


def transform_points(mat: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (4, 4) transform ``b_from_a`` to (N, 3) points in frame a -> (N, 3) in frame b."""
    return points @ mat[:3, :3].T + mat[:3, 3]


@dataclass
class SampledTrajectory:
    """States sampled on a uniform time grid and linearly interpolated in between.

    The interpolation *is* the motion model: every sensor and label uses the same function, so
    poses, lidar returns and images agree exactly.

    Args:
        t0_s: time of the first sample, seconds since log start.
        dt_s: sample spacing in seconds.
        states: (K, D) or (O, K, D) samples (e.g. x, y, z, yaw with yaw unwrapped).
    """

    t0_s: float
    dt_s: float
    states: np.ndarray

    def _index(self, t_s: np.ndarray):
        k = self.states.shape[-2]
        u = np.clip((np.asarray(t_s, dtype=np.float64) - self.t0_s) / self.dt_s, 0.0, k - 1.0)
        i0 = np.minimum(np.floor(u).astype(np.int64), k - 2)
        return i0, (u - i0)[..., None]

    def at(self, t_s: np.ndarray) -> np.ndarray:
        """Interpolated states at times ``t_s`` (...,) -> (..., D) or (O, ..., D)."""
        i0, w = self._index(t_s)
        s = self.states
        return s[..., i0, :] * (1.0 - w) + s[..., i0 + 1, :] * w
