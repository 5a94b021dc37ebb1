"""BEV map layers (drivable area, lane dividers, pedestrian crossings) from the AV2 map."""
import os.path as osp
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import numpy as np
from av2.map.lane_segment import LaneMarkType
from av2.map.map_api import ArgoverseStaticMap
from mmcv.transforms import BaseTransform
from mmdet3d.registry import TRANSFORMS

from ...datasets.errors import AV2DataError
from ...datasets.log_frames import city_from_ego_at
from ...geometry import invert
from ..bev_grid import BEVGrid, rasterize_polygon, rasterize_polyline

MAP_CLASSES = ('drivable_area', 'lane_divider', 'ped_crossing')
#: Boundaries with these mark types carry no paint and are not dividers.
UNPAINTED = (LaneMarkType.NONE, LaneMarkType.UNKNOWN)


def read_map_shapes(map_dir: str, log_id: str) -> dict:
    """The map's shapes in the city frame (x, y), through av2's map API.

    Returns:
        dict(drivable_area=[(V, 2) polygons], lane_divider=[(V, 2) painted lane boundaries],
        ped_crossing=[(5, 2) polygons]).

    Raises:
        AV2DataError: the map folder or its ``log_map_archive_*.json`` is missing or bad.
    """
    folder = Path(map_dir)
    try:
        avm = ArgoverseStaticMap.from_map_dir(folder, build_raster=False)
    except Exception as err:  # av2 raises RuntimeError for a missing file, others for bad JSON
        raise AV2DataError(
            f'cannot read the vector map ({type(err).__name__}: {err})',
            log_id=log_id,
            path=str(folder / 'log_map_archive_<log_id>____<CITY>_city_<n>.json')) from err
    dividers = []
    for lane in avm.vector_lane_segments.values():
        if lane.left_mark_type not in UNPAINTED:
            dividers.append(lane.left_lane_boundary.xyz[:, :2])
        if lane.right_mark_type not in UNPAINTED:
            dividers.append(lane.right_lane_boundary.xyz[:, :2])
    return dict(
        drivable_area=[area.xyz[:, :2] for area in avm.vector_drivable_areas.values()],
        lane_divider=dividers,
        ped_crossing=[pc.polygon[:, :2] for pc in avm.vector_pedestrian_crossings.values()])


@TRANSFORMS.register_module()
class MapRasterTargets(BaseTransform):
    """Rasterize the log's vector map around the reference pose.

    Shapes move from the city frame to the reference frame with
    ``ref_from_city = inv(city_from_ego(t0))``. Drivable areas and pedestrian crossings fill
    the cells whose centres lie inside them; lane dividers (painted lane boundaries) mark the
    cells within ``line_width / 2`` of the line.

    Adds ``map_raster``: (len(classes), H, W) uint8.

    Args:
        point_cloud_range: region of the raster (its x, y part is used).
        cell_size: raster cell size (m).
        line_width: width of a rasterized divider (m).
        classes: layers in output order, from :data:`MAP_CLASSES`.
        cache_logs: maps kept in memory (per worker).
    """

    def __init__(self,
                 point_cloud_range: Sequence[float],
                 cell_size: float,
                 line_width: float = 1.0,
                 classes: Sequence[str] = MAP_CLASSES,
                 cache_logs: int = 4):
        unknown = set(classes) - set(MAP_CLASSES)
        if unknown:
            raise ValueError(f'MapRasterTargets: unknown classes {sorted(unknown)}; choose from '
                             f'{MAP_CLASSES}')
        self.grid = BEVGrid.from_range(point_cloud_range, cell_size)
        self.line_width = line_width
        self.classes = tuple(classes)
        self.cache_logs = cache_logs
        self._cache = OrderedDict()

    def _shapes(self, results: dict) -> dict:
        log = results['log']
        map_dir = osp.join(results['data_root'], log['map_dir'])
        if map_dir not in self._cache:
            self._cache[map_dir] = read_map_shapes(map_dir, log['log_id'])
            while len(self._cache) > self.cache_logs:
                self._cache.popitem(last=False)
        return self._cache[map_dir]

    def transform(self, results: dict) -> dict:
        shapes = self._shapes(results)
        ref_from_city = invert(city_from_ego_at(results['log'], [results['timestamp_ns']])[0])
        rotation, translation = ref_from_city[:2, :2], ref_from_city[:2, 3]
        out = np.zeros((len(self.classes), ) + self.grid.shape, dtype=bool)
        for c, name in enumerate(self.classes):
            for shape_city in shapes[name]:
                shape_ref = shape_city @ rotation.T + translation
                if name == 'lane_divider':
                    rasterize_polyline(self.grid, shape_ref, self.line_width, out=out[c])
                else:
                    rasterize_polygon(self.grid, shape_ref, out=out[c])
        results['map_raster'] = out.astype(np.uint8)
        return results
