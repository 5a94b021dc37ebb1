"""Cache DINO feature targets for every future sweep the pipeline uses (batched, resumable)."""
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ..datasets.errors import AV2DataError
from ..fileio import save_npz_atomic
from .cache_manifest import write_or_check_manifest
from .dinov2_checkpoint import file_sha256
from .feature_cache import FEATURES_KIND, FEATURES_VERSION, MAKE_FEATURES, feature_cache_path
from .feature_denoiser import FeatureDenoiser
from .feature_extractor import RANDOM_WEIGHTS, DINOFeatureExtractor, build_backbone
from .feature_reduction import FeatureReduction
from .sweep_features import (load_sweep_images, project_sweep, read_sweep_points,
                             sample_sweep_features)
from .sweep_jobs import SweepJob, jobs_from_infos, jobs_from_root


def feature_settings(backbone: str, weights_sha256: str, extractor: DINOFeatureExtractor,
                     feature_dim: int, reduction: Optional[FeatureReduction],
                     denoiser_sha256: Optional[str]) -> dict:
    """The manifest settings that determine the cached values."""
    return dict(
        version=FEATURES_VERSION,
        backbone=backbone,
        weights_sha256=weights_sha256,
        image_short_side=extractor.image_short_side,
        patch_size=extractor.patch_size,
        feature_dim=int(feature_dim),
        reduction=(f'{reduction.method}:{reduction.digest()}' if reduction else None),
        denoiser=denoiser_sha256)


def run_feature_maps(extractor: DINOFeatureExtractor, images: Dict[tuple, np.ndarray],
                     batch_size: int, device: torch.device) -> Dict[tuple, torch.Tensor]:
    """Feature maps of many images, batched by image size.

    Args:
        images: key -> (H, W, 3) uint8 RGB.

    Returns:
        key -> (C, h, w) float32 on ``device``.
    """
    by_size: Dict[tuple, List[tuple]] = {}
    for key, image in images.items():
        by_size.setdefault(image.shape, []).append(key)
    out = {}
    for keys in by_size.values():
        for lo in range(0, len(keys), batch_size):
            chunk = keys[lo:lo + batch_size]
            batch = torch.from_numpy(np.stack([images[k] for k in chunk])).to(device)
            maps = extractor(batch.permute(0, 3, 1, 2))
            out.update(zip(chunk, maps))
    return out


def prepare_job(job: SweepJob, log: dict) -> dict:
    """CPU work of one sweep: decode its camera images and project its points into them."""
    images = load_sweep_images(job, log)
    return dict(images=images, projection=project_sweep(job, log, read_sweep_points(job, log)))


def compute_features_for_jobs(extractor: DINOFeatureExtractor,
                              jobs: Sequence[SweepJob],
                              logs: Dict[str, dict],
                              device: torch.device,
                              reduction: Optional[FeatureReduction] = None,
                              batch_size: int = 8,
                              pool: Optional[ThreadPoolExecutor] = None,
                              prepared: Optional[Sequence[dict]] = None) -> List[dict]:
    """Feature targets of several sweeps (their images go through the ViT together).

    Args:
        prepared: the jobs' :func:`prepare_job` results when already computed (the
            extraction loop prepares the next step while the device works on this one).

    Returns:
        per job: ``features`` (P, D) float32 numpy, ``point_index`` (P,) int64,
        ``camera_index`` (P,) uint8.
    """
    if prepared is None:
        pool = pool or ThreadPoolExecutor(max_workers=4)
        prepared = list(pool.map(lambda job: prepare_job(job, logs[job.log_id]), jobs))
    images = {
        (j, cam): img
        for j, prep in enumerate(prepared)
        for cam, img in prep['images'].items()
    }
    maps = run_feature_maps(extractor, images, batch_size, device)
    results = []
    for j, prep in enumerate(prepared):
        projection = prep['projection']
        feats = sample_sweep_features(projection, {c: maps[(j, c)]
                                                   for c in prep['images']}, {
                                                       c: img.shape[:2]
                                                       for c, img in prep['images'].items()
                                                   }, reduction)
        results.append(
            dict(
                features=feats.cpu().numpy(),
                point_index=projection['point_index'],
                camera_index=projection['camera_index']))
    return results


def save_sweep_features(cache_dir: Path, job: SweepJob, result: dict, cache_id: str) -> None:
    save_npz_atomic(
        feature_cache_path(cache_dir, job.log_id, job.timestamp_ns),
        features=result['features'].astype(np.float16),
        point_index=result['point_index'].astype(np.int32),
        camera_index=result['camera_index'],
        cache_id=np.array(cache_id))


def extract_dino_features(data_dir,
                          output_dir,
                          weights: Optional[str],
                          backbone: str = 'dinov2_vits14',
                          info_files: Sequence[str] = (),
                          splits: Sequence[str] = ('train', 'val', 'test'),
                          image_short_side: int = 448,
                          reduction: Optional[str] = None,
                          denoiser: Optional[str] = None,
                          device: Optional[str] = None,
                          batch_size: int = 8,
                          sweeps_per_step: int = 4,
                          max_sweeps: Optional[int] = None,
                          num_threads: int = 4,
                          show_progress: bool = True,
                          backbone_overrides: Optional[dict] = None) -> dict:
    """Cache the DINO feature targets of every sweep the pipeline uses.

    Args:
        data_dir: the folder that contains ``sensor/``.
        output_dir: the cache folder (see :mod:`gasp.targets.feature_cache`).
        weights: local official checkpoint; None = random weights (tests and timing only;
            recorded as ``'random-init'`` in the manifest).
        backbone: hub name (``dinov2_vits14``, ``dinov2_vitb14_reg``, ``dinov3_vits16``...).
        info_files: info pkl files; their samples' future sweeps are processed. Empty: every
            sweep of every log under ``data_dir/sensor/<splits>``.
        splits: splits used without info files.
        image_short_side: short image side fed to the ViT (multiple of the patch after
            rounding).
        reduction: ``.npz`` of :class:`FeatureReduction` (e.g. a PCA to 64-d); None keeps
            all channels.
        denoiser: local :class:`FeatureDenoiser` checkpoint, or None.
        device: ``'cuda'`` when available by default.
        batch_size: images per ViT forward.
        sweeps_per_step: sweeps whose images are batched together.
        max_sweeps: stop after this many new sweeps (timing runs).
        num_threads: CPU threads that decode images and project points.
        show_progress: progress bar.
        backbone_overrides: architecture overrides (small random ViTs in tests).

    Returns:
        dict with ``cache_dir``, ``sweeps_total``, ``sweeps_skipped``, ``sweeps_done``,
        ``images``, ``seconds``, ``images_per_s`` and where the time went:
        ``wait_for_cpu_s`` (image decoding and projection not done in time),
        ``device_s`` (ViT and feature sampling), ``wait_for_writes_s``.
    """
    device = torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    model, sha = build_backbone(backbone, weights, **(backbone_overrides or {}))
    denoise = FeatureDenoiser.from_file(denoiser) if denoiser else None
    extractor = DINOFeatureExtractor(model, image_short_side, denoise).to(device).eval()
    reducer = FeatureReduction.load(reduction) if reduction else None
    dim = reducer.out_dim if reducer else int(model.embed_dims)
    if reducer is not None and reducer.matrix.shape[0] != model.embed_dims:
        raise AV2DataError(
            f'reduction expects {reducer.matrix.shape[0]}-d features, {backbone} '
            f'gives {model.embed_dims}',
            path=str(reduction),
            fix='fit the reduction on the same backbone.')
    if sha == RANDOM_WEIGHTS:
        print('[extract_dino_features] WARNING: no --weights, the ViT has random weights')
    settings = feature_settings(backbone, sha, extractor, dim, reducer,
                                file_sha256(denoiser) if denoiser else None)
    cache_dir = Path(output_dir)
    cache_id = write_or_check_manifest(cache_dir, FEATURES_KIND, settings, MAKE_FEATURES)
    jobs, logs = (
        jobs_from_infos(info_files, data_dir) if info_files else jobs_from_root(data_dir, splits))
    todo = [
        j for j in jobs if not feature_cache_path(cache_dir, j.log_id, j.timestamp_ns).is_file()
    ]
    if max_sweeps is not None:
        todo = todo[:max_sweeps]
    stats = dict(
        cache_dir=str(cache_dir),
        sweeps_total=len(jobs),
        sweeps_skipped=len(jobs) - len(todo),
        sweeps_done=0,
        images=0)
    start = time.perf_counter()
    timing = dict(wait_for_cpu_s=0.0, device_s=0.0, wait_for_writes_s=0.0)
    steps = [todo[lo:lo + sweeps_per_step] for lo in range(0, len(todo), sweeps_per_step)]
    # Three overlapped stages: CPU threads decode and project the next step, the device runs
    # the ViT on this one, a writer thread saves the previous one.
    with ThreadPoolExecutor(num_threads) as pool, ThreadPoolExecutor(1) as writer, \
            tqdm(total=len(todo), desc=f'{backbone} features', unit='sweep',
                 disable=not show_progress) as bar:

        def prepare(step):
            return [pool.submit(prepare_job, job, logs[job.log_id]) for job in step]

        upcoming = prepare(steps[0]) if steps else []
        writes = []
        for index, step in enumerate(steps):
            tic = time.perf_counter()
            prepared = [future.result() for future in upcoming]
            timing['wait_for_cpu_s'] += time.perf_counter() - tic
            if index + 1 < len(steps):
                upcoming = prepare(steps[index + 1])
            tic = time.perf_counter()
            results = compute_features_for_jobs(
                extractor, step, logs, device, reducer, batch_size, prepared=prepared)
            timing['device_s'] += time.perf_counter() - tic
            tic = time.perf_counter()
            for future in writes:  # at most one step of results waits in memory
                future.result()
            timing['wait_for_writes_s'] += time.perf_counter() - tic
            writes = [
                writer.submit(save_sweep_features, cache_dir, job, result, cache_id)
                for job, result in zip(step, results)
            ]
            stats['images'] += sum(len(job.camera_timestamps_ns) for job in step)
            stats['sweeps_done'] += len(step)
            bar.update(len(step))
        tic = time.perf_counter()
        for future in writes:
            future.result()
        timing['wait_for_writes_s'] += time.perf_counter() - tic
    stats.update({k: round(v, 3) for k, v in timing.items()})
    stats['seconds'] = time.perf_counter() - start
    stats['images_per_s'] = stats['images'] / max(stats['seconds'], 1e-9)
    return stats
