"""The synthetic world in the nuScenes on-disk format (v1.0-mini-like), for tests and demos.

The worlds of :func:`gasp.synthetic.build_scene` are seen with a nuScenes sensor set: one
32-beam LIDAR_TOP at 20 Hz (``x`` right, ``y`` forward, ``z`` up; an HDL-32E's beam
elevations), six cameras at 12 Hz, key frames (samples) at 2 Hz. Layout written::

    <root>/v1.0-mini/{category,attribute,visibility,instance,sensor,calibrated_sensor,ego_pose,
                      log,scene,sample,sample_data,sample_annotation,map}.json
    <root>/samples/LIDAR_TOP/<log>__LIDAR_TOP__<timestamp_us>.pcd.bin       key frames
    <root>/sweeps/LIDAR_TOP/<log>__LIDAR_TOP__<timestamp_us>.pcd.bin        other sweeps
    <root>/samples|sweeps/<CAM>/<log>__<CAM>__<timestamp_us>.jpg
    <root>/maps/<token>.png                  drivable area, 0.1 m per pixel (semantic prior)
    <root>/synthetic_gt/<scene>/scene.json   how to rebuild the world (not nuScenes)
    <root>/synthetic_gt/<scene>/lidar/<timestamp_us>.npz   object id per return (not nuScenes)

Scenes are named after the official v1.0-mini split (``mini_train`` / ``mini_val``), so the
devkit's ``create_splits_scenes`` assigns them. The global frame is the generator's world frame
shifted by ``world_half_extent_m`` in x and y, so the map raster starts at the origin. Sweeps are
motion-compensated to their timestamp (the lidar simulation's convention); ego-vehicle returns are
left out (the synthetic body is AV2-sized and would reach past 4D-Occ's nuScenes ego box). No
annotations are written (GASP pre-training needs none).
"""
import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Tuple, Union

import cv2
import numpy as np

from ..fileio import atomic_write_bytes, dump_json_atomic
from .av2_writer import write_jpeg, write_npz
from .cameras import CameraModel, render_images
from .lidar import LidarRig, simulate_sweep
from .presets import SyntheticPreset, get_preset
from .raycast import EGO_ID
from .scene import Scene, build_scene
from .transforms import invert_se3, make_se3, quat_wxyz_from_rotation, transform_points

VERSION = 'v1.0-mini'
SPLIT_SCENE_NAMES = {
    'train': ('scene-0061', 'scene-0553', 'scene-0655', 'scene-0757', 'scene-0796', 'scene-1077',
              'scene-1094', 'scene-1100'),
    'val': ('scene-0103', 'scene-0916'),
}
LIDAR_PERIOD_US = 50_000  # 20 Hz
CAMERA_PERIOD_US = 1_000_000 / 12.0  # 12 Hz
KEYFRAME_EVERY = 10  # a key frame every 10th sweep: 2 Hz
#: HDL-32E beam elevations (degrees), ring index order.
HDL32E_ELEVATION_DEG = tuple(-30.67 + 1.33 * np.arange(32))
LIDAR_TOP_XYZ = (0.943713, 0.0, 1.84023)
#: name -> (x, y, z in the ego frame, yaw in degrees, full-resolution (H, W), fx in pixels,
#: trigger offset after the lidar sweep start in microseconds); about nuScenes' rig.
CAMERA_LAYOUT = {
    'CAM_FRONT': ((1.70, 0.016, 1.51), 0.0, (900, 1600), 1266.0, 0),
    'CAM_FRONT_RIGHT': ((1.52, -0.49, 1.51), -55.0, (900, 1600), 1260.0, 8_000),
    'CAM_BACK_RIGHT': ((1.04, -0.48, 1.56), -110.0, (900, 1600), 1260.0, 16_000),
    'CAM_BACK': ((0.03, 0.0, 1.58), 180.0, (900, 1600), 809.0, 25_000),
    'CAM_BACK_LEFT': ((1.04, 0.48, 1.56), 110.0, (900, 1600), 1260.0, 33_000),
    'CAM_FRONT_LEFT': ((1.52, 0.49, 1.51), 55.0, (900, 1600), 1260.0, 41_000),
}
#: Camera axes (x right, y down, z forward) in a forward-looking ego frame (x fwd, y left, z up).
EGO_FROM_CAM_AXES = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
MAP_RES_M = 0.1
RAY_BUDGET = 1 << 17  # camera rays per ray-casting batch (bounds memory)
LOCATIONS = ('boston-seaport', 'singapore-onenorth', 'singapore-queenstown',
             'singapore-hollandvillage')


def token(*parts) -> str:
    """A deterministic 32-hex-digit token (nuScenes' token form) for a record."""
    return hashlib.md5('/'.join(str(p) for p in parts).encode()).hexdigest()


@dataclass
class NuScenesLidarRig(LidarRig):
    """A single spinning lidar whose revolution takes ``sweep_period_ns``.

    :func:`gasp.synthetic.lidar.simulate_sweep` casts beams 0-31 from
    ``ego_from_sensor['up_lidar']``, so the LIDAR_TOP mount is stored under that key.
    """

    sweep_period_ns: int = LIDAR_PERIOD_US * 1000

    @property
    def column_offset_ns(self) -> np.ndarray:
        return np.arange(self.azimuth_steps) * self.sweep_period_ns // self.azimuth_steps


def rotation_z(yaw_rad: float) -> np.ndarray:
    c, s = np.cos(yaw_rad), np.sin(yaw_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def ego_from_lidar_top() -> np.ndarray:
    """(4, 4) LIDAR_TOP mount: x right, y forward, z up (a -90 degree yaw)."""
    return make_se3(rotation_z(-np.pi / 2), LIDAR_TOP_XYZ)


def lidar_top_rig(azimuth_steps: int, max_range_m: float) -> NuScenesLidarRig:
    return NuScenesLidarRig(
        elevation_rad=np.deg2rad(np.array(HDL32E_ELEVATION_DEG)),
        ego_from_sensor={'up_lidar': ego_from_lidar_top()},
        azimuth_steps=azimuth_steps,
        max_range_m=max_range_m)


def camera_models(scale: float) -> Dict[str, CameraModel]:
    """The six cameras with resolution and intrinsics scaled by ``scale``."""
    rig = {}
    for name, (xyz, yaw_deg, (h, w), f, _) in CAMERA_LAYOUT.items():
        hs, ws = max(8, int(round(h * scale))), max(8, int(round(w * scale)))
        rig[name] = CameraModel(
            name=name,
            ego_from_cam=make_se3(rotation_z(np.deg2rad(yaw_deg)) @ EGO_FROM_CAM_AXES, xyz),
            fx=f * ws / w,
            fy=f * hs / h,
            cx=(ws - 1) / 2.0,
            cy=(hs - 1) / 2.0,
            height=hs,
            width=ws)
    return rig


def nuscenes_scene(preset: SyntheticPreset, seed: int, split: str, index: int) -> Scene:
    """The world of log ``index`` of ``split`` with nuScenes sensor times (microsecond grid)."""
    scene = build_scene(preset, seed, split, index)
    start_us = scene.start_ns // 1000
    num_sweeps = int(round(preset.duration_s * 1e6 / LIDAR_PERIOD_US))
    rng = np.random.default_rng([seed, index, 20])
    sweep_us = start_us + np.arange(num_sweeps) * LIDAR_PERIOD_US
    sweep_us[1:] += rng.integers(-300, 300, size=num_sweeps - 1)
    frames = np.arange(int(preset.duration_s * 12)) * CAMERA_PERIOD_US
    camera_ns = {
        name: (start_us + np.round(frames).astype(np.int64) + layout[4] +
               rng.integers(-200, 200, size=frames.size)) * 1000
        for name, layout in CAMERA_LAYOUT.items()
    }
    return replace(scene, start_ns=start_us * 1000, sweep_ns=sweep_us * 1000, camera_ns=camera_ns)


@dataclass
class NuScenesTables:
    """The tables of one nuScenes version, filled scene by scene."""

    tables: Dict[str, List[dict]] = field(
        default_factory=lambda: {
            name: []
            for name in
            ('category', 'attribute', 'visibility', 'instance', 'sensor', 'calibrated_sensor',
             'ego_pose', 'log', 'scene', 'sample', 'sample_data', 'sample_annotation', 'map')
        })

    def __post_init__(self):
        for name in ('LIDAR_TOP', ) + tuple(CAMERA_LAYOUT):
            self.tables['sensor'].append(
                dict(
                    token=token('sensor', name),
                    channel=name,
                    modality='lidar' if name.startswith('LIDAR') else 'camera'))
        for level, description in enumerate(('0-40', '40-60', '60-80', '80-100'), start=1):
            self.tables['visibility'].append(
                dict(
                    token=str(level),
                    level=f'v{description}',
                    description=f'visibility of whole object is between {description}%'))
        self.tables['category'].append(
            dict(
                token=token('category', 'vehicle.car'),
                name='vehicle.car',
                description='Vehicle designed primarily for personal use.'))

    def write(self, root: Path) -> None:
        for name, records in self.tables.items():
            dump_json_atomic(records, root / VERSION / f'{name}.json', indent=0)


def _pose_fields(mat: np.ndarray) -> dict:
    return dict(
        rotation=quat_wxyz_from_rotation(mat[None, :3, :3])[0].tolist(),
        translation=mat[:3, 3].tolist())


def _write_map(scene: Scene, preset: SyntheticPreset, root: Path, map_token: str) -> str:
    """Drivable-area raster of the scene in the global frame (origin at the bottom-left)."""
    size = int(np.ceil(2 * preset.world_half_extent_m / MAP_RES_M))
    mask = np.zeros((size, size), np.uint8)
    for poly in scene.net.drivable_polygons:
        xy = (np.asarray(poly)[:, :2] + preset.world_half_extent_m) / MAP_RES_M
        pixels = np.stack([xy[:, 0], size - xy[:, 1]], 1)
        cv2.fillPoly(mask, [np.round(pixels).astype(np.int32)], 255)
    ok, buf = cv2.imencode('.png', mask)
    if not ok:
        raise RuntimeError(f'PNG encoding failed for the map of {scene.log_id}')
    filename = f'maps/{map_token}.png'
    atomic_write_bytes(root / filename, buf.tobytes())
    return filename


def write_scene(tables: NuScenesTables,
                root: Path,
                preset: SyntheticPreset,
                seed: int,
                split: str,
                index: int,
                device: str = 'cpu') -> str:
    """Ray-cast one scene, write its sensor files and add its records to ``tables``.

    Returns:
        the scene name.
    """
    import torch
    name = SPLIT_SCENE_NAMES[split][index]
    scene = nuscenes_scene(preset, seed, split, index)
    global_from_world = make_se3(np.eye(3), [preset.world_half_extent_m] * 2 + [0.0])
    tensors = scene.tensors(device=torch.device(device))
    rig = lidar_top_rig(preset.lidar_azimuth_steps, preset.max_range_m)
    cams = camera_models(preset.camera_scale)
    log_token, scene_token = token('log', name), token('scene', name)
    logfile = f'n000-synthetic-{seed}-{name}'
    calib = {}
    for channel, ego_from_sensor in [('LIDAR_TOP', rig.ego_from_sensor['up_lidar'])
                                     ] + [(c, m.ego_from_cam) for c, m in cams.items()]:
        calib[channel] = token('calibrated_sensor', name, channel)
        intrinsic = ([] if channel == 'LIDAR_TOP' else [[cams[channel].fx, 0.0, cams[channel].cx],
                                                        [0.0, cams[channel].fy, cams[channel].cy],
                                                        [0.0, 0.0, 1.0]])
        tables.tables['calibrated_sensor'].append(
            dict(
                token=calib[channel],
                sensor_token=token('sensor', channel),
                camera_intrinsic=intrinsic,
                **_pose_fields(ego_from_sensor)))

    sweep_us = scene.sweep_ns // 1000
    key_us = sweep_us[::KEYFRAME_EVERY]
    sample_tokens = [token('sample', name, t) for t in key_us]
    for k, (t, tok) in enumerate(zip(key_us, sample_tokens)):
        tables.tables['sample'].append(
            dict(
                token=tok,
                timestamp=int(t),
                prev=sample_tokens[k - 1] if k else '',
                next=sample_tokens[k + 1] if k + 1 < len(sample_tokens) else '',
                scene_token=scene_token))

    def nearest_sample(t_us: np.ndarray) -> np.ndarray:
        return np.abs(t_us[:, None] - key_us[None]).argmin(1)

    def add_sample_data(channel: str, stamps_us: np.ndarray, keyframe: np.ndarray, ext: str,
                        size: Tuple[int, int]) -> List[str]:
        sd_tokens = [token('sample_data', name, channel, t) for t in stamps_us]
        files = []
        for k, (t, tok) in enumerate(zip(stamps_us, sd_tokens)):
            folder = 'samples' if keyframe[k] else 'sweeps'
            filename = f'{folder}/{channel}/{logfile}__{channel}__{int(t)}.{ext}'
            ego_pose = token('ego_pose', name, channel, t)
            world_from_ego = scene.world_from_ego(scene.seconds(int(t) * 1000))
            tables.tables['ego_pose'].append(
                dict(
                    token=ego_pose,
                    timestamp=int(t),
                    **_pose_fields(global_from_world @ world_from_ego)))
            tables.tables['sample_data'].append(
                dict(
                    token=tok,
                    sample_token=sample_tokens[nearest_sample(np.array([t]))[0]],
                    ego_pose_token=ego_pose,
                    calibrated_sensor_token=calib[channel],
                    timestamp=int(t),
                    fileformat='pcd' if ext == 'pcd.bin' else ext,
                    is_key_frame=bool(keyframe[k]),
                    height=size[0],
                    width=size[1],
                    filename=filename,
                    prev=sd_tokens[k - 1] if k else '',
                    next=sd_tokens[k + 1] if k + 1 < len(sd_tokens) else ''))
            files.append(filename)
        return files

    is_key = np.zeros(len(sweep_us), bool)
    is_key[::KEYFRAME_EVERY] = True
    lidar_files = add_sample_data('LIDAR_TOP', sweep_us, is_key, 'pcd.bin', (0, 0))
    lidar_from_ego = invert_se3(rig.ego_from_sensor['up_lidar'])
    gt_dir = root / 'synthetic_gt' / name
    with torch.no_grad():
        for k, filename in enumerate(lidar_files):
            sweep = simulate_sweep(scene, tensors, rig, k, preset.heightfield_steps)
            keep = sweep.object_id != EGO_ID
            xyz_ego = sweep.frame[['x', 'y', 'z']].to_numpy(np.float64)[keep]
            points = np.empty((int(keep.sum()), 5), np.float32)
            points[:, :3] = transform_points(lidar_from_ego, xyz_ego)
            points[:, 3] = sweep.frame['intensity'].to_numpy()[keep]
            points[:, 4] = sweep.frame['laser_number'].to_numpy()[keep]
            atomic_write_bytes(root / filename, points.tobytes())
            write_npz(gt_dir / 'lidar' / f'{int(sweep_us[k])}.npz', object_id=sweep.object_id[keep])
        for channel, cam in cams.items():
            stamps_us = scene.camera_ns[channel] // 1000
            key = np.zeros(len(stamps_us), bool)
            key[np.abs(stamps_us[:, None] - key_us[None]).argmin(0)] = True
            files = add_sample_data(channel, stamps_us, key, 'jpg', (cam.height, cam.width))
            # Whole images, several per ray-casting batch (about RAY_BUDGET rays).
            per_batch = max(1, RAY_BUDGET // (cam.height * cam.width))
            for lo in range(0, len(files), per_batch):
                requests = [(cam, int(t) * 1000, (0, cam.height))
                            for t in stamps_us[lo:lo + per_batch]]
                images = render_images(scene, tensors, requests, preset.heightfield_steps)
                for (rgb, _), filename in zip(images, files[lo:lo + per_batch]):
                    write_jpeg(rgb, root / filename, preset.jpeg_quality)

    map_token = token('map', name)
    tables.tables['map'].append(
        dict(
            token=map_token,
            log_tokens=[log_token],
            category='semantic_prior',
            filename=_write_map(scene, preset, root, map_token)))
    location = LOCATIONS[int(np.random.default_rng([seed, index, 21]).integers(len(LOCATIONS)))]
    tables.tables['log'].append(
        dict(
            token=log_token,
            logfile=logfile,
            vehicle='n000',
            date_captured='2018-08-01',
            location=location))
    tables.tables['scene'].append(
        dict(
            token=scene_token,
            log_token=log_token,
            nbr_samples=len(sample_tokens),
            first_sample_token=sample_tokens[0],
            last_sample_token=sample_tokens[-1],
            name=name,
            description=f'synthetic {split} scene {index} (seed {seed}, preset {preset.name})'))
    dump_json_atomic(
        dict(
            generator='gasp.synthetic.nuscenes_writer',
            preset=preset.name,
            duration_s=preset.duration_s,
            seed=seed,
            split=split,
            log_index=index,
            global_from_world_translation=global_from_world[:3, 3].tolist(),
            object_id=dict(none=-1, ground=0, ego=1, first_object=2)), gt_dir / 'scene.json')
    return name


def generate_nuscenes_world(root: Union[str, Path],
                            preset: Union[str, SyntheticPreset] = 'tiny',
                            seed: int = 0,
                            device: str = 'cpu',
                            show_progress: bool = True) -> List[str]:
    """Write a synthetic nuScenes-format dataset (``v1.0-mini`` tables and files).

    Args:
        root: the nuScenes data root to write.
        preset: size preset (its ``logs_per_split`` for 'train' and 'val'; 'test' is ignored,
            v1.0-mini has no test split); lidar at 20 Hz, cameras at 12 Hz for
            ``duration_s`` each.
        seed: world seed (the same seed and preset give identical files).
        device: ray-casting device.
        show_progress: show a progress bar over scenes.

    Returns:
        the scene names written.

    Raises:
        ValueError: the preset asks for more scenes than the v1.0-mini split has names.
    """
    preset = get_preset(preset)
    root = Path(root)
    jobs = []
    for split, names in SPLIT_SCENE_NAMES.items():
        count = preset.logs_per_split.get(split, 0)
        if count > len(names):
            raise ValueError(f'preset {preset.name!r} asks for {count} {split} scenes; the '
                             f'v1.0-mini split has {len(names)} names')
        jobs += [(split, i) for i in range(count)]
    tables = NuScenesTables()
    bar = None
    if show_progress:
        from tqdm import tqdm
        bar = tqdm(total=len(jobs), desc=f'synthetic nuScenes ({preset.name})', unit='scene')
    import torch
    threads, names = torch.get_num_threads(), []
    if not str(device).startswith('cuda'):
        torch.set_num_threads(1)  # small ray batches: intra-op threads cost more than they give
    try:
        for split, index in jobs:
            names.append(write_scene(tables, root, preset, seed, split, index, device))
            if bar is not None:
                bar.update(1)
    finally:
        torch.set_num_threads(threads)
    if bar is not None:
        bar.close()
    tables.write(root)
    return names
