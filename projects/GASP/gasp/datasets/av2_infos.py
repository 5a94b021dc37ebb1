"""Info files for AV2-format sensor data: which reference sweeps make a training sample.

An info file is ``dict(metainfo, data_list, logs)`` (mmengine's format plus one table per
log). A sample in ``data_list`` holds only timestamps; the per-log table ``logs[log_id]``
holds what samples share: the log folder, the ego-pose table, the sensor calibration. No
sensor data is stored, so info files stay small and the loaders read the files they need.
"""
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.utils import ProgressBar, track_parallel_progress

from ..fileio import save_pickle_atomic
from .av2_io import (LIDARS, RING_CAMERAS, list_camera_timestamps, list_lidar_timestamps,
                     read_city_from_ego, read_ego_from_sensor, read_intrinsics)
from .errors import AV2DataError

INFO_VERSION = 1
NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class SampleTiming:
    """Which sweeps a sample uses, relative to its reference sweep (defaults: SPEC s. 3).

    Args:
        num_past_sweeps: input sweeps, the reference sweep included.
        past_interval_s: spacing of input sweeps (0.2 s = every 2nd sweep at 10 Hz).
        future_horizon_s: targets come from sweeps in (0, horizon].
        future_interval_s: spacing of target sweeps.
        max_time_error_s: a sweep is matched to a wanted time when within this error.
        camera_max_offset_s: a camera frame is matched to a sweep when within this offset.
        sample_stride: use every n-th valid reference sweep of a log.
    """
    num_past_sweeps: int = 5
    past_interval_s: float = 0.2
    future_horizon_s: float = 3.0
    future_interval_s: float = 0.2
    max_time_error_s: float = 0.05
    camera_max_offset_s: float = 0.025
    sample_stride: int = 1

    def past_offsets_s(self) -> np.ndarray:
        return -self.past_interval_s * np.arange(self.num_past_sweeps - 1, -1, -1)

    def future_offsets_s(self) -> np.ndarray:
        count = int(round(self.future_horizon_s / self.future_interval_s))
        return self.future_interval_s * np.arange(1, count + 1)


def match_nearest(sorted_ns: np.ndarray, wanted_ns: np.ndarray, tolerance_ns: int):
    """Index of the nearest entry of ``sorted_ns`` for each wanted time, -1 if too far."""
    right = np.clip(np.searchsorted(sorted_ns, wanted_ns), 1, len(sorted_ns) - 1)
    left = right - 1
    pick = np.where(
        np.abs(sorted_ns[left] - wanted_ns) <= np.abs(sorted_ns[right] - wanted_ns), left, right)
    return np.where(np.abs(sorted_ns[pick] - wanted_ns) <= tolerance_ns, pick, -1)


def _log_table(log_dir: Path, root: Path, split: str, pose_ns: np.ndarray,
               city_from_ego: np.ndarray) -> dict:
    ego_from_sensor = read_ego_from_sensor(log_dir)
    intrinsics = read_intrinsics(log_dir)
    for name in LIDARS + RING_CAMERAS:
        if name not in ego_from_sensor:
            raise AV2DataError(
                f'no extrinsics for sensor {name!r}',
                log_id=log_dir.name,
                path=str(log_dir / 'calibration' / 'egovehicle_SE3_sensor.feather'))
    for name in RING_CAMERAS:
        if name not in intrinsics:
            raise AV2DataError(
                f'no intrinsics for camera {name!r}',
                log_id=log_dir.name,
                path=str(log_dir / 'calibration' / 'intrinsics.feather'))
    map_files = sorted((log_dir / 'map').glob('log_map_archive_*.json'))
    city = map_files[0].stem.split('____')[-1].rsplit('_city_', 1)[0] if map_files else None
    ann = log_dir / 'annotations.feather'
    return dict(
        log_id=log_dir.name,
        split=split,
        city=city,
        log_dir=str(log_dir.relative_to(root)),
        annotations=str(ann.relative_to(root)) if ann.exists() else None,
        map_dir=str((log_dir / 'map').relative_to(root)),
        pose_timestamps_ns=pose_ns,
        city_from_ego=city_from_ego,
        ego_from_lidar={name: ego_from_sensor[name]
                        for name in LIDARS},
        cameras={
            name: dict(ego_from_camera=ego_from_sensor[name], **intrinsics[name])
            for name in RING_CAMERAS
        },
    )


def reference_sweeps(lidar_ns: np.ndarray, timing: SampleTiming, log_name: str,
                     split: str) -> Tuple[Optional[np.ndarray], np.ndarray, str]:
    """Which sweeps of a log are reference sweeps, and the sweeps each one uses.

    Shared by every dataset format (AV2, nuScenes): only sweep timestamps go in.

    Args:
        lidar_ns: (T,) sorted sweep timestamps of the log.
        timing: which sweeps a sample uses.
        log_name: the log, for the report.
        split: the split, for the report.

    Returns:
        matched: (T, P + F) index of the sweep nearest to each past and future time of every
            sweep (-1: none within ``max_time_error_s``); valid: (S,) indices of the reference
            sweeps (every ``sample_stride``-th with all sweeps matched); and a message for the
            report when there is none ('' otherwise).
    """
    need = timing.past_offsets_s()[0], timing.future_offsets_s()[-1]
    span_s = (lidar_ns[-1] - lidar_ns[0]) / NS_PER_S if len(lidar_ns) > 1 else 0.0
    if span_s < need[1] - need[0]:
        return None, np.zeros(0, np.int64), (
            f'log {log_name} ({split}): {len(lidar_ns)} sweeps span {span_s:.1f} s, shorter '
            f'than the {need[1] - need[0]:.1f} s a sample needs; skipped')
    tol_ns = int(timing.max_time_error_s * NS_PER_S)
    offsets_ns = np.round(
        np.concatenate([timing.past_offsets_s(), timing.future_offsets_s()]) * NS_PER_S).astype(
            np.int64)
    matched = match_nearest(lidar_ns, lidar_ns[:, None] + offsets_ns[None], tol_ns)  # (T, P + F)
    valid = np.flatnonzero((matched >= 0).all(1))[::timing.sample_stride]
    if len(valid) == 0:
        return matched, valid, (f'log {log_name} ({split}): no reference sweep has all past '
                                'and future sweeps within the matching tolerance; skipped')
    return matched, valid, ''


def sample_entries(log_id: str, lidar_ns: np.ndarray, matched: np.ndarray, valid: np.ndarray,
                   camera_ns: Dict[str, np.ndarray], timing: SampleTiming) -> List[dict]:
    """The ``data_list`` entries of a log's reference sweeps (see :func:`reference_sweeps`).

    Args:
        camera_ns: camera -> (S, F) timestamp of the image matched to each future sweep of
            each reference sweep.
    """
    num_past = timing.num_past_sweeps
    tol_ns = int(timing.max_time_error_s * NS_PER_S)
    horizon_ns = int(round(timing.future_horizon_s * NS_PER_S))
    samples = []
    for row, ref in enumerate(valid):
        samples.append(
            dict(
                log_id=log_id,
                timestamp_ns=int(lidar_ns[ref]),
                past_timestamps_ns=lidar_ns[matched[ref, :num_past]].tolist(),
                future_timestamps_ns=lidar_ns[matched[ref, num_past:]].tolist(),
                ego_path_timestamps_ns=lidar_ns[(lidar_ns >= lidar_ns[ref])
                                                & (lidar_ns <= lidar_ns[ref] + horizon_ns +
                                                   tol_ns)].tolist(),
                future_camera_timestamps_ns={
                    c: stamps[row].tolist()
                    for c, stamps in camera_ns.items()
                },
            ))
    return samples


def log_samples(log_dir: Path, root: Path, split: str,
                timing: SampleTiming) -> Tuple[Optional[dict], List[dict], str]:
    """Samples of one log.

    Returns:
        log table (None when the log has no valid sample), the samples, and a message for
        the report ('' when the log is used).

    Raises:
        AV2DataError: a pose row is missing for a used sweep or image, a camera frame is
            missing for a future sweep, or a calibration file is bad.
    """
    lidar_ns = list_lidar_timestamps(log_dir)
    matched, valid, message = reference_sweeps(lidar_ns, timing, log_dir.name, split)
    if message:
        return None, [], message
    tol_ns = int(timing.max_time_error_s * NS_PER_S)

    pose_ns, city_from_ego = read_city_from_ego(log_dir)
    pose_path = str(log_dir / 'city_SE3_egovehicle.feather')

    def check_poses(timestamps_ns: np.ndarray, what: str):
        missing = ~np.isin(timestamps_ns, pose_ns)
        if missing.any():
            raise AV2DataError(
                f'city_SE3_egovehicle has no row for this {what} timestamp',
                log_id=log_dir.name,
                path=pose_path,
                timestamp_ns=int(timestamps_ns[missing][0]))

    num_past = timing.num_past_sweeps
    used = np.unique(matched[valid].ravel())
    horizon_ns = int(round(timing.future_horizon_s * NS_PER_S))
    check_poses(lidar_ns[used], 'lidar')
    # The ego path uses every sweep up to the horizon of any sample.
    first, last = lidar_ns[valid[0]], lidar_ns[valid[-1]] + horizon_ns + tol_ns
    check_poses(lidar_ns[(lidar_ns >= first) & (lidar_ns <= last)], 'lidar')

    future_idx = matched[valid, num_past:]  # (S, F)
    camera_ns = {}
    for camera in RING_CAMERAS:
        stamps = list_camera_timestamps(log_dir, camera)
        wanted = lidar_ns[future_idx]
        pick = (
            match_nearest(stamps, wanted, int(timing.camera_max_offset_s * NS_PER_S))
            if len(stamps) else np.full(wanted.shape, -1))
        if (pick < 0).any():
            s, f = np.argwhere(pick < 0)[0]
            raise AV2DataError(
                f'no {camera} image within {timing.camera_max_offset_s * 1e3:.0f} ms of this '
                'future lidar sweep',
                log_id=log_dir.name,
                path=str(log_dir / 'sensors' / 'cameras' / camera),
                timestamp_ns=int(wanted[s, f]),
                fix='restore the missing images, or move the log out of the data root and re-run '
                'tools/create_data.py.')
        camera_ns[camera] = stamps[pick]
        check_poses(np.unique(camera_ns[camera]), f'{camera} image')

    table = _log_table(log_dir, root, split, pose_ns, city_from_ego)
    return table, sample_entries(log_dir.name, lidar_ns, matched, valid, camera_ns, timing), ''


def split_logs(root: Path, split: str) -> List[Path]:
    """Log folders (with lidar sweeps) of ``<root>/sensor/<split>``, sorted; [] if absent."""
    split_dir = root / 'sensor' / split
    if not split_dir.is_dir():
        return []
    return sorted(p for p in split_dir.iterdir() if (p / 'sensors' / 'lidar').is_dir())


def _log_job(args):
    log_dir, root, split, timing = args
    return log_samples(log_dir, root, split, timing)


def create_av2_infos(root_path: str,
                     out_dir: str,
                     splits: Sequence[str] = ('train', 'val', 'test'),
                     timing: SampleTiming = SampleTiming(),
                     workers: int = 1,
                     prefix: str = 'av2_occ') -> Dict[str, Path]:
    """Write ``<out_dir>/<prefix>_infos_<split>.pkl`` for every split found under the root.

    Args:
        root_path: folder that contains ``sensor/<split>/<log_id>``.
        out_dir: where the info files go.
        splits: splits to convert; missing split folders are reported and skipped.
        timing: which sweeps a sample uses.
        workers: processes over logs.
        prefix: info file name prefix.

    Returns:
        split -> written info path. Skipped logs are printed with the reason.
    """
    root = Path(root_path).resolve()
    written = {}
    for split in splits:
        logs = split_logs(root, split)
        if not logs:
            print(f'[create_data] no logs under {root / "sensor" / split}; split skipped')
            continue
        print(f'[create_data] {split}: {len(logs)} logs')
        jobs = [(log, root, split, timing) for log in logs]
        if workers > 1:
            results = track_parallel_progress(_log_job, jobs, nproc=workers)
        else:
            bar, results = ProgressBar(len(jobs)), []
            for job in jobs:
                results.append(_log_job(job))
                bar.update()
            print()
        data_list, log_tables = [], {}
        for table, samples, message in results:
            if message:
                print(f'[create_data] {message}')
                continue
            log_tables[table['log_id']] = table
            for sample in samples:
                sample['sample_idx'] = len(data_list)
                data_list.append(sample)
        metainfo = dict(
            dataset='av2',
            split=split,
            info_version=INFO_VERSION,
            timing=asdict(timing),
            cameras=list(RING_CAMERAS),
            lidars=list(LIDARS))
        path = Path(out_dir) / f'{prefix}_infos_{split}.pkl'
        save_pickle_atomic(path, dict(metainfo=metainfo, data_list=data_list, logs=log_tables))
        print(f'[create_data] {split}: {len(data_list)} samples from {len(log_tables)} logs '
              f'-> {path}')
        written[split] = path
    return written
