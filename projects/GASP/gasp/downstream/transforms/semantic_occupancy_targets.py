"""4D semantic occupancy targets: labelled (x, y, z, t) queries from future rays and cuboids."""
from typing import Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet3d.registry import TRANSFORMS

from ...datasets.errors import AV2DataError
from ..bev_grid import points_in_cuboids

FREE, STATIC = 0, 1


def semantic_class_names(class_groups: Sequence[str]) -> tuple:
    """Class names of the 4D semantic occupancy task: free, static, then the class groups."""
    return ('free', 'static') + tuple(class_groups)


def label_points(points: np.ndarray, frame_of_point: np.ndarray, cuboids: dict,
                 margin: float) -> np.ndarray:
    """Class of occupied points: ``2 + class_index`` of a cuboid of the same frame that
    contains the point (grown by ``margin``), else ``STATIC``.

    Args:
        points: (N, 3) reference frame. frame_of_point: (N,) index into cuboids' frames.
        cuboids: ``future_cuboids`` of :class:`LoadFutureCuboids`.
    """
    labels = np.full(len(points), STATIC, dtype=np.int64)
    for k in np.unique(frame_of_point):
        rows = np.flatnonzero(frame_of_point == k)
        boxes = np.flatnonzero(cuboids['frame_index'] == k)
        if len(boxes) == 0:
            continue
        owner = points_in_cuboids(points[rows], cuboids['ref_from_object'][boxes],
                                  cuboids['size_lwh'][boxes], margin)
        hit = owner >= 0
        labels[rows[hit]] = 2 + cuboids['class_index'][boxes[owner[hit]]]
    return labels


@TRANSFORMS.register_module()
class SemanticOccupancyTargets(BaseTransform):
    """Draw labelled space-time queries from the future rays (:class:`LoadFutureRays`) and the
    cuboids of the same sweeps (:class:`LoadFutureCuboids` with ``times_s=None``).

    Occupied queries lie just behind a return (depth in [d, d + ``positive_depth``]) and take
    the class of the cuboid that contains them, else ``static``; free queries lie on the ray
    before the return (depth in [0, d - ``negative_margin``]). Queries outside
    ``point_cloud_range`` are dropped. Classes: :func:`semantic_class_names`.

    Adds ``semantic_queries`` (Q, 4) float32 x, y, z, t and ``semantic_labels`` (Q,) int64.

    Args:
        point_cloud_range: region of the queries.
        num_queries: Q per sample (drawn with replacement when fewer candidates exist).
        free_fraction: share of free queries.
        object_fraction: share of the occupied queries drawn from object (class-group) points
            when the sample has any.
        positive_depth, negative_margin: see above (m).
        cuboid_margin: cuboids are grown by this much when labelling (m).
    """

    def __init__(self,
                 point_cloud_range: Sequence[float],
                 num_queries: int = 4096,
                 free_fraction: float = 0.5,
                 object_fraction: float = 0.25,
                 positive_depth: float = 0.3,
                 negative_margin: float = 0.3,
                 cuboid_margin: float = 0.1):
        self.point_cloud_range = np.asarray(point_cloud_range, dtype=np.float32)
        self.num_queries = num_queries
        self.free_fraction = free_fraction
        self.object_fraction = object_fraction
        self.positive_depth = positive_depth
        self.negative_margin = negative_margin
        self.cuboid_margin = cuboid_margin

    def _inside(self, points: np.ndarray) -> np.ndarray:
        r = self.point_cloud_range
        return np.all((points >= r[:3]) & (points < r[3:]), axis=1)

    def transform(self, results: dict) -> dict:
        rays, cuboids = results['rays'], results['future_cuboids']
        frame_of = {int(s): k for k, s in enumerate(cuboids['timestamps_ns'])}
        sweeps = results['future_timestamps_ns']
        missing = [
            int(sweeps[i]) for i in np.unique(rays['sweep_index']) if sweeps[i] not in frame_of
        ]
        if missing:
            raise AV2DataError(
                'rays of a sweep without loaded cuboids',
                log_id=results['log']['log_id'],
                timestamp_ns=missing[0],
                fix='use LoadFutureCuboids with times_s=None before SemanticOccupancyTargets.')
        frame = np.array([frame_of[int(sweeps[i])] for i in rays['sweep_index']], dtype=np.int64)
        # Subsampling draws from numpy's global RNG (seeded per worker by mmengine).
        rng = np.random.default_rng(np.random.randint(2**31))
        depth = rays['depths'].astype(np.float64)
        s_occ = depth + rng.uniform(0.0, self.positive_depth, len(depth))
        s_free = rng.uniform(0.0, 1.0, len(depth)) * np.maximum(depth - self.negative_margin, 0.0)
        occ = rays['origins'] + rays['directions'] * s_occ[:, None]
        free = rays['origins'] + rays['directions'] * s_free[:, None]
        occ_labels = label_points(occ, frame, cuboids, self.cuboid_margin)
        occ_ok, free_ok = np.flatnonzero(self._inside(occ)), np.flatnonzero(self._inside(free))
        if len(occ_ok) == 0 or len(free_ok) == 0:
            raise AV2DataError(
                'no future ray gives a query inside point_cloud_range',
                log_id=results['log']['log_id'],
                timestamp_ns=int(results['timestamp_ns']),
                fix='check point_cloud_range against the lidar data.')
        num_free = int(round(self.num_queries * self.free_fraction))
        num_occ = self.num_queries - num_free
        objects = occ_ok[occ_labels[occ_ok] > STATIC]
        num_obj = int(round(num_occ * self.object_fraction)) if len(objects) else 0

        def draw(pool, count):
            return rng.choice(pool, count, replace=len(pool) < count)

        pick_occ = np.concatenate([draw(objects, num_obj), draw(occ_ok, num_occ - num_obj)])
        pick_free = draw(free_ok, num_free)
        points = np.concatenate([occ[pick_occ], free[pick_free]])
        times = np.concatenate([rays['times_s'][pick_occ], rays['times_s'][pick_free]])
        results['semantic_queries'] = np.concatenate([points, times[:, None]],
                                                     axis=1).astype(np.float32)
        results['semantic_labels'] = np.concatenate(
            [occ_labels[pick_occ], np.full(num_free, FREE, dtype=np.int64)])
        return results
