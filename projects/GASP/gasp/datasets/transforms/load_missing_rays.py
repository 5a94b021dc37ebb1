"""Load the missing lidar rays of a sample's future sweeps (free-space targets)."""
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet3d.registry import TRANSFORMS

from ...geometry import transform_points
from ...targets.cache_manifest import read_manifest
from ...targets.missing_rays import (MAKE_MISSING_RAYS, MISSING_RAYS_KIND, MISSING_RAYS_VERSION,
                                     read_missing_rays)
from ..errors import AV2DataError
from ..log_frames import lidar_index, lidar_names, ref_from_ego_at
from ..subsampling import random_rows, sample_rng
from .load_past_sweeps import NS_PER_S


@TRANSFORMS.register_module()
class LoadMissingRays(BaseTransform):
    """Rays that fired and returned nothing, from the cache of
    ``tools/extract_missing_points.py``, moved into the reference frame.

    A missing ray of lidar ``l`` in the sweep at time t starts at that lidar's position,
    ``origin_ref = ref_from_ego_t @ ego_from_lidar[:3, 3]`` (as in :class:`LoadFutureRays`),
    and points along ``rotation(ref_from_ego_t) @ direction_ego``.

    Adds ``missing_rays``, a dict of arrays over M rays:
        ``origins`` (M, 3) float32, reference frame (m);
        ``directions`` (M, 3) float32 unit vectors, reference frame;
        ``times_s`` (M,) float32, sweep time minus reference time (> 0).

    Args:
        cache_dir: the missing-ray cache folder.
        max_rays_per_sweep: keep a random subset of this many rays per sweep (None: all).

    Raises:
        AV2DataError: the cache or a sweep's file is absent or from another cache.
    """

    def __init__(self, cache_dir: str, max_rays_per_sweep: Optional[int] = None):
        self.cache_dir = cache_dir
        self.max_rays_per_sweep = max_rays_per_sweep
        self._cache_id = None

    def _check_cache(self) -> str:
        if self._cache_id is None:
            manifest = read_manifest(self.cache_dir, 'missing-ray', MAKE_MISSING_RAYS)
            settings = manifest.get('settings', {})
            if (manifest.get('kind') != MISSING_RAYS_KIND
                    or settings.get('version') != MISSING_RAYS_VERSION):
                raise AV2DataError(
                    f'not a version-{MISSING_RAYS_VERSION} missing-ray cache (kind '
                    f'{manifest.get("kind")!r}, version {settings.get("version")!r})',
                    path=self.cache_dir,
                    fix=f'rebuild it with `{MAKE_MISSING_RAYS} --output-dir <new folder>`.')
            self._cache_id = manifest['cache_id']
        return self._cache_id

    def transform(self, results: dict) -> dict:
        cache_id = self._check_cache()
        log = results['log']
        stamps = results['future_timestamps_ns']
        ref_from_ego = ref_from_ego_at(log, stamps, results['timestamp_ns'])
        lidar_pos_ego = np.stack([log['ego_from_lidar'][name][:3, 3] for name in lidar_names(log)])
        rng = sample_rng()
        picked = []
        for stamp in stamps:
            # Only the kept rows are converted and normalised.
            rays = read_missing_rays(
                self.cache_dir,
                log['log_id'],
                stamp,
                cache_id,
                pick=lambda count: random_rows(count, self.max_rays_per_sweep, rng))
            picked.append((rays['directions_ego'], rays['laser_number']))
        # One output array per field, each sweep written into its rows.
        count = sum(len(lasers) for _, lasers in picked)
        out = dict(
            origins=np.empty((count, 3), np.float32),
            directions=np.empty((count, 3), np.float32),
            times_s=np.empty(count, np.float32))
        start = 0
        for k, (stamp, (directions_ego, lasers)) in enumerate(zip(stamps, picked)):
            span = slice(start, start + len(lasers))
            start += len(lasers)
            # Each lidar's position moved once, then gathered per ray.
            lidar_pos_ref = transform_points(ref_from_ego[k], lidar_pos_ego).astype(np.float32)
            np.take(lidar_pos_ref, lidar_index(log, lasers), axis=0, out=out['origins'][span])
            rotation = ref_from_ego[k, :3, :3].astype(np.float32)
            np.matmul(
                directions_ego.astype(np.float32, copy=False),
                rotation.T,
                out=out['directions'][span])
            out['times_s'][span] = (stamp - results['timestamp_ns']) / NS_PER_S
        results['missing_rays'] = out
        return results
