"""Shapes of the things in the world: each object is a few oriented boxes with materials.

An object's local frame has x forward, z up and its origin on the ground under its centre.
``category`` is the AV2 annotation category, or ``None`` for unannotated scenery (buildings,
walls, poles, trees, the ego vehicle).
"""
from dataclasses import dataclass
from enum import IntEnum
from typing import List, Optional, Tuple

import numpy as np

#: Margin between an object's boxes and its annotation cuboid, metres. Keeps every lidar return
#: of the object strictly inside its cuboid despite float16 storage.
CUBOID_MARGIN_M = 0.1


class ObjectMaterial(IntEnum):
    """Materials of object boxes; colours and lidar intensities live in ``appearance.py``."""

    CAR_BODY = 0
    SUV_BODY = 1
    TRUCK_BODY = 2
    BUS_BODY = 3
    GLASS = 4
    SHIRT = 5
    TROUSERS = 6
    SKIN = 7
    BIKE_FRAME = 8
    RIDER = 9
    BUILDING = 10
    WALL = 11
    POLE = 12
    BOLLARD = 13
    CONE = 14
    SIGN = 15
    STOP_SIGN = 16
    TRUNK = 17
    FOLIAGE = 18
    BARREL = 19
    EGO_BODY = 20


@dataclass
class ObjectShape:
    """Boxes making up one object, in its local frame.

    Args:
        kind: generator kind (e.g. ``'sedan'``, ``'building'``).
        category: AV2 category name or ``None`` (not annotated).
        centers: (B, 3) box centres, local frame, metres.
        half_sizes: (B, 3) box half extents along local x, y, z.
        materials: (B,) :class:`ObjectMaterial` per box.
        tint: (3,) per-object colour multiplier (small variation within a class).
    """

    kind: str
    category: Optional[str]
    centers: np.ndarray
    half_sizes: np.ndarray
    materials: np.ndarray
    tint: np.ndarray

    def cuboid(self) -> Tuple[np.ndarray, np.ndarray]:
        """Annotation cuboid: (3,) centre in the local frame and (3,) size (length, width, height).

        The cuboid is the bounding box of the boxes grown by :data:`CUBOID_MARGIN_M`.
        """
        lo = (self.centers - self.half_sizes).min(0) - CUBOID_MARGIN_M
        hi = (self.centers + self.half_sizes).max(0) + CUBOID_MARGIN_M
        return (lo + hi) / 2, hi - lo

    @property
    def radius(self) -> float:
        """Radius of a vertical cylinder around the local z axis containing every box."""
        corners = np.abs(self.centers[:, :2]) + self.half_sizes[:, :2]
        return float(np.linalg.norm(corners, axis=1).max())


def _boxes(spec: List[Tuple[Tuple[float, float, float], Tuple[float, float, float], int]]):
    """Boxes from (x0, x1), (y half), (z0, z1) style specs -> centres, half sizes, materials."""
    centers, halves, mats = [], [], []
    for (x0, x1, hy), (z0, z1, _), mat in spec:
        centers.append([(x0 + x1) / 2, 0.0, (z0 + z1) / 2])
        halves.append([(x1 - x0) / 2, hy, (z1 - z0) / 2])
        mats.append(mat)
    return np.array(centers), np.array(halves), np.array(mats, np.int64)


M = ObjectMaterial


def make_shape(kind: str, rng: np.random.Generator, **size) -> ObjectShape:
    """Build an object of a given kind with randomised dimensions.

    Args:
        kind: one of ``sedan, suv, box_truck, bus, pedestrian, bicyclist, bicycle, bollard, cone,
            barrel, sign, stop_sign, pole, tree, building, wall, ego``.
        rng: random generator.
        **size: explicit ``length``, ``width``, ``height`` for buildings and walls.

    Returns:
        The object's boxes, category and tint.
    """
    u = rng.uniform
    tint = np.clip(1.0 + rng.normal(0.0, 0.08, 3), 0.8, 1.2)
    if kind in ('sedan', 'suv', 'ego'):
        length, width, height = {
            'sedan': (u(4.2, 4.9), u(1.75, 1.95), u(1.4, 1.6)),
            'suv': (u(4.8, 5.6), u(1.95, 2.1), u(1.75, 2.1)),
            'ego': (4.87, 1.90, 1.47)
        }[kind]
        cab = 0.55 if kind == 'sedan' else 0.72
        body = {'sedan': M.CAR_BODY, 'suv': M.SUV_BODY, 'ego': M.EGO_BODY}[kind]
        x0 = -length / 2
        spec = [((x0, -x0, width / 2), (0.15, 0.6 * height, 0), body),
                ((x0 + 0.3 * length, x0 + (0.3 + cab) * length, 0.45 * width),
                 (0.6 * height, height, 0), M.GLASS)]
        category = {'sedan': 'REGULAR_VEHICLE', 'suv': 'LARGE_VEHICLE', 'ego': None}[kind]
    elif kind == 'box_truck':
        length, width = u(6.5, 8.5), u(2.3, 2.5)
        spec = [((-length / 2, length / 2 - 2.2, width / 2), (0.3, u(3.1, 3.5), 0), M.TRUCK_BODY),
                ((length / 2 - 2.1, length / 2, width / 2 - 0.05), (0.3, 2.6, 0), M.GLASS)]
        category = 'BOX_TRUCK'
    elif kind == 'bus':
        length, width, height = u(11.0, 12.5), 2.55, u(3.0, 3.3)
        spec = [((-length / 2, length / 2, width / 2), (0.3, height, 0), M.BUS_BODY)]
        category = 'BUS'
    elif kind == 'pedestrian':
        s = u(0.92, 1.08)
        spec = [((-0.12, 0.12, 0.17), (0.0, 0.85 * s, 0), M.TROUSERS),
                ((-0.14, 0.14, 0.23), (0.85 * s, 1.45 * s, 0), M.SHIRT),
                ((-0.1, 0.1, 0.1), (1.45 * s, 1.72 * s, 0), M.SKIN)]
        category = 'PEDESTRIAN'
    elif kind in ('bicyclist', 'bicycle'):
        spec = [((-0.88, 0.88, 0.08), (0.0, 0.95, 0), M.BIKE_FRAME)]
        if kind == 'bicyclist':
            spec += [((-0.35, 0.15, 0.22), (0.95, 1.6, 0), M.RIDER),
                     ((-0.05, 0.15, 0.1), (1.6, 1.82, 0), M.SKIN)]
        category = kind.upper()
    elif kind == 'bollard':
        spec = [((-0.1, 0.1, 0.1), (0.0, u(0.9, 1.1), 0), M.BOLLARD)]
        category = 'BOLLARD'
    elif kind == 'cone':
        spec = [((-0.17, 0.17, 0.17), (0.0, 0.7, 0), M.CONE)]
        category = 'CONSTRUCTION_CONE'
    elif kind == 'barrel':
        spec = [((-0.3, 0.3, 0.3), (0.0, 1.0, 0), M.BARREL)]
        category = 'CONSTRUCTION_BARREL'
    elif kind in ('sign', 'stop_sign'):
        z0 = u(1.9, 2.3)
        side = 0.75 if kind == 'stop_sign' else u(0.6, 1.0)
        mat = M.STOP_SIGN if kind == 'stop_sign' else M.SIGN
        spec = [((-0.03, 0.03, side / 2), (z0, z0 + side, 0), mat)]
        category = kind.upper()
    elif kind == 'pole':
        spec = [((-0.12, 0.12, 0.12), (0.0, u(6.0, 8.5), 0), M.POLE)]
        category = None
    elif kind == 'tree':
        crown = u(2.5, 4.0)
        top = u(5.0, 8.0)
        spec = [((-0.2, 0.2, 0.2), (0.0, top - crown, 0), M.TRUNK),
                ((-crown / 2, crown / 2, crown / 2), (top - crown, top, 0), M.FOLIAGE)]
        category = None
    elif kind in ('building', 'wall'):
        length, width, height = size['length'], size['width'], size['height']
        mat = M.BUILDING if kind == 'building' else M.WALL
        spec = [((-length / 2, length / 2, width / 2), (0.0, height, 0), mat)]
        category = None
    else:
        raise ValueError(f'unknown object kind {kind!r}')
    centers, halves, mats = _boxes(spec)
    return ObjectShape(kind, category, centers, halves, mats, tint)
