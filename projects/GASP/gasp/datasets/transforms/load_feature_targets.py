"""Load the cached DINO feature targets of a sample's future sweeps."""
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet3d.registry import TRANSFORMS

from ...geometry import transform_points
from ...targets.cache_manifest import check_settings, read_manifest
from ...targets.feature_cache import (FEATURES_KIND, FEATURES_VERSION, MAKE_FEATURES,
                                      read_sweep_features)
from ..av2_io import xyz_rows_float32
from ..errors import AV2DataError
from ..log_frames import read_log_sweep, ref_from_ego_at, sweep_path
from ..subsampling import random_rows, sample_rng
from .load_past_sweeps import NS_PER_S


@TRANSFORMS.register_module()
class LoadFeatureTargets(BaseTransform):
    """Feature targets from the cache of ``tools/extract_dino_features.py``.

    For every future sweep, the cached rows (``point_index`` into the sweep file) are read
    from the sweep and moved to the reference frame with ``ref_from_ego_t``.

    Adds ``feature_targets``, a dict of arrays over P points:
        ``points`` (P, 3) float32, reference frame (m);
        ``times_s`` (P,) float32, sweep time minus reference time (> 0);
        ``features`` (P, D) float16.

    Args:
        cache_dir: the feature cache folder.
        backbone, feature_dim, image_short_side, weights_sha256, reduction: expected cache
            settings (see :mod:`gasp.targets.feature_cache`); each one given must match the
            cache manifest, so that a model is never trained on other features than
            configured. None: not checked.
        max_points_per_sweep: keep a random subset of this many points per sweep.

    Raises:
        AV2DataError: the cache is absent or was made with other settings, or a sweep's file
            is missing.
    """

    def __init__(self,
                 cache_dir: str,
                 backbone: Optional[str] = None,
                 feature_dim: Optional[int] = None,
                 image_short_side: Optional[int] = None,
                 weights_sha256: Optional[str] = None,
                 reduction: Optional[str] = None,
                 max_points_per_sweep: Optional[int] = None):
        self.cache_dir = cache_dir
        self.expected = dict(
            backbone=backbone,
            feature_dim=feature_dim,
            image_short_side=image_short_side,
            weights_sha256=weights_sha256,
            reduction=reduction,
            version=FEATURES_VERSION)
        self.max_points_per_sweep = max_points_per_sweep
        self._cache_id = None

    def _check_cache(self) -> str:
        if self._cache_id is None:
            manifest = read_manifest(self.cache_dir, 'DINO feature', MAKE_FEATURES)
            if manifest.get('kind') != FEATURES_KIND:
                raise AV2DataError(
                    f'not a DINO feature cache (kind {manifest.get("kind")!r})',
                    path=self.cache_dir,
                    fix='fix cache_dir in the config.')
            check_settings(manifest, self.expected, self.cache_dir, MAKE_FEATURES)
            self._cache_id = manifest['cache_id']
        return self._cache_id

    def transform(self, results: dict) -> dict:
        cache_id = self._check_cache()
        log = results['log']
        stamps = results['future_timestamps_ns']
        ref_from_ego = ref_from_ego_at(log, stamps, results['timestamp_ns'])
        rng = sample_rng()
        picked = []
        for stamp in stamps:
            cached = read_sweep_features(self.cache_dir, log['log_id'], stamp, cache_id)
            sweep = read_log_sweep(results, stamp, memo=True, fields=())
            rows = cached['point_index']
            if len(rows) and rows.max() >= len(sweep['xyz_ego']):
                raise AV2DataError(
                    f'cached point index {int(rows.max())} but the sweep has '
                    f'{len(sweep["xyz_ego"])} points (the sweep file changed)',
                    log_id=log['log_id'],
                    path=str(sweep_path(results, stamp)),
                    timestamp_ns=int(stamp),
                    fix=f'rebuild the feature cache with `{MAKE_FEATURES}`.')
            keep = random_rows(len(rows), self.max_points_per_sweep, rng)
            picked.append((xyz_rows_float32(sweep['xyz_ego'],
                                            rows[keep]), cached['features'], keep))
        # One output array per field, each sweep written into its rows; the features keep
        # the cache's float16 (the data preprocessor converts the few it draws).
        count = sum(len(keep) for _, _, keep in picked)
        dim = picked[0][1].shape[1] if picked else 0
        out = dict(
            points=np.empty((count, 3), np.float32),
            times_s=np.empty(count, np.float32),
            features=np.empty((count, dim), np.float16))
        start = 0
        for k, stamp in enumerate(stamps):
            # Each map is let go once its rows are taken (touched mapped pages stay resident).
            (xyz_ego, features, keep), picked[k] = picked[k], None
            span = slice(start, start + len(keep))
            start += len(keep)
            transform_points(ref_from_ego[k], xyz_ego, out=out['points'][span])
            out['times_s'][span] = (stamp - results['timestamp_ns']) / NS_PER_S
            np.take(features, keep, axis=0, out=out['features'][span])
        results['feature_targets'] = out
        return results
