"""Writers for the Argoverse 2 sensor-log files (exact names, columns and dtypes).

Every file is written to a temporary name in its folder and moved into place with
``os.replace``, so a crash never leaves a half-written file.
"""
import io
import json
from pathlib import Path
from typing import Dict, Iterable

import cv2
import numpy as np
import pandas as pd

from ..fileio import atomic_write_bytes
from .cameras import CameraModel
from .ground import AV2_GROUND_RES_M, RES_M
from .scene import Scene
from .transforms import quat_wxyz_from_rotation

POSE_COLUMNS = ('qw', 'qx', 'qy', 'qz', 'tx_m', 'ty_m', 'tz_m')


def write_feather(frame: pd.DataFrame, path: Path) -> None:
    """Atomically write a DataFrame as an (uncompressed-index) Feather v2 file."""
    buf = io.BytesIO()
    frame.reset_index(drop=True).to_feather(buf)
    atomic_write_bytes(path, buf.getvalue())


def write_json(obj, path: Path) -> None:
    """Atomically write JSON."""
    atomic_write_bytes(path, json.dumps(obj).encode('utf-8'))


def write_npy(array: np.ndarray, path: Path) -> None:
    """Atomically write a ``.npy`` array."""
    buf = io.BytesIO()
    np.save(buf, array)
    atomic_write_bytes(path, buf.getvalue())


def write_npz(path: Path, **arrays) -> None:
    """Atomically write a compressed ``.npz``."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def pose_columns(mats: np.ndarray) -> Dict[str, np.ndarray]:
    """The 7 AV2 pose columns (float64) from (N, 4, 4) transforms."""
    q = quat_wxyz_from_rotation(mats[:, :3, :3])
    cols = dict(
        qw=q[:, 0],
        qx=q[:, 1],
        qy=q[:, 2],
        qz=q[:, 3],
        tx_m=mats[:, 0, 3],
        ty_m=mats[:, 1, 3],
        tz_m=mats[:, 2, 3])
    return {k: np.asarray(v, dtype=np.float64) for k, v in cols.items()}


def write_city_poses(scene: Scene, log_dir: Path) -> None:
    """``city_SE3_egovehicle.feather``: one ego->city pose per lidar and camera timestamp."""
    ts = scene.all_pose_ns()
    mats = scene.city_from_ego(scene.seconds(ts))
    frame = pd.DataFrame({'timestamp_ns': ts.astype(np.int64), **pose_columns(mats)})
    write_feather(frame, log_dir / 'city_SE3_egovehicle.feather')


def write_calibration(cameras: Dict[str, CameraModel], lidars: Dict[str, np.ndarray],
                      log_dir: Path) -> None:
    """``calibration/egovehicle_SE3_sensor.feather`` and ``calibration/intrinsics.feather``."""
    names = list(cameras) + list(lidars)
    mats = np.stack([cameras[n].ego_from_cam for n in cameras] + [lidars[n] for n in lidars])
    extr = pd.DataFrame({'sensor_name': pd.Series(names, dtype=object), **pose_columns(mats)})
    write_feather(extr, log_dir / 'calibration' / 'egovehicle_SE3_sensor.feather')
    cams = list(cameras.values())
    intr = pd.DataFrame({
        'sensor_name': pd.Series([c.name for c in cams], dtype=object),
        'fx_px': np.array([c.fx for c in cams], np.float64),
        'fy_px': np.array([c.fy for c in cams], np.float64),
        'cx_px': np.array([c.cx for c in cams], np.float64),
        'cy_px': np.array([c.cy for c in cams], np.float64),
        'k1': np.zeros(len(cams)),
        'k2': np.zeros(len(cams)),
        'k3': np.zeros(len(cams)),
        'height_px': np.array([c.height for c in cams], np.uint16),
        'width_px': np.array([c.width for c in cams], np.uint16)
    })
    write_feather(intr, log_dir / 'calibration' / 'intrinsics.feather')


def _points(xy: np.ndarray, z: np.ndarray, offset: np.ndarray) -> list:
    return [{
        'x': float(p[0] + offset[0]),
        'y': float(p[1] + offset[1]),
        'z': float(h + offset[2])
    } for p, h in zip(xy, z)]


def map_archive_name(scene: Scene, map_number: int) -> str:
    """``log_map_archive_<log_id>____<CITY>_city_<int>.json``."""
    return f'log_map_archive_{scene.log_id}____{scene.city_name}_city_{map_number}.json'


def vector_map(scene: Scene) -> dict:
    """The vector map in the schema of ``av2.map.map_api.ArgoverseStaticMap.from_json``."""
    off = scene.city_offset
    height = scene.ground.height_at
    lanes = {}
    for seg_id, seg in scene.net.lane_segments.items():
        left, right = seg['left_boundary'], seg['right_boundary']
        lanes[str(seg_id)] = {
            'id': int(seg_id),
            'is_intersection': bool(seg['is_intersection']),
            'lane_type': seg['lane_type'],
            'left_lane_boundary': _points(left, height(left), off),
            'left_lane_mark_type': seg['left_lane_mark_type'],
            'right_lane_boundary': _points(right, height(right), off),
            'right_lane_mark_type': seg['right_lane_mark_type'],
            'successors': [int(s) for s in seg['successors']],
            'predecessors': [int(s) for s in seg['predecessors']],
            'right_neighbor_id': seg['right_neighbor_id'],
            'left_neighbor_id': seg['left_neighbor_id'],
        }
    first_id = max(scene.net.lane_segments) + 1
    areas = {}
    for k, poly in enumerate(scene.net.drivable_polygons):
        area_id = first_id + k
        areas[str(area_id)] = {'area_boundary': _points(poly, height(poly), off), 'id': area_id}
    crossings = {}
    for k, (edge1, edge2) in enumerate(scene.net.crossings):
        cid = first_id + len(areas) + k
        crossings[str(cid)] = {
            'edge1': _points(edge1, height(edge1), off),
            'edge2': _points(edge2, height(edge2), off),
            'id': cid
        }
    return {'pedestrian_crossings': crossings, 'lane_segments': lanes, 'drivable_areas': areas}


def write_map(scene: Scene, log_dir: Path, map_number: int) -> None:
    """Vector map JSON, ground-height raster (.npy, float16) and its Sim(2) JSON.

    The raster stores the surface height (city frame) at the centre of 30 cm cells; av2 maps a
    city point p to cell ``floor(s * (p + t))`` with ``s = 1 / 0.3`` and ``t = -(x_min, y_min)``.
    """
    map_dir = log_dir / 'map'
    write_json(vector_map(scene), map_dir / map_archive_name(scene, map_number))
    ground = scene.ground
    res = AV2_GROUND_RES_M
    world_min = ground.origin_xy
    span = (np.array(ground.height.shape[::-1]) - 1) * RES_M
    n_cols, n_rows = (np.floor(span / res)).astype(int)
    city_min = np.floor(world_min + scene.city_offset[:2])
    xs = city_min[0] + (np.arange(n_cols) + 0.5) * res - scene.city_offset[0]
    ys = city_min[1] + (np.arange(n_rows) + 0.5) * res - scene.city_offset[1]
    gx, gy = np.meshgrid(xs, ys)
    heights = ground.height_at(np.stack([gx.ravel(), gy.ravel()], 1)).reshape(gy.shape)
    write_npy((heights + scene.city_offset[2]).astype(np.float16),
              map_dir / f'{scene.log_id}_ground_height_surface____{scene.city_name}.npy')
    sim2 = {
        'R': [1.0, 0.0, 0.0, 1.0],
        't': [-float(city_min[0]), -float(city_min[1])],
        's': 1.0 / res
    }
    write_json(sim2, map_dir / f'{scene.log_id}___img_Sim2_city.json')


def write_sweep(frame: pd.DataFrame, log_dir: Path, timestamp_ns: int) -> None:
    """``sensors/lidar/<timestamp_ns>.feather``."""
    write_feather(frame, log_dir / 'sensors' / 'lidar' / f'{int(timestamp_ns)}.feather')


def write_jpeg(rgb: np.ndarray, path: Path, quality: int) -> None:
    """Atomically write an RGB uint8 image as JPEG."""
    ok, buf = cv2.imencode('.jpg', rgb[..., ::-1], [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise RuntimeError(f'JPEG encoding failed for {path}')
    atomic_write_bytes(path, buf.tobytes())


def write_png16(array: np.ndarray, path: Path) -> None:
    """Atomically write a uint16 PNG (ground-truth id images)."""
    ok, buf = cv2.imencode('.png', array.astype(np.uint16))
    if not ok:
        raise RuntimeError(f'PNG encoding failed for {path}')
    atomic_write_bytes(path, buf.tobytes())


def object_table(scene: Scene, dynamic: Iterable[bool]) -> pd.DataFrame:
    """Ground-truth object table (``synthetic_gt/objects.feather``; not part of AV2)."""
    return pd.DataFrame({
        'object_id':
        np.arange(len(scene.shapes), dtype=np.int32) + 2,
        'track_uuid':
        pd.Series(scene.track_uuids, dtype=object),
        'category':
        pd.Series([s.category or '' for s in scene.shapes], dtype=object),
        'kind':
        pd.Series([s.kind for s in scene.shapes], dtype=object),
        'dynamic':
        np.asarray(list(dynamic), dtype=bool)
    })
