"""Rotation augmentation about +z, applied to the inputs and every target together."""
from typing import Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet3d.registry import TRANSFORMS


def rotate_xy(xy: np.ndarray, yaw: float) -> np.ndarray:
    """Rotate the first two columns of (N, >=2) coordinates by ``yaw`` about the origin, in
    place; returns ``xy``.

    Each row's (x, y) of a float32 / float64 array is viewed as one complex number and
    multiplied by e^(i yaw): a single pass over the rows, where a column at a time walks
    the whole of a wide array (``points`` (N, 5)) once per column and operation.
    """
    complex_of = {np.dtype(np.float32): np.complex64, np.dtype(np.float64): np.complex128}
    if xy.dtype in complex_of and xy.strides[1] == xy.itemsize:
        as_complex = complex_of[xy.dtype]
        xy[:, :2].view(as_complex)[:, 0] *= as_complex(np.exp(1j * yaw))
        return xy
    c, s = np.cos(yaw), np.sin(yaw)
    x = c * xy[:, 0] - s * xy[:, 1]
    xy[:, 1] = s * xy[:, 0] + c * xy[:, 1]
    xy[:, 0] = x
    return xy


@TRANSFORMS.register_module()
class RandomYawRotation(BaseTransform):
    """Rotate the whole sample about the reference frame's z axis by a random yaw.

    Rotated together: ``points`` (x, y), the ``origins`` and ``directions`` of ``rays`` and
    ``missing_rays``, the ``points`` of ``feature_targets`` (features are attached to points
    and do not change), and the ego path (positions and headings). The yaw is recorded as
    ``yaw_aug`` so that the augmented reference frame is ``rot_z(yaw_aug) @ ref``. The arrays
    are rotated in place (the loading transforms made them for this sample).

    Args:
        yaw_range: (low, high) in radians; uniform (default: full circle).
        prob: probability of rotating a sample.
    """

    def __init__(self, yaw_range: Tuple[float, float] = (-np.pi, np.pi), prob: float = 1.0):
        self.yaw_range = yaw_range
        self.prob = prob

    def transform(self, results: dict) -> dict:
        yaw = (float(np.random.uniform(*self.yaw_range)) if np.random.rand() < self.prob else 0.0)
        results['yaw_aug'] = results.get('yaw_aug', 0.0) + yaw
        if yaw == 0.0:
            return results
        if 'points' in results:
            results['points'] = rotate_xy(results['points'], yaw)
        for key in ('rays', 'missing_rays'):
            if key in results:
                rays = results[key]
                rays['origins'] = rotate_xy(rays['origins'], yaw)
                rays['directions'] = rotate_xy(rays['directions'], yaw)
        if 'feature_targets' in results:
            targets = results['feature_targets']
            targets['points'] = rotate_xy(targets['points'], yaw)
        if 'ego_path' in results:
            path = results['ego_path']
            path['xy'] = rotate_xy(path['xy'], yaw)
            path['yaw'] = (np.angle(np.exp(1j * (path['yaw'] + yaw)))).astype(np.float32)
        return results
