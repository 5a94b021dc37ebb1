"""Rigid transforms used across the pipeline, named by the frames they connect.

A transform ``a_from_b`` is a (4, 4) homogeneous matrix that maps points in frame ``b`` to
frame ``a``: ``points_a = transform_points(a_from_b, points_b)``.
"""
from typing import Optional, Sequence

import numpy as np


def pose_matrix(quat_wxyz: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """Build homogeneous matrices from scalar-first quaternions and translations.

    Args:
        quat_wxyz: (..., 4) quaternions (qw, qx, qy, qz), not necessarily normalised.
        translation: (..., 3) translations in metres.

    Returns:
        (..., 4, 4) float64 transforms.
    """
    q = np.asarray(quat_wxyz, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    rotation = np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y), 2 *
        (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x), 2 * (x * z - w * y), 2 *
        (y * z + w * x), 1 - 2 * (x * x + y * y)
    ],
                        axis=-1).reshape(q.shape[:-1] + (3, 3))
    out = np.zeros(q.shape[:-1] + (4, 4))
    out[..., :3, :3] = rotation
    out[..., :3, 3] = translation
    out[..., 3, 3] = 1.0
    return out


def invert(a_from_b: np.ndarray) -> np.ndarray:
    """Invert (..., 4, 4) rigid transforms: returns ``b_from_a``."""
    rotation_t = np.swapaxes(a_from_b[..., :3, :3], -1, -2)
    out = np.zeros_like(a_from_b)
    out[..., :3, :3] = rotation_t
    out[..., :3, 3] = -(rotation_t @ a_from_b[..., :3, 3:4])[..., 0]
    out[..., 3, 3] = 1.0
    return out


def transform_points(a_from_b: np.ndarray,
                     points_b: np.ndarray,
                     out: Optional[np.ndarray] = None) -> np.ndarray:
    """Apply one (4, 4) transform to (N, 3) points; the result has the points' dtype.

    Args:
        a_from_b: the transform.
        points_b: (N, 3) points in frame ``b``.
        out: optional (N, 3) array (a column slice of a wider array too) to write into.

    Returns:
        (N, 3) points in frame ``a`` (``out`` when given).
    """
    rotation = a_from_b[:3, :3].astype(points_b.dtype, copy=False)
    translation = a_from_b[:3, 3].astype(points_b.dtype, copy=False)
    points_a = np.matmul(points_b, rotation.T, out=out)
    # Column by column: numpy broadcasts an (N, 3) + (3,) sum three elements at a time,
    # several times slower than the rotation itself.
    for axis in range(3):
        points_a[:, axis] += translation[axis]
    return points_a


def yaw_of(a_from_b: np.ndarray) -> np.ndarray:
    """Heading (rad) of frame ``b``'s x axis in frame ``a``, for (..., 4, 4) transforms."""
    return np.arctan2(a_from_b[..., 1, 0], a_from_b[..., 0, 0])


def rotation_z(yaw: float) -> np.ndarray:
    """(4, 4) rotation about +z by ``yaw`` radians."""
    c, s = np.cos(yaw), np.sin(yaw)
    out = np.eye(4)
    out[:2, :2] = [[c, -s], [s, c]]
    return out


def outside_box_xy(points: np.ndarray, box_xy: Sequence[float]) -> np.ndarray:
    """(N,) mask of points whose (x, y) lie outside ``box_xy = (x_min, y_min, x_max, y_max)``."""
    x_min, y_min, x_max, y_max = box_xy
    return ~((points[:, 0] >= x_min) & (points[:, 0] <= x_max) & (points[:, 1] >= y_min) &
             (points[:, 1] <= y_max))
