"""Check an AV2-format root, its info files and target caches before training.

Every problem is reported with its log, file and timestamp. ``error`` problems would stop
training (the loaders raise on them) or poison it (NaN or absurd values, stale caches);
``warning`` problems are handled by the tools (a log too short for the horizon is skipped).
``tools/check_dataset.py`` is the command line; its exit status says whether training may
start.
"""
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.utils import track_parallel_progress
from pyarrow import feather as pa_feather
from tqdm import tqdm

from ..targets.cache_manifest import MANIFEST_NAME
from ..targets.feature_cache import FEATURES_KIND, feature_cache_path
from ..targets.missing_rays import MISSING_RAYS_KIND, missing_rays_path
from .av2_infos import INFO_VERSION, NS_PER_S, SampleTiming, match_nearest, split_logs
from .av2_io import LIDARS, RING_CAMERAS, camera_path, lidar_path

#: Arrow types of the AV2 files (SPEC section 2).
SWEEP_TYPES = dict(
    x='halffloat',
    y='halffloat',
    z='halffloat',
    intensity='uint8',
    laser_number='uint8',
    offset_ns='int32')
POSE_TYPES = dict(
    timestamp_ns='int64',
    qw='double',
    qx='double',
    qy='double',
    qz='double',
    tx_m='double',
    ty_m='double',
    tz_m='double')
CALIBRATION_TYPES = {k: v for k, v in POSE_TYPES.items() if k != 'timestamp_ns'}
INTRINSICS_TYPES = dict(fx_px='double', fy_px='double', cx_px='double', cy_px='double')


@dataclass
class Limits:
    """What counts as absurd. Lidar points farther than ``max_point_xy_m`` (horizontally)
    or ``max_point_z_m`` (vertically) from the ego origin, ego poses farther than
    ``max_city_m`` from the city origin, or moving faster than ``max_speed_mps``."""
    max_point_xy_m: float = 400.0
    max_point_z_m: float = 100.0
    max_city_m: float = 1.0e6
    max_speed_mps: float = 70.0
    max_quaternion_error: float = 1.0e-3


@dataclass
class Problem:
    """One finding: ``severity`` 'error' or 'warning', a short ``kind`` and the place."""
    severity: str
    kind: str
    message: str
    log_id: Optional[str] = None
    path: Optional[str] = None
    timestamp_ns: Optional[int] = None


def _read(path: Path,
          types: Dict[str, str],
          log_id: str,
          problems: List[Problem],
          timestamp_ns: Optional[int] = None):
    """Arrow table of a feather file, or None after reporting why it cannot be used."""

    def add(kind, message):
        problems.append(Problem('error', kind, message, log_id, str(path), timestamp_ns))

    if not path.is_file():
        return add('missing_file', 'file is missing')
    try:
        table = pa_feather.read_table(path, memory_map=True)
    except Exception as err:  # pyarrow raises several types for corrupt files
        return add('unreadable_file', f'cannot read feather file ({type(err).__name__}: {err})')
    found = {f.name: str(f.type) for f in table.schema}
    missing = [c for c in types if c not in found]
    if missing:
        return add('wrong_columns', f'columns {missing} are missing (found {sorted(found)})')
    wrong = {c: found[c] for c, t in types.items() if found[c] not in t.split('|')}
    if wrong:
        return add('wrong_dtypes', f'column types {wrong}, expected '
                   f'{ {c: types[c] for c in wrong} }')
    return table


def _columns(table, names) -> np.ndarray:
    return np.stack([table.column(c).to_numpy().astype(np.float64) for c in names], axis=1)


def _check_poses(log_dir: Path, limits: Limits, problems: List[Problem]):
    path = log_dir / 'city_SE3_egovehicle.feather'
    table = _read(path, POSE_TYPES, log_dir.name, problems)
    if table is None:
        return None
    stamps = table.column('timestamp_ns').to_numpy()
    values = _columns(table, list(POSE_TYPES)[1:])
    order = np.argsort(stamps)
    stamps, values = stamps[order], values[order]

    def flag(mask, kind, message):
        for i in np.flatnonzero(mask)[:1]:
            problems.append(
                Problem('error', kind, f'{message} ({int(mask.sum())} rows)', log_dir.name,
                        str(path), int(stamps[i])))

    finite = np.isfinite(values).all(1)
    flag(~finite, 'nonfinite_pose', 'NaN or infinite ego pose')
    quat_error = np.abs(np.linalg.norm(values[:, :4], axis=1) - 1.0)
    flag(finite & (quat_error > limits.max_quaternion_error), 'absurd_pose',
         'pose quaternion is not a unit quaternion')
    flag(finite & (np.abs(values[:, 4:]) > limits.max_city_m).any(1), 'absurd_pose',
         f'ego position farther than {limits.max_city_m:g} m from the city origin')
    if len(stamps) > 1:
        dt_s = np.diff(stamps) / NS_PER_S
        speed = np.linalg.norm(np.diff(values[:, 4:], axis=0), axis=1) / np.maximum(dt_s, 1e-9)
        flag(np.r_[False, np.isfinite(speed) & (speed > limits.max_speed_mps)], 'absurd_pose',
             f'ego moves faster than {limits.max_speed_mps:g} m/s between pose rows')
        flag(np.r_[False, dt_s == 0], 'duplicate_pose', 'two pose rows share a timestamp')
    return stamps


def _check_calibration(log_dir: Path, problems: List[Problem]) -> None:
    calib = log_dir / 'calibration'
    for name, types, needed in (('egovehicle_SE3_sensor', CALIBRATION_TYPES, LIDARS + RING_CAMERAS),
                                ('intrinsics', INTRINSICS_TYPES, RING_CAMERAS)):
        path = calib / f'{name}.feather'
        table = _read(path, dict(sensor_name='string|large_string', **types), log_dir.name,
                      problems)
        if table is None:
            continue
        sensors = set(table.column('sensor_name').to_pylist())
        missing = [s for s in needed if s not in sensors]
        if missing:
            problems.append(
                Problem('error', 'missing_sensor', f'no rows for sensors {missing}', log_dir.name,
                        str(path)))
        if not np.isfinite(_columns(table, list(types))).all():
            problems.append(
                Problem('error', 'nonfinite_calibration', 'NaN or infinite calibration value',
                        log_dir.name, str(path)))


def _check_sweep(path: Path, log_id: str, stamp: int, limits: Limits,
                 problems: List[Problem]) -> Optional[int]:
    """Number of points of a usable sweep, None after reporting a problem."""
    table = _read(path, SWEEP_TYPES, log_id, problems, stamp)
    if table is None:
        return None
    if table.num_rows == 0:
        problems.append(
            Problem('error', 'empty_sweep', 'sweep has no points', log_id, str(path), stamp))
        return None
    xyz = _columns(table, 'xyz')
    finite = np.isfinite(xyz).all(1)
    if not finite.all():
        problems.append(
            Problem('error', 'nonfinite_points',
                    f'{int((~finite).sum())} points with NaN or infinite coordinates', log_id,
                    str(path), stamp))
    far = finite & ((np.linalg.norm(xyz[:, :2], axis=1) > limits.max_point_xy_m)
                    | (np.abs(xyz[:, 2]) > limits.max_point_z_m))
    if far.any():
        problems.append(
            Problem(
                'error', 'absurd_points',
                f'{int(far.sum())} points beyond {limits.max_point_xy_m:g} m horizontally or '
                f'{limits.max_point_z_m:g} m vertically (max |xyz| '
                f'{np.abs(xyz[far]).max():.3g} m)', log_id, str(path), stamp))
    return table.num_rows


def check_log(log_dir: Path, timing: SampleTiming = SampleTiming(),
              limits: Limits = Limits()) -> dict:  # yapf: disable
    """Check one log folder.

    Returns:
        ``dict(problems, sweep_points)``: the problems and ``timestamp_ns -> point count`` of
        the readable sweeps (used to check caches).
    """
    log_id, problems = log_dir.name, []
    pose_ns = _check_poses(log_dir, limits, problems)
    _check_calibration(log_dir, problems)
    lidar_ns = np.sort(
        np.array([
            int(p.stem)
            for p in (log_dir / 'sensors' / 'lidar').glob('*.feather') if p.stem.isdigit()
        ],
                 dtype=np.int64))
    sweep_points = {}
    for stamp in lidar_ns.tolist():
        count = _check_sweep(lidar_path(log_dir, stamp), log_id, stamp, limits, problems)
        if count is not None:
            sweep_points[stamp] = count
    if pose_ns is not None:
        missing = lidar_ns[~np.isin(lidar_ns, pose_ns)]
        for stamp in missing[:1].tolist():
            problems.append(
                Problem('error', 'missing_pose_row',
                        f'city_SE3_egovehicle has no row for {len(missing)} lidar timestamps',
                        log_id, str(log_dir / 'city_SE3_egovehicle.feather'), stamp))
    span_s = (lidar_ns[-1] - lidar_ns[0]) / NS_PER_S if len(lidar_ns) > 1 else 0.0
    need_s = timing.future_offsets_s()[-1] - timing.past_offsets_s()[0]
    if span_s < need_s:
        problems.append(
            Problem(
                'warning', 'log_too_short',
                f'{len(lidar_ns)} sweeps span {span_s:.1f} s, shorter than the {need_s:.1f} s '
                'a sample needs; tools/create_data.py skips this log', log_id, str(log_dir)))
    _check_cameras(log_dir, lidar_ns, pose_ns, timing, problems)
    return dict(problems=problems, sweep_points=sweep_points)


def _check_cameras(log_dir: Path, lidar_ns: np.ndarray, pose_ns: Optional[np.ndarray],
                   timing: SampleTiming, problems: List[Problem]) -> None:
    log_id = log_dir.name
    tolerance_ns = int(timing.camera_max_offset_s * NS_PER_S)
    for camera in RING_CAMERAS:
        folder = log_dir / 'sensors' / 'cameras' / camera
        files = sorted(folder.glob('*.jpg')) if folder.is_dir() else []
        if not files:
            problems.append(
                Problem('error', 'missing_camera', f'no {camera} images', log_id, str(folder)))
            continue
        empty = [p for p in files if p.stat().st_size == 0]
        for path in empty[:1]:
            problems.append(
                Problem('error', 'empty_image', f'{len(empty)} empty {camera} image files', log_id,
                        str(path), int(path.stem)))
        stamps = np.array([int(p.stem) for p in files], dtype=np.int64)
        if len(lidar_ns):
            unmatched = lidar_ns[match_nearest(stamps, lidar_ns, tolerance_ns) < 0] if len(
                stamps) > 1 else lidar_ns[np.abs(lidar_ns - stamps[0]) > tolerance_ns]
            for stamp in unmatched[:1].tolist():
                problems.append(
                    Problem(
                        'error', 'missing_camera_frame',
                        f'{len(unmatched)} lidar sweeps have no {camera} image within '
                        f'{timing.camera_max_offset_s * 1e3:.0f} ms', log_id, str(folder), stamp))
        if pose_ns is not None:
            missing = stamps[~np.isin(stamps, pose_ns)]
            for stamp in missing[:1].tolist():
                problems.append(
                    Problem(
                        'error', 'missing_pose_row',
                        f'city_SE3_egovehicle has no row for {len(missing)} {camera} image '
                        'timestamps', log_id, str(log_dir / 'city_SE3_egovehicle.feather'), stamp))


def _check_log_job(args):
    return check_log(*args)


def check_info_file(info_path: Path, root: Path, sweep_points: Dict[str, Dict[int, int]],
                    problems: List[Problem]) -> Optional[dict]:
    """Check an info file against the root: version, logs present, every sample's sweeps,
    images and pose rows. Returns the loaded infos (None when unusable)."""

    found: Dict[tuple, list] = {}  # one problem per (kind, log, message), with a count

    def add(kind, message, log_id=None, path=info_path, stamp=None):
        entry = found.setdefault((kind, log_id, message),
                                 [Problem('error', kind, message, log_id, str(path), stamp), 0])
        entry[1] += 1

    def fail(kind, message):
        problems.append(Problem('error', kind, message, path=str(info_path)))

    try:
        with open(info_path, 'rb') as f:
            infos = pickle.load(f)
    except Exception as err:
        return fail('unreadable_info', f'cannot read info file ({type(err).__name__}: {err})')
    if not isinstance(infos, dict) or not {'metainfo', 'data_list', 'logs'} <= set(infos):
        return fail('bad_info', 'not a GASP AV2 info file (needs metainfo, data_list, logs)')
    version = infos['metainfo'].get('info_version')
    if version != INFO_VERSION:
        return fail('stale_info', f'info version {version}, this code reads {INFO_VERSION}')
    for sample in tqdm(infos['data_list'], desc=f'samples of {info_path.name}', leave=False):
        log_id, stamp = sample['log_id'], sample['timestamp_ns']
        log = infos['logs'].get(log_id)
        if log is None:
            add('bad_info', 'sample names a log without a log table', log_id, stamp=stamp)
            continue
        log_dir = root / log['log_dir']
        if not log_dir.is_dir():
            add('missing_log', 'log folder of the info file is missing', log_id, log_dir, stamp)
            continue
        points = sweep_points.get(log_id, {})
        wanted = sample['past_timestamps_ns'] + sample['future_timestamps_ns']
        for t in wanted:
            if t not in points and not lidar_path(log_dir, t).is_file():
                add('stale_info', 'info sample uses a lidar sweep that does not exist', log_id,
                    lidar_path(log_dir, t), t)
        pose_ns = log['pose_timestamps_ns']
        for t in np.setdiff1d(np.asarray(wanted + sample['ego_path_timestamps_ns']), pose_ns):
            add('missing_pose_row',
                'info log table has no pose row for a used sweep',
                log_id,
                stamp=int(t))
        for camera, stamps in sample['future_camera_timestamps_ns'].items():
            for t in stamps:
                if not camera_path(log_dir, camera, t).is_file():
                    add('stale_info', 'info sample uses a camera image that does not exist', log_id,
                        camera_path(log_dir, camera, t), t)
    for problem, count in found.values():
        problem.message += f' ({count} times in {info_path.name}; re-create it with ' \
            'tools/create_data.py)'
        problems.append(problem)
    return infos


def _read_manifest(cache_dir: Path, kind: str, problems: List[Problem]) -> Optional[str]:
    import json
    path = cache_dir / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text())
    except Exception as err:
        problems.append(
            Problem(
                'error',
                'bad_cache', f'no readable cache manifest ({type(err).__name__}: '
                f'{err})',
                path=str(path)))
        return None
    if manifest.get('kind') != kind:
        problems.append(
            Problem(
                'error',
                'bad_cache',
                f'cache kind {manifest.get("kind")!r}, expected {kind!r}',
                path=str(path)))
        return None
    return manifest.get('cache_id')


def check_cache(cache_dir, kind: str, infos: Sequence[dict],
                sweep_points: Dict[str, Dict[int, int]], problems: List[Problem]) -> None:
    """Check a feature (``kind='dino_features'``) or missing-ray cache for the future sweeps
    of every info sample: file present and readable, from this cache (``cache_id``), and for
    features, point indices inside the sweep (a stale cache of a changed sweep)."""
    cache_dir = Path(cache_dir)
    cache_id = _read_manifest(cache_dir, kind, problems)
    if cache_id is None:
        return
    path_of = feature_cache_path if kind == FEATURES_KIND else missing_rays_path
    sweeps = sorted({(s['log_id'], int(t))
                     for info in infos
                     for s in info['data_list']
                     for t in s['future_timestamps_ns']})
    for log_id, stamp in tqdm(sweeps, desc=f'{kind} cache', leave=False):
        path = path_of(cache_dir, log_id, stamp)

        def add(kind_, message):
            problems.append(Problem('error', kind_, message, log_id, str(path), stamp))

        if not path.is_file():
            add('missing_cache_file', 'no cached file for this sweep')
            continue
        try:
            with np.load(path) as data:
                file_id = str(data['cache_id'])
                rows = data['point_index'] if kind == FEATURES_KIND else None
                values = data['features' if kind == FEATURES_KIND else 'directions_ego']
                finite = bool(np.isfinite(values).all())
        except Exception as err:
            add('unreadable_cache_file', f'cannot read cached file ({type(err).__name__}: {err})')
            continue
        if file_id != cache_id:
            add('stale_cache_file', f'file belongs to another cache ({file_id}, manifest '
                f'{cache_id})')
        if not finite:
            add('nonfinite_cache', 'cached values contain NaN or infinity')
        count = sweep_points.get(log_id, {}).get(stamp)
        if rows is not None and count is not None and len(rows) and int(rows.max()) >= count:
            add(
                'stale_cache_file', f'cached point index {int(rows.max())} but the sweep has '
                f'{count} points (the sweep changed after the cache was made)')


def check_dataset(root,
                  info_files: Sequence = (),
                  splits: Sequence[str] = ('train', 'val', 'test'),
                  timing: SampleTiming = SampleTiming(),
                  limits: Limits = Limits(),
                  feature_cache: Optional[str] = None,
                  missing_rays_cache: Optional[str] = None,
                  workers: int = 1) -> List[Problem]:
    """Check every log of ``<root>/sensor/<split>``, the info files and the caches.

    Returns:
        All problems, errors first.
    """
    root = Path(root).resolve()
    logs = [log for split in splits for log in split_logs(root, split)]
    jobs = [(log, timing, limits) for log in logs]
    if workers > 1 and len(jobs) > 1:
        results = track_parallel_progress(_check_log_job, jobs, nproc=workers)
    else:
        results = [_check_log_job(job) for job in tqdm(jobs, desc='logs')]
    problems = [p for r in results for p in r['problems']]
    sweep_points = {log.name: r['sweep_points'] for log, r in zip(logs, results)}
    if not logs:
        problems.append(
            Problem(
                'error',
                'no_logs',
                f'no logs under {root}/sensor/{{{",".join(splits)}}}',
                path=str(root)))
    infos = []
    for info_path in info_files:
        loaded = check_info_file(Path(info_path), root, sweep_points, problems)
        if loaded is not None:
            infos.append(loaded)
    if feature_cache:
        check_cache(feature_cache, FEATURES_KIND, infos, sweep_points, problems)
    if missing_rays_cache:
        check_cache(missing_rays_cache, MISSING_RAYS_KIND, infos, sweep_points, problems)
    return sorted(problems, key=lambda p: (p.severity != 'error', p.log_id or '', p.kind))


def may_train(problems: Sequence[Problem]) -> bool:
    """True when no problem is an error."""
    return not any(p.severity == 'error' for p in problems)


def problems_to_json(problems: Sequence[Problem]) -> dict:
    counts: Dict[str, int] = {}
    for p in problems:
        counts[p.kind] = counts.get(p.kind, 0) + 1
    return dict(
        may_train=may_train(problems),
        errors=sum(p.severity == 'error' for p in problems),
        warnings=sum(p.severity == 'warning' for p in problems),
        counts=counts,
        problems=[asdict(p) for p in problems])
