"""Project lidar points into the ring cameras with av2's motion-compensated pinhole model."""
from typing import Tuple

import numpy as np
from av2.geometry.camera.pinhole_camera import Intrinsics, PinholeCamera
from av2.geometry.se3 import SE3


def se3(matrix: np.ndarray) -> SE3:
    return SE3(
        rotation=np.asarray(matrix[:3, :3], dtype=np.float64),
        translation=np.asarray(matrix[:3, 3], dtype=np.float64))


def pinhole_camera(name: str, camera: dict) -> PinholeCamera:
    """av2 camera from an info log table entry ``log['cameras'][name]`` (``ego_from_camera``,
    fx, fy, cx, cy, width, height)."""
    intrinsics = Intrinsics(
        fx_px=camera['fx'],
        fy_px=camera['fy'],
        cx_px=camera['cx'],
        cy_px=camera['cy'],
        width_px=int(camera['width']),
        height_px=int(camera['height']))
    return PinholeCamera(
        ego_SE3_cam=se3(camera['ego_from_camera']), intrinsics=intrinsics, cam_name=name)


def project_points(points_ego: np.ndarray, camera: PinholeCamera, city_from_ego_lidar: np.ndarray,
                   city_from_ego_camera: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Pixels of points of a sweep in an image taken at another time.

    The points (ego frame at the lidar timestamp) are moved to the ego frame at the camera
    timestamp through the city frame, then projected
    (``PinholeCamera.project_ego_to_img_motion_compensated``).

    Args:
        points_ego: (N, 3) points, ego frame at the lidar time.
        camera: the camera.
        city_from_ego_lidar: (4, 4) ego pose at the lidar time.
        city_from_ego_camera: (4, 4) ego pose at the camera time.

    Returns:
        uv: (N, 2) pixel coordinates (column, row; pixel centres at integers).
        valid: (N,) in front of the camera and inside [0, W - 1) x [0, H - 1).
    """
    uv, _, valid = camera.project_ego_to_img_motion_compensated(
        np.asarray(points_ego, dtype=np.float64),
        city_SE3_ego_cam_t=se3(city_from_ego_camera),
        city_SE3_ego_lidar_t=se3(city_from_ego_lidar))
    valid = valid & np.isfinite(uv).all(1)
    return uv, valid


def border_margin(uv: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N,) distance to the nearest image border as a fraction of the short side; used to
    give a point seen by two cameras the one that sees it most centrally."""
    margin = np.minimum.reduce([uv[:, 0], width - 1 - uv[:, 0], uv[:, 1], height - 1 - uv[:, 1]])
    return margin / min(width, height)
