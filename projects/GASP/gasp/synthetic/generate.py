"""Generate synthetic Argoverse 2 sensor logs: the public entry point of ``gasp.synthetic``.

Layout written (AV2 sensor format, plus a ground-truth sidecar that is *not* AV2)::

    <root>/sensor/{train,val,test}/<log_id>/
        annotations.feather                  (not in test)
        city_SE3_egovehicle.feather
        calibration/{egovehicle_SE3_sensor,intrinsics}.feather
        sensors/lidar/<timestamp_ns>.feather
        sensors/cameras/<ring camera>/<timestamp_ns>.jpg
        map/log_map_archive_<log_id>____<CITY>_city_<int>.json
        map/<log_id>___img_Sim2_city.json
        map/<log_id>_ground_height_surface____<CITY>.npy
        synthetic_gt/                        (ground truth for checks; not part of AV2)
            scene.json                       seed, preset, city offset, ego route, lidar layout
            objects.feather                  object_id -> track_uuid, category, kind, dynamic
            lidar/<timestamp_ns>.npz         object_id per return; missing rays (laser_number,
                                             azimuth_rad, offset_ns, direction_ego)
            camera_ids/<cam>/<timestamp_ns>.png   uint16 (object_id + 1) per pixel (optional)

A log is written into ``<root>/.synthetic_staging/`` and renamed into place when complete, so
readers never see a partial log; existing complete logs are skipped (resumable).
"""
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import List, Union

import numpy as np

from .annotations import annotations_frame, sweep_annotations
from .av2_writer import (object_table, write_calibration, write_city_poses, write_feather,
                         write_jpeg, write_json, write_map, write_npz, write_png16, write_sweep)
from .cameras import camera_rig, render_images
from .lidar import av2_lidar_rig, simulate_sweep
from .presets import SyntheticPreset, get_preset
from .scene import RING_CAMERA_NAMES, Scene, build_scene

SIDECAR_DIR = 'synthetic_gt'
STAGING_DIR = '.synthetic_staging'
SPLITS = ('train', 'val', 'test')


def log_tasks(preset: SyntheticPreset):
    """(split, log_index) of every log a preset writes, in a fixed order."""
    return [(split, i) for split in SPLITS for i in range(preset.logs_per_split.get(split, 0))]


def _write_scene_json(scene: Scene, preset: SyntheticPreset, seed: int, log_index: int, rig,
                      path: Path) -> None:
    write_json(
        {
            'generator': 'gasp.synthetic',
            'preset': preset.name,
            'seed': seed,
            'split': scene.split,
            'log_index': log_index,
            'log_id': scene.log_id,
            'city_name': scene.city_name,
            'city_from_world_translation': scene.city_offset.tolist(),
            'ego': {
                'turn': scene.ego.turn,
                'stops': scene.ego.stops
            },
            'object_id': {
                'none': -1,
                'ground': 0,
                'ego': 1,
                'first_object': 2
            },
            'lidar': {
                'sweep_period_ns': 100_000_000,
                'azimuth_steps': rig.azimuth_steps,
                'max_range_m': rig.max_range_m,
                'elevation_rad': rig.elevation_rad.tolist(),
                'column_azimuth_rad': rig.column_azimuth_rad.tolist(),
                'column_offset_ns': rig.column_offset_ns.tolist(),
                'units': {
                    'up_lidar': list(range(32)),
                    'down_lidar': list(range(32, 64))
                }
            },
        }, path)


def _ray_budget(device: str) -> int:
    """Rays per ray-casting batch: bounds memory (pairs, temporaries) on each device."""
    return 1 << 21 if str(device).startswith('cuda') else 1 << 17


def _camera_batches(scene: Scene, cams, ray_budget: int, frames=None):
    """Group (camera, timestamp, row band) requests into batches of about ``ray_budget`` rays.

    ``frames`` optionally restricts the 20 Hz frame indices (default: all).
    """
    batch, size = [], 0
    if frames is None:
        frames = range(len(scene.camera_ns[RING_CAMERA_NAMES[0]]))
    for j in frames:
        for name in RING_CAMERA_NAMES:
            cam, ts = cams[name], int(scene.camera_ns[name][j])
            band = max(1, ray_budget // cam.width)
            for r0 in range(0, cam.height, band):
                rows = (r0, min(cam.height, r0 + band))
                batch.append((cam, ts, rows))
                size += (rows[1] - rows[0]) * cam.width
                if size >= ray_budget:
                    yield batch
                    batch, size = [], 0
    if batch:
        yield batch


class _ImageWriter:
    """Collects rendered row bands and writes each image once all its bands are in."""

    def __init__(self, stage: Path, preset: SyntheticPreset):
        self.stage, self.preset, self.pending = stage, preset, {}

    def add(self, batch, results) -> None:
        for (cam, ts, rows), (rgb, ids) in zip(batch, results):
            key = (cam.name, ts)
            self.pending.setdefault(key, []).append((rows[0], rgb, ids))
            if rows[1] < cam.height:
                continue
            parts = sorted(self.pending.pop(key), key=lambda item: item[0])
            rgb = np.concatenate([p[1] for p in parts])
            ids = np.concatenate([p[2] for p in parts])
            write_jpeg(rgb, self.stage / 'sensors' / 'cameras' / cam.name / f'{ts}.jpg',
                       self.preset.jpeg_quality)
            if self.preset.write_camera_ids:
                write_png16((ids + 1).astype(np.uint16),
                            self.stage / SIDECAR_DIR / 'camera_ids' / cam.name / f'{ts}.png')


def generate_log(root: Union[str, Path],
                 preset: Union[str, SyntheticPreset] = 'tiny',
                 seed: int = 0,
                 split: str = 'train',
                 log_index: int = 0,
                 device: str = 'cpu',
                 overwrite: bool = False) -> Path:
    """Generate one log (deterministic from ``seed``, ``split`` and ``log_index``).

    Args:
        root: dataset root; the log goes to ``<root>/sensor/<split>/<log_id>``.
        preset: preset name or object.
        seed: world seed.
        split: ``train``, ``val`` or ``test`` (test logs have no ``annotations.feather``).
        log_index: index of the log within the split.
        device: torch device for ray casting (``'cpu'`` or ``'cuda'``).
        overwrite: regenerate even if the log already exists.

    Returns:
        The log directory.
    """
    import torch
    preset = get_preset(preset)
    root = Path(root)
    threads = torch.get_num_threads()
    if not str(device).startswith('cuda'):
        # Ray batches are small; intra-op threads cost more than they give (parallelise over
        # logs with ``workers`` instead).
        torch.set_num_threads(1)
    try:
        return _generate_log(root, preset, seed, split, log_index, device, overwrite)
    finally:
        torch.set_num_threads(threads)


def _generate_log(root: Path, preset: SyntheticPreset, seed: int, split: str, log_index: int,
                  device: str, overwrite: bool) -> Path:
    import torch
    scene = build_scene(preset, seed, split, log_index)
    final = root / 'sensor' / split / scene.log_id
    if final.exists():
        if not overwrite:
            return final
        shutil.rmtree(final)
    stage = root / STAGING_DIR / split / scene.log_id
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    tensors = scene.tensors(device=torch.device(device))
    rig = av2_lidar_rig(preset.lidar_azimuth_steps, preset.max_range_m)
    cams = camera_rig(preset.camera_scale)
    gt = stage / SIDECAR_DIR
    with torch.no_grad():
        labels = []
        for k, ts in enumerate(scene.sweep_ns):
            sweep = simulate_sweep(scene, tensors, rig, k, preset.heightfield_steps)
            write_sweep(sweep.frame, stage, ts)
            write_npz(
                gt / 'lidar' / f'{int(ts)}.npz',
                object_id=sweep.object_id,
                **{
                    f'missing_{key}': val
                    for key, val in sweep.missing.items()
                })
            if split != 'test':
                pts = sweep.frame[['x', 'y', 'z']].to_numpy()
                labels.extend(sweep_annotations(scene, k, pts))
        images = _ImageWriter(stage, preset)
        for batch in _camera_batches(scene, cams, _ray_budget(device)):
            images.add(batch, render_images(scene, tensors, batch, preset.heightfield_steps))
    write_city_poses(scene, stage)
    write_calibration(cams, rig.ego_from_sensor, stage)
    if split != 'test':
        write_feather(annotations_frame(labels), stage / 'annotations.feather')
    map_number = int(np.random.default_rng([seed, log_index, 7]).integers(10000, 99999))
    write_map(scene, stage, map_number)
    dynamic = [bool(np.ptp(s[:, :2], axis=0).max() > 1e-6) for s in scene.obj_states]
    write_feather(object_table(scene, dynamic), gt / 'objects.feather')
    _write_scene_json(scene, preset, seed, log_index, rig, gt / 'scene.json')
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(stage, final)
    return final


def _generate_log_worker(args):
    root, preset, seed, split, index, device, overwrite = args
    start = time.perf_counter()
    path = generate_log(root, preset, seed, split, index, device, overwrite)
    return path, time.perf_counter() - start


def generate_world(root: Union[str, Path],
                   preset: Union[str, SyntheticPreset] = 'tiny',
                   seed: int = 0,
                   workers: int = 1,
                   device: str = 'cpu',
                   show_progress: bool = True,
                   overwrite: bool = False) -> List[Path]:
    """Write a whole synthetic AV2 sensor dataset.

    Args:
        root: dataset root (the folder that will contain ``sensor/``).
        preset: ``'tiny'``, ``'demo'``, ``'full'`` or a :class:`SyntheticPreset`.
        seed: world seed; the same seed and preset always give identical logs.
        workers: logs generated in parallel (separate processes).
        device: torch device for ray casting (``'cuda'`` on a GPU machine).
        show_progress: show a progress bar over logs.
        overwrite: regenerate logs that already exist (otherwise they are kept).

    Returns:
        The written log directories, in (split, index) order.
    """
    preset = get_preset(preset)
    root = Path(root)
    tasks = log_tasks(preset)
    jobs = [(root, preset, seed, split, i, device, overwrite) for split, i in tasks]
    results = {}
    bar = None
    if show_progress:
        from tqdm import tqdm
        bar = tqdm(total=len(jobs), desc=f'synthetic AV2 ({preset.name})', unit='log')
    if workers <= 1:
        for job in jobs:
            results[(job[3], job[4])] = generate_log(*job[:7])
            if bar is not None:
                bar.update(1)
    else:
        import multiprocessing as mp
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context('spawn')) as ex:
            futures = {ex.submit(_generate_log_worker, job): (job[3], job[4]) for job in jobs}
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()[0]
                if bar is not None:
                    bar.update(1)
    if bar is not None:
        bar.close()
    staging = root / STAGING_DIR
    if staging.exists() and not any(p.is_file() for p in staging.rglob('*')):
        shutil.rmtree(staging)
    return [results[t] for t in tasks]
