"""AV2 cuboid labels at lidar timestamps, with ``num_interior_pts`` counted in the stored sweep."""
from typing import List

import numpy as np
import pandas as pd

from .scene import Scene
from .transforms import invert_se3, make_se3, quat_wxyz_from_rotation, rotation_from_ypr

#: Objects farther than this from the ego (xy, ego frame) are not labelled.
LABEL_RANGE_M = 100.0
ANNOTATION_COLUMNS = ('timestamp_ns', 'track_uuid', 'category', 'length_m', 'width_m', 'height_m',
                      'qw', 'qx', 'qy', 'qz', 'tx_m', 'ty_m', 'tz_m', 'num_interior_pts')
#: Cuboid dimensions and poses are stored as float32, as in AV2's annotation files.
CUBOID_DTYPE = np.float32


def count_interior_points(points_ego: np.ndarray, ego_from_object: np.ndarray,
                          size_lwh: np.ndarray) -> int:
    """Points inside a cuboid (boundary included).

    Args:
        points_ego: (N, 3) points, ego frame.
        ego_from_object: (4, 4) cuboid pose (centre and axes).
        size_lwh: (3,) length, width, height.
    """
    local = (points_ego - ego_from_object[:3, 3]) @ ego_from_object[:3, :3]
    return int(np.all(np.abs(local) <= size_lwh / 2, axis=1).sum())


def sweep_annotations(scene: Scene, sweep_index: int, points_ego: np.ndarray) -> List[dict]:
    """Cuboid rows of one sweep.

    Args:
        scene: the log's scene.
        sweep_index: index into ``scene.sweep_ns``.
        points_ego: (N, 3) the sweep's points as stored (float16 values), ego frame.

    Returns:
        One dict per labelled object with the AV2 annotation columns.
    """
    ts = int(scene.sweep_ns[sweep_index])
    t_s = float(scene.seconds(ts))
    ego_from_world = invert_se3(scene.world_from_ego(t_s))
    states = scene.object_states_at(t_s)  # (O, 4)
    pts = points_ego.astype(np.float64)
    cuboids = []
    for o, shape in enumerate(scene.shapes):
        if shape.category is None:
            continue
        x, y, z, yaw = states[o]
        center_local, size = shape.cuboid()
        c, s = np.cos(yaw), np.sin(yaw)
        center_w = np.array([
            x + c * center_local[0] - s * center_local[1],
            y + s * center_local[0] + c * center_local[1], z + center_local[2]
        ])
        world_from_obj = make_se3(rotation_from_ypr(yaw, 0.0, 0.0), center_w)
        ego_from_obj = ego_from_world @ world_from_obj
        if np.hypot(*ego_from_obj[:2, 3]) > LABEL_RANGE_M:
            continue
        cuboids.append((o, ego_from_obj, size))
    if not cuboids:
        return []
    quat = quat_wxyz_from_rotation(np.stack([c[1][:3, :3] for c in cuboids])).astype(CUBOID_DTYPE)
    trans = np.stack([c[1][:3, 3] for c in cuboids]).astype(CUBOID_DTYPE)
    size = np.stack([c[2] for c in cuboids]).astype(CUBOID_DTYPE)
    # Count with exactly the stored (float32) cuboids so readers reproduce the numbers.
    q64 = quat.astype(np.float64)
    q64 /= np.linalg.norm(q64, axis=1, keepdims=True)
    counts = count_interior_points_batch(pts, _quat_to_rot(q64), trans.astype(np.float64),
                                         size.astype(np.float64))
    rows = []
    for k, (o, _, _) in enumerate(cuboids):
        rows.append(
            dict(
                timestamp_ns=ts,
                track_uuid=scene.track_uuids[o],
                category=scene.shapes[o].category,
                length_m=size[k, 0],
                width_m=size[k, 1],
                height_m=size[k, 2],
                qw=quat[k, 0],
                qx=quat[k, 1],
                qy=quat[k, 2],
                qz=quat[k, 3],
                tx_m=trans[k, 0],
                ty_m=trans[k, 1],
                tz_m=trans[k, 2],
                num_interior_pts=int(counts[k])))
    return rows


def count_interior_points_batch(points_ego: np.ndarray, rotations: np.ndarray,
                                translations: np.ndarray, sizes_lwh: np.ndarray) -> np.ndarray:
    """Points inside each of C cuboids (boundary included).

    Args:
        points_ego: (N, 3) points, ego frame.
        rotations: (C, 3, 3) ``ego_from_object`` rotations.
        translations: (C, 3) cuboid centres, ego frame.
        sizes_lwh: (C, 3) length, width, height.

    Returns:
        (C,) int64 counts.
    """
    counts = np.zeros(len(rotations), np.int64)
    radius = np.linalg.norm(sizes_lwh, axis=1) / 2
    for k in range(len(rotations)):
        near = np.abs(points_ego - translations[k]).max(axis=1) <= radius[k]
        if near.any():
            counts[k] = count_interior_points(points_ego[near],
                                              make_se3(rotations[k], translations[k]), sizes_lwh[k])
    return counts


def _quat_to_rot(q: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations from (..., 4) unit quaternions (w, x, y, z)."""
    w, x, y, z = np.moveaxis(q, -1, 0)
    rows = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
    return np.stack([np.stack(r, -1) for r in rows], -2)


def annotations_frame(rows: List[dict]) -> pd.DataFrame:
    """AV2 ``annotations.feather`` table with exact column order and dtypes."""
    frame = pd.DataFrame(rows, columns=list(ANNOTATION_COLUMNS))
    dtypes = {'timestamp_ns': np.int64, 'num_interior_pts': np.int64}
    for col in ANNOTATION_COLUMNS[3:13]:
        dtypes[col] = CUBOID_DTYPE
    frame = frame.astype(dtypes)
    frame['track_uuid'] = frame['track_uuid'].astype(str)
    frame['category'] = frame['category'].astype(str)
    return frame
