"""Missing lidar rays: the firings that returned nothing, cached per sweep.

Cache layout (``tools/extract_missing_points.py``)::

    <cache_dir>/manifest.json                 kind 'missing_rays', settings, cache_id
    <cache_dir>/<log_id>/beam_model.json      the fitted firing pattern (for inspection)
    <cache_dir>/<log_id>/<timestamp_ns>.npz   one file per sweep:
        directions_ego (M, 3) float16  unit directions, ego frame at the sweep timestamp
        laser_number   (M,) uint8      0-31 up_lidar, 32-63 down_lidar
        offset_ns      (M,) int32      estimated firing time since the sweep start
        cache_id       ()  str         the manifest's cache_id

Every file is written atomically; done sweeps are skipped, so a run can be resumed.
"""
import json
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import numpy as np
from tqdm import tqdm

from ..datasets.av2_infos import split_logs
from ..datasets.av2_io import (lidar_path, list_lidar_timestamps, read_city_from_ego,
                               read_ego_from_sensor, read_sweep)
from ..datasets.errors import AV2DataError
from ..fileio import dump_json_atomic, save_npz_atomic
from .beam_model import BeamModel, fit_beam_model, missing_firings
from .cache_manifest import read_cached_sweep, write_or_check_manifest
from .pose_interpolation import PoseInterpolator

MISSING_RAYS_KIND = 'missing_rays'
MISSING_RAYS_VERSION = 1
MAKE_MISSING_RAYS = 'python tools/extract_missing_points.py --data-dir <data root>'


def missing_rays_path(cache_dir, log_id: str, timestamp_ns: int) -> Path:
    return Path(cache_dir) / log_id / f'{int(timestamp_ns)}.npz'


def read_missing_rays(cache_dir,
                      log_id: str,
                      timestamp_ns: int,
                      cache_id: str,
                      pick: Optional[Callable[[int], np.ndarray]] = None) -> Dict[str, np.ndarray]:
    """Load one sweep's missing rays.

    Args:
        pick: optional ``pick(count) -> rows``: only those rows of the sweep's ``count`` rays
            are converted and returned (a loader keeps ~4k of ~20k; converting only them is
            ~2x faster).

    Returns:
        ``directions_ego`` (M, 3) float32 unit vectors and ``laser_number`` (M,) uint8.

    Raises:
        AV2DataError: the file is absent, unreadable or from another cache.
    """
    cached = read_cached_sweep(
        missing_rays_path(cache_dir, log_id, timestamp_ns),
        'missing rays',
        cache_id,
        log_id,
        timestamp_ns,
        missing_fix=(f'run `{MAKE_MISSING_RAYS} --output-dir {cache_dir}` (it resumes), or '
                     'remove LoadMissingRays from the pipeline.'),
        read=lambda path, data: dict(
            directions=data['directions_ego'], laser=data['laser_number']))
    directions, laser = cached['directions'], cached['laser']
    if pick is not None:
        rows = pick(len(laser))
        directions, laser = directions[rows], laser[rows]
    directions = directions.astype(np.float32, copy=False)
    norm = np.linalg.norm(directions, axis=1, keepdims=True)
    return dict(directions_ego=directions / np.maximum(norm, 1e-6), laser_number=laser)


def extract_log_missing_rays(log_dir: Path,
                             cache_dir: Path,
                             cache_id: str,
                             fit_sweeps: int = 30,
                             min_range_m: float = 3.0,
                             bar: Optional[tqdm] = None) -> int:
    """Fit the beam model of one log and cache the missing rays of every sweep not done.

    Returns:
        Number of sweeps written.
    """
    log_id = log_dir.name
    stamps = list_lidar_timestamps(log_dir)
    todo = [int(t) for t in stamps if not missing_rays_path(cache_dir, log_id, t).is_file()]
    if bar is not None:
        bar.update(len(stamps) - len(todo))
    if not todo:
        return 0
    if len(stamps) < 2:
        raise AV2DataError(
            'a log needs at least 2 sweeps to estimate its lidar pattern',
            log_id=log_id,
            path=str(log_dir / 'sensors' / 'lidar'))
    poses = PoseInterpolator(*read_city_from_ego(log_dir))
    ego_from_sensor = read_ego_from_sensor(log_dir)
    model_path = cache_dir / log_id / 'beam_model.json'
    if model_path.is_file():
        with open(model_path) as f:
            model = BeamModel.from_json(json.load(f))
    else:
        pick = np.unique(np.linspace(0, len(stamps) - 1, min(fit_sweeps, len(stamps))).astype(int))
        fit = [(int(stamps[i]), read_sweep(lidar_path(log_dir, stamps[i]), log_id)) for i in pick]
        model = fit_beam_model(
            fit, poses, ego_from_sensor, float(np.median(np.diff(stamps))), min_range_m=min_range_m)
        dump_json_atomic(model.to_json(), model_path, indent=1, sort_keys=True)
    for stamp in todo:
        sweep = read_sweep(lidar_path(log_dir, stamp), log_id)
        missing = missing_firings(model, sweep, stamp, poses, ego_from_sensor)
        save_npz_atomic(
            missing_rays_path(cache_dir, log_id, stamp),
            directions_ego=missing['directions_ego'].astype(np.float16),
            laser_number=missing['laser_number'],
            offset_ns=missing['offset_ns'].astype(np.int32),
            cache_id=np.array(cache_id))
        if bar is not None:
            bar.update(1)
    return len(todo)


def extract_missing_rays(data_dir,
                         cache_dir=None,
                         splits: Sequence[str] = ('train', 'val', 'test'),
                         fit_sweeps: int = 30,
                         min_range_m: float = 3.0,
                         show_progress: bool = True) -> Path:
    """Cache the missing rays of every sweep of every log under ``<data_dir>/sensor/<split>``.

    Args:
        data_dir: the folder that contains ``sensor/``.
        cache_dir: output folder (default ``<data_dir>/missing_rays``).
        splits: splits to process (absent ones are skipped).
        fit_sweeps: sweeps per log used to fit the beam model.
        min_range_m: returns closer than this are not used for the fit.
        show_progress: progress bar over sweeps.

    Returns:
        The cache folder.
    """
    root = Path(data_dir)
    cache_dir = Path(cache_dir) if cache_dir else root / 'missing_rays'
    settings = dict(version=MISSING_RAYS_VERSION, fit_sweeps=fit_sweeps, min_range_m=min_range_m)
    cache_id = write_or_check_manifest(cache_dir, MISSING_RAYS_KIND, settings, MAKE_MISSING_RAYS)
    logs = [log for split in splits for log in split_logs(root, split)]
    total = sum(len(list((log / 'sensors' / 'lidar').glob('*.feather'))) for log in logs)
    with tqdm(total=total, desc='missing rays', unit='sweep', disable=not show_progress) as bar:
        for log in logs:
            extract_log_missing_rays(log, cache_dir, cache_id, fit_sweeps, min_range_m, bar)
    return cache_dir
