"""nuScenes: the synthetic nuScenes-format world, the devkit, info files, the AV2 pipeline on it
with known geometry, a few GASP iterations and the 4D occupancy benchmark."""
from pathlib import Path

import numpy as np
import pytest
import torch
from mmdet3d.registry import DATASETS, TRANSFORMS
from nuscenes.nuscenes import NuScenes
from nuscenes.utils.data_classes import LidarPointCloud
from nuscenes.utils.geometry_utils import transform_matrix
from pyquaternion import Quaternion

import gasp  # noqa: F401
from gasp.datasets import AV2DataError, SampleTiming, create_nuscenes_infos
from gasp.datasets.nuscenes_io import NUSCENES_CAMERAS, read_pcd_bin
from gasp.datasets.nuscenes_lidar_log import nuscenes_logs, nuscenes_query_frames
from gasp.evaluation import StaticWorldBaseline, evaluate_frames, get_protocol, predict_frames
from gasp.synthetic.nuscenes_writer import (LIDAR_TOP_XYZ, VERSION, generate_nuscenes_world,
                                            nuscenes_scene)
from gasp.synthetic.presets import get_preset, with_overrides

REPO = Path(__file__).parents[1]
PRESET = with_overrides(get_preset('tiny'), logs_per_split=dict(train=1, val=1))
SEED = 3
TIMING = SampleTiming(
    num_past_sweeps=3,
    past_interval_s=0.2,
    future_horizon_s=1.0,
    future_interval_s=0.2,
    max_time_error_s=0.025,
    camera_max_offset_s=0.05)


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    """One train and one val scene of 3 s: LIDAR_TOP at 20 Hz, six cameras at 12 Hz."""
    out = tmp_path_factory.mktemp('nuscenes')
    generate_nuscenes_world(out, PRESET, seed=SEED, show_progress=False)
    return out


@pytest.fixture(scope='module')
def nusc(root):
    return NuScenes(version=VERSION, dataroot=str(root), verbose=False)


@pytest.fixture(scope='module')
def infos(root, tmp_path_factory):
    return create_nuscenes_infos(
        str(root), str(tmp_path_factory.mktemp('infos')), version=VERSION, timing=TIMING)


def dataset(root, info_path, pipeline=()):
    return DATASETS.build(
        dict(
            type='NuScenesOccDataset',
            data_root=str(root),
            ann_file=str(info_path),
            pipeline=list(pipeline),
            serialize_data=False))


def devkit_pose(nusc, table, token):
    record = nusc.get(table, token)
    return transform_matrix(record['translation'], Quaternion(record['rotation']))


def lidar_record_at(nusc, timestamp_ns):
    return next(r for r in nusc.sample_data
                if r['channel'] == 'LIDAR_TOP' and r['timestamp'] * 1000 == timestamp_ns)


def test_devkit_loads_the_generated_dataset(root, nusc):
    assert sorted(s['name'] for s in nusc.scene) == ['scene-0061', 'scene-0103']
    scene = nusc.scene[0]
    sample = nusc.get('sample', scene['first_sample_token'])
    assert set(sample['data']) == {'LIDAR_TOP', *NUSCENES_CAMERAS}
    lidar = [r for r in nusc.sample_data if r['channel'] == 'LIDAR_TOP']
    stamps = np.sort([
        r['timestamp'] for r in lidar if r['sample_token'] in
        {s['token']
         for s in nusc.sample if s['scene_token'] == scene['token']}
    ])
    assert len(stamps) == 60  # 3 s at 20 Hz
    np.testing.assert_allclose(np.diff(stamps), 50_000, atol=1000)  # microseconds
    keys = [r for r in lidar if r['is_key_frame']]
    assert all(r['filename'].startswith('samples/LIDAR_TOP/') for r in keys)
    assert len(keys) == 12  # 2 Hz in both scenes
    cloud = LidarPointCloud.from_file(nusc.get_sample_data_path(sample['data']['LIDAR_TOP']))
    assert cloud.points.shape[0] == 4 and cloud.points.shape[1] > 500
    # Sensor frame of LIDAR_TOP: the ground lies 1.84 m below it.
    assert np.median(cloud.points[2]) == pytest.approx(-LIDAR_TOP_XYZ[2], abs=0.5)
    path, _, intrinsic = nusc.get_sample_data(sample['data']['CAM_FRONT'])
    assert Path(path).is_file() and intrinsic[0, 0] > 0
    rings = read_pcd_bin(Path(nusc.get_sample_data_path(sample['data']['LIDAR_TOP'])))[:, 4]
    assert rings.min() >= 0 and rings.max() <= 31


def test_converter_writes_every_valid_reference_sweep(root, infos):
    data = dataset(root, infos['val'])
    # 60 sweeps: the first 8 lack 0.4 s of past, the last 20 lack 1.0 s of future.
    assert len(data) == 60 - 8 - 20
    info = data.get_data_info(5)
    t0 = info['timestamp_ns']
    np.testing.assert_allclose(
        (np.array(info['past_timestamps_ns']) - t0) / 1e9, [-0.4, -0.2, 0], atol=0.01)
    np.testing.assert_allclose(
        (np.array(info['future_timestamps_ns']) - t0) / 1e9, [0.2, 0.4, 0.6, 0.8, 1.0], atol=0.01)
    assert set(info['future_camera_timestamps_ns']) == set(NUSCENES_CAMERAS)
    for camera, stamps in info['future_camera_timestamps_ns'].items():
        assert np.abs(np.array(stamps) - info['future_timestamps_ns']).max() <= 50e6
        files = info['log']['camera_files'][camera]
        assert all((root / files[s]).is_file() for s in stamps)
    assert info['log']['format'] == 'nuscenes' and len(info['log']['keyframe_ns']) == 6


def test_nuscenes_dataset_refuses_av2_infos(tmp_path, infos):
    import pickle
    av2_like = pickle.loads(Path(infos['val']).read_bytes())
    for log in av2_like['logs'].values():
        log['format'] = 'av2'
    path = tmp_path / 'av2_like.pkl'
    path.write_bytes(pickle.dumps(av2_like))
    with pytest.raises(AV2DataError, match='not a nuScenes info file'):
        dataset(tmp_path, path)


def test_static_walls_from_all_past_sweeps_land_in_place(root, infos):
    """Motion compensation: returns on static scenery from every past sweep, moved into the
    reference frame, fall inside the scenery's boxes (ground truth of the generator)."""
    data = dataset(root, infos['train'])
    scene = nuscenes_scene(PRESET, SEED, 'train', 0)
    for index in range(len(data)):
        info = data.get_data_info(index)
        moved = np.linalg.norm(
            np.diff(
                scene.world_from_ego(
                    scene.seconds([info['past_timestamps_ns'][0], info['timestamp_ns']]))[:, :3, 3],
                axis=0))
        if moved > 1.0:
            break
    else:
        pytest.fail('the ego never moves 1 m in 0.4 s in the synthetic train scene')
    results = TRANSFORMS.build(dict(type='LoadPastSweeps', ego_box_xy=None))(info)
    gt = root / 'synthetic_gt' / 'scene-0061' / 'lidar'
    object_id = np.concatenate(
        [np.load(gt / f'{t // 1000}.npz')['object_id'] for t in info['past_timestamps_ns']])
    assert len(object_id) == len(results['points'])
    world_from_ref = scene.world_from_ego(scene.seconds(info['timestamp_ns']))
    points_world = results['points'][:, :3] @ world_from_ref[:3, :3].T + world_from_ref[:3, 3]
    checked, seen_from = 0, set()
    for o, shape in enumerate(scene.shapes):
        hits = object_id == o + 2
        if shape.kind not in ('building', 'wall') or hits.sum() < 10:
            continue
        x, y, z, yaw = scene.obj_states[o, 0]
        c, s = np.cos(yaw), np.sin(yaw)
        rel = points_world[hits] - [x, y, z]
        local = np.stack([c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1], rel[:, 2]],
                         1)
        inside = (np.abs(local[:, None] - shape.centers[None])
                  <= shape.half_sizes[None] + 0.05).all(2).any(1)
        assert inside.all(), f'{shape.kind} {o}: {(~inside).sum()} returns off the box'
        checked += 1
        seen_from.update(np.unique(results['points'][hits, 4]).round(2).tolist())
    assert checked >= 2
    assert len(seen_from) == TIMING.num_past_sweeps


def test_future_rays_start_at_lidar_top_and_end_at_the_devkit_points(root, nusc, infos):
    info = dataset(root, infos['val']).get_data_info(4)
    far_away = (1e3, 1e3, 1e3 + 1, 1e3 + 1)  # keep every return
    results = TRANSFORMS.build(dict(type='LoadFutureRays', ego_box_xy=far_away, min_depth=0.0))(
        info)
    rays = results['rays']
    ref = lidar_record_at(nusc, info['timestamp_ns'])
    ref_from_global = np.linalg.inv(devkit_pose(nusc, 'ego_pose', ref['ego_pose_token']))
    k = 3
    record = lidar_record_at(nusc, info['future_timestamps_ns'][k])
    ref_from_lidar = (
        ref_from_global @ devkit_pose(nusc, 'ego_pose', record['ego_pose_token']) @ devkit_pose(
            nusc, 'calibrated_sensor', record['calibrated_sensor_token']))
    mine = rays['sweep_index'] == k
    np.testing.assert_allclose(
        rays['origins'][mine], ref_from_lidar[None, :3, 3].repeat(mine.sum(), 0), atol=1e-4)
    cloud = LidarPointCloud.from_file(str(root / record['filename']))
    cloud.transform(ref_from_lidar)
    ends = rays['origins'][mine] + rays['directions'][mine] * rays['depths'][mine, None]
    assert len(ends) == cloud.points.shape[1]
    np.testing.assert_allclose(ends, cloud.points[:3].T, atol=2e-3)
    np.testing.assert_allclose(rays['times_s'][mine],
                               (record['timestamp'] * 1000 - info['timestamp_ns']) / 1e9)


def test_gasp_trains_a_few_iterations(root, infos, tmp_path):
    from mmengine.config import Config
    from mmengine.hooks import Hook
    from mmengine.runner import Runner
    cfg = Config.fromfile(REPO / 'configs/gasp_nus.py')
    rng = [-16.0, -16.0, -4.5, 16.0, 16.0, 4.5]
    cfg.merge_from_dict(
        dict(
            work_dir=str(tmp_path),
            train_dataloader=dict(
                batch_size=2,
                num_workers=0,
                persistent_workers=False,
                dataset=dict(data_root=str(root), ann_file=str(infos['train']), max_samples=4)),
            model=dict(
                data_preprocessor=dict(
                    point_cloud_range=rng,
                    voxel_size=[0.5, 0.5, 1.0],
                    num_past_sweeps=3,
                    occupancy_sampler=dict(num_queries=512),
                    ego_sampler=dict(num_queries=128, region_xy=rng[:2] + rng[3:5])),
                backbone=dict(
                    in_channels=3 * 9,
                    stem_channels=(8, 16),
                    stage_channels=(16, 16, 16),
                    stage_blocks=(1, 1, 1),
                    out_channels=16),
                decoder=dict(
                    in_channels=16,
                    point_cloud_range=rng,
                    time_range=[0.0, 1.0],
                    hidden_channels=16,
                    num_res_blocks=1),
                decoder_chunk=0),
            train_cfg=dict(max_iters=3, val_interval=100),
            default_hooks=dict(
                logger=dict(interval=1),
                checkpoint=dict(type='CheckpointHook', interval=100, by_epoch=False))))
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.vis_backends = [dict(type='LocalVisBackend')]
    cfg.visualizer = dict(type='Det3DLocalVisualizer', vis_backends=cfg.vis_backends)
    torch.manual_seed(0)
    runner = Runner.from_cfg(cfg)
    losses = []

    class Record(Hook):

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            losses.append({k: float(v) for k, v in outputs.items()})

    runner.register_hook(Record())
    before = [p.detach().clone() for p in runner.model.parameters()]
    runner.train()
    assert len(losses) == 3
    assert {'loss_occupancy', 'loss_ego'} <= set(losses[-1])
    assert all(np.isfinite(v) for step in losses for v in step.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, runner.model.parameters()))


def test_occupancy_benchmark_runs_on_the_val_split(root, nusc, infos):
    logs = nuscenes_logs(str(infos['val']), root)
    protocol = get_protocol(1, 'nuscenes')
    frames = nuscenes_query_frames(logs, protocol)
    # 6 key frames: t = 0 needs 1 past and 2 future key frames.
    assert len(frames) == 3
    frame = frames[0]
    ref = lidar_record_at(nusc, frame.timestamp_ns)
    ref_from_global = np.linalg.inv(
        devkit_pose(nusc, 'ego_pose', ref['ego_pose_token']) @ devkit_pose(
            nusc, 'calibrated_sensor', ref['calibrated_sensor_token']))
    for k, stamp in enumerate(frame.future_timestamps_ns):
        record = lidar_record_at(nusc, stamp)
        assert record['is_key_frame']
        ref_from_lidar = (
            ref_from_global @ devkit_pose(nusc, 'ego_pose', record['ego_pose_token']) @ devkit_pose(
                nusc, 'calibrated_sensor', record['calibrated_sensor_token']))
        # Query rays start at LIDAR_TOP of the future key frame, in the LIDAR_TOP frame at t = 0.
        np.testing.assert_allclose(
            frame.origins[k],
            ref_from_lidar[None, :3, 3].repeat(len(frame.origins[k]), 0),
            atol=1e-4)
        # Every return outside 4D-Occ's ego box is a query ray (ray_stride 1).
        cloud = LidarPointCloud.from_file(str(root / record['filename'])).points
        x_min, y_min, x_max, y_max = protocol.ego_box_lidar_xy
        ego = ((cloud[0] >= x_min) & (cloud[0] <= x_max) & (cloud[1] >= y_min) &
               (cloud[1] <= y_max))
        assert len(frame.depths[k]) == (~ego).sum()
    exact = {frame.log_id: {f.frame_id: f.depths for f in frames}}
    assert evaluate_frames(frames, exact)['L1'] == pytest.approx(0.0, abs=1e-6)
    baseline = StaticWorldBaseline(ego_box_lidar_xy=protocol.ego_box_lidar_xy)
    metrics = evaluate_frames(frames, predict_frames(baseline, frames, logs=logs))
    assert 0.0 < metrics['L1'] < 40.0 and np.isfinite(metrics['CD'])
    assert get_protocol(3, 'nuscenes').num_future == 6


def test_missing_and_truncated_sweeps_are_named(root, nusc, tmp_path):
    record = next(r for r in nusc.sample_data
                  if r['channel'] == 'LIDAR_TOP' and not r['is_key_frame'])
    path = root / record['filename']
    moved = tmp_path / 'moved.pcd.bin'
    path.rename(moved)
    try:
        with pytest.raises(AV2DataError, match='sweeps/ folder') as err:
            create_nuscenes_infos(str(root), str(tmp_path / 'infos'), VERSION, timing=TIMING)
        assert record['filename'] in str(err.value)
        assert not (tmp_path / 'infos' / 'nus_occ_infos_train.pkl').exists()
    finally:
        moved.rename(path)
    broken = tmp_path / 'broken.pcd.bin'
    broken.write_bytes(np.zeros(7, np.float32).tobytes())
    with pytest.raises(AV2DataError, match='truncated file') as err:
        read_pcd_bin(broken, 'scene-0061', 42)
    assert 'scene-0061' in str(err.value) and str(broken) in str(err.value)
