"""Info files, dataset and transforms on the synthetic AV2 world, with known geometry."""
import shutil
from pathlib import Path

import numpy as np
import pytest
from av2.structures.sweep import Sweep
from av2.utils.io import read_city_SE3_ego, read_feather
from mmdet3d.registry import DATASETS, TRANSFORMS

import gasp  # noqa: F401
from gasp.datasets import AV2DataError, SampleTiming, create_av2_infos
from gasp.geometry import pose_matrix

TIMING = SampleTiming(
    num_past_sweeps=3, past_interval_s=0.2, future_horizon_s=1.0, future_interval_s=0.2)


@pytest.fixture(scope='module')
def infos(synthetic_av2_root, tmp_path_factory):
    out = tmp_path_factory.mktemp('infos')
    return create_av2_infos(str(synthetic_av2_root), str(out), timing=TIMING)


def build_dataset(root, info_path, pipeline):
    return DATASETS.build(
        dict(
            type='AV2OccDataset',
            data_root=str(root),
            ann_file=str(info_path),
            pipeline=pipeline,
            serialize_data=False))


def load(root, info_path, index, *transforms):
    dataset = build_dataset(root, info_path, [])
    results = dataset.get_data_info(index)
    for t in transforms:
        results = TRANSFORMS.build(t)(results)
    return results


def log_dir(root, results):
    return Path(root) / results['log']['log_dir']


def city_from_ego_av2(log, timestamp_ns):
    """Independent lookup through av2's own reader (SE3 objects)."""
    return read_city_SE3_ego(log)[timestamp_ns].transform_matrix


def test_infos_hold_every_valid_reference_sweep(synthetic_av2_root, infos):
    train = infos['train']
    dataset = build_dataset(synthetic_av2_root, train, [])
    lidar_dirs = sorted((synthetic_av2_root / 'sensor' / 'train').glob('*/sensors/lidar'))
    # Each log: the first 4 sweeps (10 Hz) lack 0.4 s of past, the last 10 lack 1.0 s of future.
    expected = sum(len(list(d.glob("*.feather"))) - 4 - 10 for d in lidar_dirs)
    assert len(dataset) == expected
    info = dataset.get_data_info(3)
    t0 = info['timestamp_ns']
    past = np.array(info['past_timestamps_ns']) - t0
    future = np.array(info['future_timestamps_ns']) - t0
    np.testing.assert_allclose(past / 1e9, [-0.4, -0.2, 0.0], atol=0.05)
    np.testing.assert_allclose(future / 1e9, [0.2, 0.4, 0.6, 0.8, 1.0], atol=0.05)
    for camera, stamps in info['future_camera_timestamps_ns'].items():
        assert np.abs(np.array(stamps) - np.array(info['future_timestamps_ns'])).max() <= 25e6
        assert all((log_dir(synthetic_av2_root, info) / 'sensors' / 'cameras' / camera /
                    f'{s}.jpg').is_file() for s in stamps)


def test_static_objects_from_all_past_sweeps_land_in_place(synthetic_av2_root, infos):
    """Motion compensation: the returns on a static annotated object, taken from every past
    sweep and moved into the reference frame, fall inside its cuboid at the reference time
    (the generator's ground truth says which object each return hit)."""
    dataset = build_dataset(synthetic_av2_root, infos['train'], [])
    # A sample where the ego moved, so a wrong transform would show.
    for index in range(len(dataset)):
        info = dataset.get_data_info(index)
        log = log_dir(synthetic_av2_root, info)
        first, ref = (city_from_ego_av2(log, info['past_timestamps_ns'][0]),
                      city_from_ego_av2(log, info['timestamp_ns']))
        if np.linalg.norm(first[:3, 3] - ref[:3, 3]) > 1.0:
            break
    else:
        pytest.fail('the ego never moves 1 m in 0.4 s in the synthetic train logs')
    results = TRANSFORMS.build(dict(type='LoadPastSweeps', ego_box_xy=None))(info)
    objects = read_feather(log / 'synthetic_gt' / 'objects.feather')
    ann = read_feather(log / 'annotations.feather')
    ann = ann[ann.timestamp_ns == info['timestamp_ns']]
    static = objects[~objects.dynamic & objects.track_uuid.isin(ann.track_uuid)]
    assert len(static), 'the synthetic log should contain static annotated objects'
    object_ids = np.concatenate([
        np.load(log / 'synthetic_gt' / 'lidar' / f'{t}.npz')['object_id']
        for t in info['past_timestamps_ns']
    ])
    assert len(object_ids) == len(results['points'])
    seen_from = set()
    for obj in static.itertuples():
        box = ann[ann.track_uuid == obj.track_uuid].iloc[0]
        ref_from_box = pose_matrix([box.qw, box.qx, box.qy, box.qz], [box.tx_m, box.ty_m, box.tz_m])
        hits = results['points'][object_ids == obj.object_id]
        local = (hits[:, :3] - ref_from_box[:3, 3]) @ ref_from_box[:3, :3]
        half = np.array([box.length_m, box.width_m, box.height_m]) / 2
        assert (np.abs(local) <= half + 0.03).all(), obj.kind
        seen_from.update(np.unique(hits[:, 4]).tolist())
    # Static objects were hit from every past sweep (t = -0.4, -0.2, 0 s).
    assert len(seen_from) == TIMING.num_past_sweeps


def test_future_rays_start_at_the_lidars_and_end_at_the_returns(synthetic_av2_root, infos):
    results = load(synthetic_av2_root, infos['train'], 2, dict(type='LoadFutureRays'))
    rays, log = results['rays'], log_dir(synthetic_av2_root, results)
    ref_from_city = np.linalg.inv(city_from_ego_av2(log, results['timestamp_ns']))
    k = 3
    stamp = results['future_timestamps_ns'][k]
    sweep = Sweep.from_feather(log / 'sensors' / 'lidar' / f'{stamp}.feather')
    ref_from_ego = ref_from_city @ city_from_ego_av2(log, stamp)
    mine = rays['sweep_index'] == k
    up = ref_from_ego @ sweep.ego_SE3_up_lidar.transform_matrix
    down = ref_from_ego @ sweep.ego_SE3_down_lidar.transform_matrix
    origins = rays['origins'][mine]
    is_up = np.linalg.norm(origins - up[:3, 3], axis=1) < 1e-4
    is_down = np.linalg.norm(origins - down[:3, 3], axis=1) < 1e-4
    assert (is_up | is_down).all() and is_up.any() and is_down.any()
    np.testing.assert_allclose(np.linalg.norm(rays['directions'], axis=1), 1.0, atol=1e-5)
    # origin + direction * depth reproduces av2's sweep points moved into the frame.
    ends = origins + rays['directions'][mine] * rays['depths'][mine, None]
    expected = sweep.xyz @ ref_from_ego[:3, :3].T + ref_from_ego[:3, 3]
    dist = np.linalg.norm(ends[:, None, :2] - expected[None, :, :2], axis=2).min(1)
    assert dist.max() < 1e-3
    assert np.allclose(rays['times_s'][mine], (stamp - results['timestamp_ns']) / 1e9)
    assert mine.sum() <= len(sweep)


def test_future_ego_path_matches_the_pose_table(synthetic_av2_root, infos):
    results = load(synthetic_av2_root, infos['val'], 4, dict(type='LoadFutureEgoPath'))
    log = log_dir(synthetic_av2_root, results)
    path = results['ego_path']
    ref_from_city = np.linalg.inv(city_from_ego_av2(log, results['timestamp_ns']))
    for i, stamp in enumerate(results['ego_path_timestamps_ns']):
        ref_from_ego = ref_from_city @ city_from_ego_av2(log, stamp)
        np.testing.assert_allclose(path['xy'][i], ref_from_ego[:2, 3], atol=1e-4)
        np.testing.assert_allclose(
            path['yaw'][i], np.arctan2(ref_from_ego[1, 0], ref_from_ego[0, 0]), atol=1e-5)
    assert path['times_s'][0] == 0 and np.all(np.diff(path['times_s']) > 0)
    assert path['times_s'][-1] == pytest.approx(1.0, abs=0.05)


def test_rotation_keeps_rays_on_their_points_and_path_in_footprint(synthetic_av2_root, infos):
    pipeline = [
        dict(type='LoadPastSweeps'),
        dict(type='LoadFutureRays'),
        dict(type='LoadFutureEgoPath')
    ]
    plain = load(synthetic_av2_root, infos['train'], 7, *pipeline)
    np.random.seed(3)
    rotated = load(synthetic_av2_root, infos['train'], 7, *pipeline, dict(type='RandomYawRotation'))
    yaw = rotated['yaw_aug']
    assert yaw != 0
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    ends_plain = plain['rays']['origins'] + plain['rays']['directions'] * \
        plain['rays']['depths'][:, None]
    ends_rot = rotated['rays']['origins'] + rotated['rays']['directions'] * \
        rotated['rays']['depths'][:, None]
    np.testing.assert_allclose(ends_rot, ends_plain @ rot.T, atol=1e-3)
    np.testing.assert_allclose(rotated['points'][:, :3], plain['points'][:, :3] @ rot.T, atol=1e-3)
    # Footprint corners placed with the rotated poses = the rotated corners of the plain ones.
    x0, y0, x1, y1 = plain['ego_footprint']
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])

    def placed(path):
        c_, s_ = np.cos(path['yaw']), np.sin(path['yaw'])
        r = np.stack([np.stack([c_, -s_], -1), np.stack([s_, c_], -1)], -2)  # (E, 2, 2)
        return path['xy'][:, None] + np.einsum('eij,cj->eci', r, corners)

    np.testing.assert_allclose(
        placed(rotated['ego_path']), placed(plain['ego_path']) @ rot[:2, :2].T, atol=1e-4)


def test_packed_sample_feeds_the_model_preprocessor(synthetic_av2_root, infos):
    from mmengine.dataset import pseudo_collate
    dataset = build_dataset(synthetic_av2_root, infos['train'], [
        dict(type='LoadPastSweeps'),
        dict(type='LoadFutureRays', max_rays_per_sweep=500),
        dict(type='LoadFutureEgoPath'),
        dict(type='PackGASPInputs')
    ])
    sample = dataset[0]
    assert sample['inputs']['points'].shape[1] == 5
    assert sample['data_samples'].rays.depths.shape[0] <= 5 * 500
    assert sample['data_samples'].log_id == dataset.get_data_info(0)['log_id']
    batch = pseudo_collate([dataset[0], dataset[1]])
    assert len(batch['inputs']['points']) == 2


# --- bad input: each names the log, the file and the timestamp -----------------------------


@pytest.fixture()
def broken_root(synthetic_av2_root, tmp_path):
    """A copy of one train log to break."""
    src = sorted((synthetic_av2_root / 'sensor' / 'train').iterdir())[0]
    dst = tmp_path / 'sensor' / 'train' / src.name
    shutil.copytree(src, dst)
    return tmp_path, dst


def _sweep_paths(log):
    return sorted((log / 'sensors' / 'lidar').glob('*.feather'))


def test_missing_pose_row_is_named_and_no_info_file_is_left(broken_root, tmp_path):
    root, log = broken_root
    poses = read_feather(log / 'city_SE3_egovehicle.feather')
    victim = int(_sweep_paths(log)[10].stem)
    poses[poses.timestamp_ns != victim].reset_index(drop=True).to_feather(
        log / 'city_SE3_egovehicle.feather')
    out = tmp_path / 'infos'
    with pytest.raises(AV2DataError, match=f'{log.name}.*timestamp_ns {victim}'):
        create_av2_infos(str(root), str(out), splits=['train'], timing=TIMING)
    assert not out.exists() or not any(out.iterdir())


def test_missing_camera_image_is_named(broken_root, tmp_path):
    root, log = broken_root
    victim = int(_sweep_paths(log)[12].stem)
    images = sorted((log / 'sensors' / 'cameras' / 'ring_rear_left').glob('*.jpg'))
    nearest = min(images, key=lambda p: abs(int(p.stem) - victim))
    nearest.unlink()
    # Also remove the other frame within 25 ms, if any, so no image matches.
    for p in images:
        if p.exists() and abs(int(p.stem) - victim) <= 25e6:
            p.unlink()
    with pytest.raises(AV2DataError, match=f'ring_rear_left.*{log.name}.*timestamp_ns {victim}'):
        create_av2_infos(str(root), str(tmp_path / 'infos'), splits=['train'], timing=TIMING)


@pytest.mark.parametrize('damage', ['truncated', 'empty', 'nan'])
def test_bad_sweep_is_named_by_the_loader(broken_root, tmp_path, damage):
    root, log = broken_root
    infos = create_av2_infos(str(root), str(tmp_path / 'infos'), splits=['train'], timing=TIMING)
    dataset = build_dataset(root, infos['train'], [dict(type='LoadPastSweeps')])
    info = dataset.get_data_info(0)
    victim = log / 'sensors' / 'lidar' / f'{info["past_timestamps_ns"][1]}.feather'
    if damage == 'truncated':
        victim.write_bytes(victim.read_bytes()[:200])
        expected = 'cannot read feather file'
    else:
        table = read_feather(victim)
        if damage == 'empty':
            table = table.iloc[:0]
            expected = 'no points'
        else:
            table.loc[3, 'x'] = np.nan
            expected = '1 points with NaN'
        table.reset_index(drop=True).to_feather(victim)
    with pytest.raises(AV2DataError) as err:
        dataset[0]
    message = str(err.value)
    assert expected in message and log.name in message and str(victim) in message
    assert 'What to do' in message


@pytest.mark.parametrize('inside_fraction', [0.1, 0.9])
def test_future_ray_subset_is_uniform_over_valid_returns(inside_fraction):
    """The fast draw (few invalid returns) and the fallback (many) both keep exactly
    ``max_rays_per_sweep`` valid rows, each valid row about equally often."""
    from gasp.datasets.transforms import LoadFutureRays
    rng = np.random.default_rng(0)
    count = 2000
    inside = rng.random(count) < inside_fraction
    xyz = np.where(inside[:, None], [1.0, 0.0, 0.5], [20.0, 5.0, 0.5]).astype(np.float32)
    xyz[:, 2] += rng.normal(size=count).astype(np.float32)
    sweep = dict(xyz_ego=xyz, laser_number=rng.integers(0, 64, count).astype(np.uint8))
    log = dict(ego_from_lidar={name: np.eye(4) for name in ('up_lidar', 'down_lidar')})
    transform = LoadFutureRays(max_rays_per_sweep=100)
    lidar_pos_ego = np.array([[0.5, 0.0, 2.0], [1.5, 0.0, 0.5]], np.float32)
    hits = np.zeros(count)
    for _ in range(400):
        rows, lidar_id, offsets_ego, depth_sq = transform._select_rays(
            sweep, log, lidar_pos_ego, rng)
        assert len(rows) == 100 and np.all(np.diff(rows) > 0)
        # Each selected ray's lidar, offset from it and squared length, row by row.
        np.testing.assert_array_equal(lidar_id, sweep['laser_number'][rows] // 32)
        np.testing.assert_array_equal(offsets_ego, xyz[rows] - lidar_pos_ego[lidar_id])
        np.testing.assert_allclose(depth_sq, (offsets_ego.astype(np.float64)**2).sum(1), rtol=1e-6)
        assert not inside[rows].any()
        hits[rows] += 1
    expected = 400 * 100 / (~inside).sum()
    assert abs(hits[~inside].mean() - expected) < 1e-9
    assert hits[~inside].std() < 0.35 * expected  # binomial spread, not a biased subset
