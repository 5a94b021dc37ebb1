"""Feature targets of one sweep: its points sampled in the feature maps of the ring cameras."""
from pathlib import Path
from typing import Dict, Optional

import cv2
import numpy as np
import torch

from ..datasets.av2_io import RING_CAMERAS, camera_path, lidar_path, read_sweep
from ..datasets.errors import AV2DataError
from ..datasets.log_frames import city_from_ego_at
from .camera_projection import border_margin, pinhole_camera, project_points
from .feature_reduction import FeatureReduction
from .feature_sampling import sample_feature_map
from .sweep_jobs import SweepJob


def read_rgb(path: Path, log_id: str, timestamp_ns: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB image."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise AV2DataError(
            'camera image is missing or unreadable',
            log_id=log_id,
            path=str(path),
            timestamp_ns=timestamp_ns)
    return np.ascontiguousarray(image[..., ::-1])


def load_sweep_images(job: SweepJob, log: dict) -> Dict[str, np.ndarray]:
    """Camera name -> (H, W, 3) uint8 RGB of the frames matched to the sweep."""
    return {
        cam: read_rgb(camera_path(Path(log['log_dir']), cam, stamp), job.log_id, stamp)
        for cam, stamp in job.camera_timestamps_ns
    }


def project_sweep(job: SweepJob, log: dict, points_ego: np.ndarray) -> Dict[str, np.ndarray]:
    """Assign each point to at most one ring camera and find its pixel there.

    A point seen by several cameras goes to the one where it lies farthest from the image
    border.

    Returns:
        ``point_index`` (P,) int64 rows of the sweep seen by a camera, ``camera_index`` (P,)
        uint8 into RING_CAMERAS, ``uv`` (P, 2) float64 pixels in that camera's image.
    """
    stamps = dict(job.camera_timestamps_ns)
    cams = [c for c in RING_CAMERAS if c in stamps]
    poses = city_from_ego_at(log, [job.timestamp_ns] + [stamps[c] for c in cams])
    best = np.full(len(points_ego), -np.inf)
    choice = np.full(len(points_ego), -1)
    uv_all = np.zeros((len(points_ego), 2))
    for i, cam in enumerate(cams):
        entry = log['cameras'][cam]
        uv, valid = project_points(points_ego, pinhole_camera(cam, entry), poses[0], poses[1 + i])
        margin = np.where(valid, border_margin(uv, entry['width'], entry['height']), -np.inf)
        better = valid & (margin > best)
        best[better], choice[better], uv_all[better] = margin[better], i, uv[better]
    seen = np.flatnonzero(choice >= 0)
    return dict(
        point_index=seen,
        camera_index=np.array([RING_CAMERAS.index(cams[c]) for c in choice[seen]],
                              dtype=np.uint8).reshape(-1),
        uv=uv_all[seen])


def sample_sweep_features(projection: Dict[str, np.ndarray],
                          feature_maps: Dict[str, torch.Tensor],
                          image_hw: Dict[str, tuple],
                          reduction: Optional[FeatureReduction] = None) -> torch.Tensor:
    """(P, D) features of the projected points (float32, on the feature maps' device).

    Args:
        projection: :func:`project_sweep` output.
        feature_maps: camera name -> (C, h, w).
        image_hw: camera name -> original (H, W).
        reduction: optional C -> D reduction.
    """
    some = next(iter(feature_maps.values()))
    out = torch.zeros((len(projection['point_index']), some.shape[0]), device=some.device)
    uv = torch.as_tensor(projection['uv'], device=some.device, dtype=torch.float32)
    for cam, fmap in feature_maps.items():
        rows = np.flatnonzero(projection['camera_index'] == RING_CAMERAS.index(cam))
        if len(rows):
            rows_t = torch.as_tensor(rows, device=some.device)
            out[rows_t] = sample_feature_map(fmap, uv[rows_t], *image_hw[cam])
    return reduction.apply(out) if reduction is not None else out


def read_sweep_points(job: SweepJob, log: dict) -> np.ndarray:
    """(N, 3) float64 points of the sweep, ego frame at its timestamp (file row order)."""
    sweep = read_sweep(lidar_path(Path(log['log_dir']), job.timestamp_ns), job.log_id)
    return sweep['xyz_ego'].astype(np.float64)
