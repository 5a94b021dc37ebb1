"""The DINO feature-target cache: per-sweep files plus a manifest of the settings.

Layout (``tools/extract_dino_features.py``)::

    <cache_dir>/manifest.json                  kind 'dino_features', settings, cache_id
    <cache_dir>/<log_id>/<timestamp_ns>.npz    one file per lidar sweep:
        features     (P, D) float16  the feature at each point (after the reduction)
        point_index  (P,)  int32     row of the point in the sweep's feather file
        camera_index (P,)  uint8     index into RING_CAMERAS of the camera it was sampled in
        cache_id     ()    str       the manifest's cache_id

``settings`` = version, backbone, weights_sha256, image_short_side, patch_size,
feature_dim (D), reduction (``'<method>:<digest>'`` or None), denoiser (sha256 or None).
"""
from pathlib import Path
from typing import Dict

import numpy as np

from .cache_manifest import read_cached_sweep

FEATURES_KIND = 'dino_features'
FEATURES_VERSION = 1
MAKE_FEATURES = ('python tools/extract_dino_features.py --data-dir <data root> --output-dir '
                 '<cache> --weights <checkpoint>')


def feature_cache_path(cache_dir, log_id: str, timestamp_ns: int) -> Path:
    return Path(cache_dir) / log_id / f'{int(timestamp_ns)}.npz'


def read_sweep_features(cache_dir, log_id: str, timestamp_ns: int,
                        cache_id: str) -> Dict[str, np.ndarray]:
    """Load one sweep's cached features.

    Returns:
        ``features`` (P, D) float16, ``point_index`` (P,) int32 and ``camera_index`` (P,)
        uint8, memory-mapped (index them to read rows: a sample takes a few thousand).

    Raises:
        AV2DataError: the file is absent, unreadable or from another cache.
    """
    return read_cached_sweep(
        feature_cache_path(cache_dir, log_id, timestamp_ns),
        'DINO features',
        cache_id,
        log_id,
        timestamp_ns,
        missing_fix=(f'run `{MAKE_FEATURES}` with --output-dir {cache_dir} (it resumes and skips '
                     'done sweeps), or remove LoadFeatureTargets.'),
        read=lambda path, data: dict(
            features=data.memmap('features'),
            point_index=data.memmap('point_index'),
            camera_index=data.memmap('camera_index')))
