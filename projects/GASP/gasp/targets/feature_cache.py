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
import struct
import zipfile
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


def memmap_npz_member(path, name: str) -> np.ndarray:
    """Memory-map array ``name`` of an uncompressed ``.npz`` (as :func:`numpy.savez` writes).

    ``np.load`` reads a whole ``.npz`` member; a sample needs a few thousand rows of each
    sweep's (P, D) features, so mapping them and copying only those rows is much faster.
    Compressed members cannot be mapped and are read whole.
    """
    member = name + '.npy'
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
        if info.compress_type != zipfile.ZIP_STORED:
            with archive.open(member) as f:
                return np.lib.format.read_array(f)
    with open(path, 'rb') as f:
        f.seek(info.header_offset)
        local_header = f.read(30)
        if local_header[:4] != b'PK\x03\x04':
            raise ValueError(f'{path}: broken zip entry for {member}')
        name_len, extra_len = struct.unpack('<HH', local_header[26:30])
        f.seek(info.header_offset + 30 + name_len + extra_len)
        major, _ = np.lib.format.read_magic(f)
        read_header = (
            np.lib.format.read_array_header_1_0
            if major == 1 else np.lib.format.read_array_header_2_0)
        shape, fortran_order, dtype = read_header(f)
        offset = f.tell()
    if dtype.hasobject:
        raise ValueError(f'{path}: {member} holds Python objects; refusing to load it')
    return np.memmap(
        path,
        dtype=dtype,
        mode='r',
        offset=offset,
        shape=shape,
        order='F' if fortran_order else 'C')


def read_sweep_features(cache_dir, log_id: str, timestamp_ns: int,
                        cache_id: str) -> Dict[str, np.ndarray]:
    """Load one sweep's cached features.

    Returns:
        ``features`` (P, D) float16 (memory-mapped: index it to read rows), ``point_index``
        (P,) int64, ``camera_index`` (P,) uint8.

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
            features=memmap_npz_member(path, 'features'),
            point_index=data['point_index'].astype(np.int64),
            camera_index=data['camera_index']))
