"""Per-class BEV occupancy at future times, rasterized from annotation cuboids."""
from typing import Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet3d.registry import TRANSFORMS

from ...geometry import yaw_of
from ..bev_grid import BEVGrid, rasterize_boxes


@TRANSFORMS.register_module()
class BEVSemanticTargets(BaseTransform):
    """Rasterize the cuboids of :class:`LoadFutureCuboids` into per-class BEV occupancy.

    A cell of class c at frame k is occupied when its centre lies inside the (x, y) footprint
    of a class-c cuboid of frame k (reference frame).

    Adds ``bev_semantics``: (T, C, H, W) uint8, T frames of ``future_cuboids``, C classes.

    Args:
        point_cloud_range: region of the raster (its x, y part is used).
        cell_size: raster cell size (m).
        num_classes: C, the number of class groups of :class:`LoadFutureCuboids`.
    """

    def __init__(self, point_cloud_range: Sequence[float], cell_size: float, num_classes: int):
        self.grid = BEVGrid.from_range(point_cloud_range, cell_size)
        self.num_classes = num_classes

    def transform(self, results: dict) -> dict:
        cuboids = results['future_cuboids']
        out = np.zeros((len(cuboids['times_s']), self.num_classes) + self.grid.shape, dtype=bool)
        pose = cuboids['ref_from_object']
        yaws = yaw_of(pose)
        for i, (k, c) in enumerate(zip(cuboids['frame_index'], cuboids['class_index'])):
            rasterize_boxes(
                self.grid,
                pose[i:i + 1, :2, 3],
                yaws[i:i + 1],
                cuboids['size_lwh'][i:i + 1, 0],
                cuboids['size_lwh'][i:i + 1, 1],
                out=out[k, c])
        results['bev_semantics'] = out.astype(np.uint8)
        return results
