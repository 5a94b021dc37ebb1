"""Info files for nuScenes, through ``nuscenes-devkit``: the same structure as AV2's.

A nuScenes scene becomes one log table (``logs[scene name]``) and its LIDAR_TOP sweeps (20 Hz,
key frames and the sweeps between them) are the candidate reference sweeps. Which sweeps a
sample uses is decided by the same code as for AV2 (:func:`.av2_infos.reference_sweeps`,
:func:`.av2_infos.sample_entries`), so a sample entry is identical in form; the log table adds
what nuScenes needs: ``format='nuscenes'`` (the readers of :mod:`.log_frames` dispatch on
it), the file of every sweep and image (nuScenes names are not timestamps), the LIDAR_TOP
calibration and the key-frame timestamps (the 2 Hz frames of the 4D occupancy benchmark).
"""
from dataclasses import asdict
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
from mmengine.utils import ProgressBar

from ..fileio import save_pickle_atomic
from ..geometry import pose_matrix
from .av2_infos import (INFO_VERSION, NS_PER_S, SampleTiming, match_nearest, reference_sweeps,
                        sample_entries)
from .errors import AV2DataError
from .nuscenes_io import LIDAR_TOP, NUSCENES_CAMERAS, US_TO_NS

#: SPEC s. 3 sample timing on the 20 Hz LIDAR_TOP (0.2 s = every 4th sweep). Sweeps are matched
#: within half a sweep period; the 12 Hz cameras within 50 ms (the nearest frame of a 12 Hz
#: camera is at most 42 ms away).
NUSCENES_TIMING = SampleTiming(max_time_error_s=0.025, camera_max_offset_s=0.05)
#: Our split name -> the devkit's split (``nuscenes.utils.splits.create_splits_scenes``).
SPLITS_OF_VERSION = {
    'v1.0-mini': dict(train='mini_train', val='mini_val'),
    'v1.0-trainval': dict(train='train', val='val'),
    'v1.0-test': dict(test='test'),
}


def record_pose(record: dict) -> np.ndarray:
    """(4, 4) transform of an ``ego_pose`` / ``calibrated_sensor`` record (scalar-first
    quaternion ``rotation``, ``translation`` in metres)."""
    return pose_matrix(np.asarray(record['rotation']), np.asarray(record['translation']))


def channel_records(nusc, scene: dict, channel: str) -> List[dict]:
    """Every ``sample_data`` record of one sensor channel in a scene, in time order (the
    devkit's prev/next chain through the scene's first key frame)."""
    first = nusc.get('sample', scene['first_sample_token'])
    if channel not in first['data']:
        raise AV2DataError(
            f'the first sample of the scene has no {channel} data',
            log_id=scene['name'],
            fix='use a nuScenes release with all sensors (sample_data.json).')
    record = nusc.get('sample_data', first['data'][channel])
    while record['prev']:
        record = nusc.get('sample_data', record['prev'])
    records = [record]
    while record['next']:
        record = nusc.get('sample_data', record['next'])
        records.append(record)
    return records


def _calibration(nusc, records: List[dict], scene: dict, channel: str) -> dict:
    tokens = {r['calibrated_sensor_token'] for r in records}
    calibs = [nusc.get('calibrated_sensor', t) for t in sorted(tokens)]
    poses = [record_pose(c) for c in calibs]
    if any(not np.allclose(p, poses[0], atol=1e-6) for p in poses[1:]):
        raise AV2DataError(
            f'{channel} calibration changes within the scene ({len(tokens)} different records)',
            log_id=scene['name'],
            fix='GASP needs one calibration per sensor and scene; leave this scene out.')
    return calibs[0]


def _check_files(root: Path, records: List[dict], scene: dict) -> None:
    for record in records:
        if not (root / record['filename']).is_file():
            raise AV2DataError(
                'sensor file listed in sample_data.json is missing',
                log_id=scene['name'],
                path=str(root / record['filename']),
                timestamp_ns=record['timestamp'] * US_TO_NS,
                fix='download the full nuScenes blobs (GASP needs the sweeps/ folder as well as '
                'samples/), or leave this scene out.')


def scene_samples(nusc, scene: dict, root: Path, split: str, version: str,
                  timing: SampleTiming) -> Tuple[dict, List[dict], str]:
    """The log table and samples of one scene (see :func:`.av2_infos.log_samples`).

    Raises:
        AV2DataError: a sensor file is missing, a calibration changes within the scene, or no
            camera frame lies within ``camera_max_offset_s`` of a future sweep.
    """
    lidar = channel_records(nusc, scene, LIDAR_TOP)
    _check_files(root, lidar, scene)
    lidar_ns = np.array([r['timestamp'] for r in lidar], np.int64) * US_TO_NS
    if np.any(np.diff(lidar_ns) <= 0):
        raise AV2DataError(
            'LIDAR_TOP timestamps are not increasing along the sample_data chain',
            log_id=scene['name'],
            fix='re-download the tables of this nuScenes version.')
    matched, valid, message = reference_sweeps(lidar_ns, timing, scene['name'], split)
    if message:
        return None, [], message
    cameras, camera_files, pose_rows = {}, {}, [lidar]
    camera_ns = {}
    wanted = lidar_ns[matched[valid, timing.num_past_sweeps:]]  # (S, F)
    for camera in NUSCENES_CAMERAS:
        records = channel_records(nusc, scene, camera)
        stamps = np.array([r['timestamp'] for r in records], np.int64) * US_TO_NS
        pick = match_nearest(stamps, wanted, int(timing.camera_max_offset_s * NS_PER_S))
        if (pick < 0).any():
            s, f = np.argwhere(pick < 0)[0]
            raise AV2DataError(
                f'no {camera} image within {timing.camera_max_offset_s * 1e3:.0f} ms of this '
                'future LIDAR_TOP sweep',
                log_id=scene['name'],
                timestamp_ns=int(wanted[s, f]),
                fix='download the camera sweeps, or raise camera_max_offset_s.')
        used = np.unique(pick)
        _check_files(root, [records[i] for i in used], scene)
        camera_ns[camera] = stamps[pick]
        calib = _calibration(nusc, records, scene, camera)
        k = np.asarray(calib['camera_intrinsic'], np.float64)
        cameras[camera] = dict(
            ego_from_camera=record_pose(calib),
            fx=float(k[0, 0]),
            fy=float(k[1, 1]),
            cx=float(k[0, 2]),
            cy=float(k[1, 2]),
            width=int(records[0]['width']),
            height=int(records[0]['height']))
        camera_files[camera] = {int(stamps[i]): records[i]['filename'] for i in used}
        pose_rows.append([records[i] for i in used])
    rows = [r for group in pose_rows for r in group]
    stamps = np.array([r['timestamp'] for r in rows], np.int64) * US_TO_NS
    pose_ns, first = np.unique(stamps, return_index=True)
    city_from_ego = np.stack(
        [record_pose(nusc.get('ego_pose', rows[i]['ego_pose_token'])) for i in first])
    log = nusc.get('log', scene['log_token'])
    table = dict(
        log_id=scene['name'],
        split=split,
        format='nuscenes',
        scene_token=scene['token'],
        city=log['location'],
        log_dir='',
        annotations=None,
        map_dir=None,
        pose_file=f'{version}/ego_pose.json',
        pose_timestamps_ns=pose_ns,
        city_from_ego=city_from_ego,
        lidars=(LIDAR_TOP, ),
        ego_from_lidar={LIDAR_TOP: record_pose(_calibration(nusc, lidar, scene, LIDAR_TOP))},
        cameras=cameras,
        lidar_files={
            int(t): r['filename']
            for t, r in zip(lidar_ns, lidar)
        },
        camera_files=camera_files,
        keyframe_ns=lidar_ns[[bool(r['is_key_frame']) for r in lidar]],
    )
    return table, sample_entries(scene['name'], lidar_ns, matched, valid, camera_ns, timing), ''


def split_scenes(nusc, version: str, split: str) -> List[dict]:
    """The scene records of one of our splits ('train', 'val', 'test'), sorted by name.

    Raises:
        KeyError: the version has no such split.
    """
    from nuscenes.utils.splits import create_splits_scenes
    if version not in SPLITS_OF_VERSION or split not in SPLITS_OF_VERSION[version]:
        known = {v: sorted(s) for v, s in SPLITS_OF_VERSION.items()}
        raise KeyError(f'nuScenes {version} has no split {split!r} (known: {known})')
    names = set(create_splits_scenes()[SPLITS_OF_VERSION[version][split]])
    return sorted((s for s in nusc.scene if s['name'] in names), key=lambda s: s['name'])


def create_nuscenes_infos(root_path: str,
                          out_dir: str,
                          version: str = 'v1.0-trainval',
                          splits: Sequence[str] = ('train', 'val'),
                          timing: SampleTiming = NUSCENES_TIMING,
                          prefix: str = 'nus_occ') -> Dict[str, Path]:
    """Write ``<out_dir>/<prefix>_infos_<split>.pkl`` for a nuScenes root.

    Args:
        root_path: the nuScenes data root (holds ``<version>/``, ``samples/``, ``sweeps/``).
        out_dir: where the info files go.
        version: the tables' version folder ('v1.0-mini', 'v1.0-trainval', 'v1.0-test').
        splits: our split names; 'train' / 'val' map to the devkit's 'mini_train' / 'mini_val'
            for v1.0-mini.
        timing: which sweeps a sample uses (default :data:`NUSCENES_TIMING`).
        prefix: info file name prefix.

    Returns:
        split -> written info path. Scenes without a valid sample are printed with the reason.
    """
    from nuscenes.nuscenes import NuScenes
    root = Path(root_path).resolve()
    if not (root / version).is_dir():
        raise AV2DataError(
            f'no nuScenes tables folder {version!r}',
            path=str(root / version),
            fix='pass the nuScenes data root as --root-path and its version as --version.')
    nusc = NuScenes(version=version, dataroot=str(root), verbose=False)
    written = {}
    for split in splits:
        scenes = split_scenes(nusc, version, split)
        if not scenes:
            print(f'[create_data] no scene of split {split} in {root / version}; split skipped')
            continue
        print(f'[create_data] {split}: {len(scenes)} scenes')
        bar, data_list, log_tables = ProgressBar(len(scenes)), [], {}
        for scene in scenes:
            table, samples, message = scene_samples(nusc, scene, root, split, version, timing)
            bar.update()
            if message:
                print(f'\n[create_data] {message}')
                continue
            log_tables[table['log_id']] = table
            for sample in samples:
                sample['sample_idx'] = len(data_list)
                data_list.append(sample)
        print()
        metainfo = dict(
            dataset='nuscenes',
            version=version,
            split=split,
            info_version=INFO_VERSION,
            timing=asdict(timing),
            cameras=list(NUSCENES_CAMERAS),
            lidars=[LIDAR_TOP])
        path = Path(out_dir) / f'{prefix}_infos_{split}.pkl'
        save_pickle_atomic(path, dict(metainfo=metainfo, data_list=data_list, logs=log_tables))
        print(f'[create_data] {split}: {len(data_list)} samples from {len(log_tables)} scenes '
              f'-> {path}')
        written[split] = path
    return written
