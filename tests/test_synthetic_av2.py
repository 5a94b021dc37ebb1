"""The synthetic AV2 world: av2's own loaders read it, and its geometry is exact.

Checks use the session fixture ``synthetic_av2_root`` (preset ``tiny``, seed 0) and the
generator's ground-truth sidecar (``<log>/synthetic_gt/``), which is not part of the AV2 format.
"""
import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow.feather as pa_feather
import pytest

from gasp.synthetic import PRESETS, build_scene, get_preset, log_tasks
from gasp.synthetic.cameras import camera_rig
from gasp.synthetic.lidar import av2_lidar_rig
from gasp.synthetic.scene import CITIES, RING_CAMERA_NAMES

TINY = PRESETS['tiny']


def _logs(root):
    """(split, log_dir, scene.json) for every generated log."""
    out = []
    for split in ('train', 'val', 'test'):
        for log_dir in sorted((Path(root) / 'sensor' / split).iterdir()):
            meta = json.loads((log_dir / 'synthetic_gt' / 'scene.json').read_text())
            out.append((split, log_dir, meta))
    return out


def _scene(meta):
    return build_scene(get_preset(meta['preset']), meta['seed'], meta['split'], meta['log_index'])


def test_presets_are_consistent():
    full, demo = PRESETS['full'], PRESETS['demo']
    assert full.num_sweeps == 150 and full.num_camera_frames == 300
    assert full.camera_hw(portrait=True) == (2048, 1550)
    assert full.camera_hw(portrait=False) == (1550, 2048)
    # 2 units x 32 beams x 1800 firings: AV2's ~100k returns per sweep before missing rays.
    assert 64 * full.lidar_azimuth_steps == 115200
    for preset in (TINY, demo, full):
        rig = camera_rig(preset.camera_scale)
        assert len(rig) == 9
        front = rig['ring_front_center']
        assert (front.height, front.width) == preset.camera_hw(portrait=True)
        # Scaling keeps the field of view: fx / width is the same at every scale.
        assert front.fx / front.width == pytest.approx(1773.0 / 1550, rel=2e-2)
        assert front.cx == pytest.approx((front.width - 1) / 2)
        side = rig['ring_side_left']
        assert (side.height, side.width) == preset.camera_hw(portrait=False)
        assert set(preset.logs_per_split) == {'train', 'val', 'test'}
    assert len(log_tasks(TINY)) == sum(TINY.logs_per_split.values())


def test_full_density_sweep_has_av2_point_count():
    """One sweep at full-preset lidar density (no files written): ~100k returns, some missing."""
    from gasp.synthetic.lidar import simulate_sweep
    full = PRESETS['full']
    scene = build_scene(TINY, 0, 'train', 0)
    rig = av2_lidar_rig(full.lidar_azimuth_steps, full.max_range_m)
    sweep = simulate_sweep(scene, scene.tensors(), rig, 3, steps=8)
    n_rays = 64 * full.lidar_azimuth_steps
    assert 60_000 < len(sweep.frame) < n_rays
    assert len(sweep.frame) + len(sweep.missing['laser_number']) == n_rays


def test_generation_is_deterministic():
    a = build_scene(TINY, 3, 'val', 0)
    b = build_scene(TINY, 3, 'val', 0)
    c = build_scene(TINY, 4, 'val', 0)
    assert a.log_id == b.log_id and a.log_id != c.log_id
    np.testing.assert_array_equal(a.obj_states, b.obj_states)
    np.testing.assert_array_equal(a.ego.states, b.ego.states)


def test_av2_sensor_dataloader_reads_every_log(synthetic_av2_root):
    from av2.datasets.sensor.av2_sensor_dataloader import AV2SensorDataLoader
    from av2.map.map_api import ArgoverseStaticMap
    from av2.structures.sweep import Sweep
    from av2.utils.io import read_img
    categories = {
        'ANIMAL', 'ARTICULATED_BUS', 'BICYCLE', 'BICYCLIST', 'BOLLARD', 'BOX_TRUCK', 'BUS',
        'CONSTRUCTION_BARREL', 'CONSTRUCTION_CONE', 'DOG', 'LARGE_VEHICLE', 'MESSAGE_BOARD_TRAILER',
        'MOBILE_PEDESTRIAN_CROSSING_SIGN', 'MOTORCYCLE', 'MOTORCYCLIST', 'OFFICIAL_SIGNALER',
        'PEDESTRIAN', 'RAILED_VEHICLE', 'REGULAR_VEHICLE', 'SCHOOL_BUS', 'SIGN', 'STOP_SIGN',
        'STROLLER', 'TRAFFIC_LIGHT_TRAILER', 'TRUCK', 'TRUCK_CAB', 'VEHICULAR_TRAILER',
        'WHEELCHAIR', 'WHEELED_DEVICE', 'WHEELED_RIDER'
    }
    logs = _logs(synthetic_av2_root)
    assert [s for s, _, _ in logs].count('train') == TINY.logs_per_split['train']
    assert len(logs) == sum(TINY.logs_per_split.values())
    for split, log_dir, meta in logs:
        split_dir = log_dir.parent
        loader = AV2SensorDataLoader(split_dir, split_dir)
        log_id = log_dir.name
        assert log_id in loader.get_log_ids() and log_id == meta['log_id']
        city = loader.get_city_name(log_id)
        assert city == meta['city_name'] and city in CITIES
        stamps = loader.get_ordered_log_lidar_timestamps(log_id)
        assert len(stamps) == TINY.num_sweeps and stamps == sorted(stamps)
        assert np.allclose(np.diff(stamps), 1e8, atol=4e5)
        for ts in stamps[::7]:
            sweep = Sweep.from_feather(loader.get_lidar_fpath(log_id, ts))
            assert 2000 < len(sweep) < 64 * TINY.lidar_azimuth_steps
            assert set(np.unique(sweep.laser_number)) <= set(range(64))
            assert sweep.offset_ns.min() >= 0 and sweep.offset_ns.max() < 1e8
            pose = loader.get_city_SE3_ego(log_id, ts)
            for cam in RING_CAMERA_NAMES:
                img_path = loader.get_closest_img_fpath(log_id, cam, ts)
                assert img_path is not None and img_path.exists()
                assert abs(int(img_path.stem) - ts) <= 25_000_000
                cam_model = loader.get_log_pinhole_camera(log_id, cam)
                img = read_img(img_path)
                assert img.shape == (cam_model.height_px, cam_model.width_px, 3)
                loader.get_city_SE3_ego(log_id, int(img_path.stem))  # a pose at every image
            if split != 'test':
                labels = loader.get_labels_at_lidar_timestamp(log_id, ts)
                assert len(labels) > 5
                assert {c.category for c in labels} <= categories
        avm = ArgoverseStaticMap.from_map_dir(log_dir / 'map', build_raster=True)
        assert len(avm.vector_lane_segments) > 20
        assert len(avm.vector_drivable_areas) >= 5
        assert len(avm.vector_pedestrian_crossings) == 4
        assert any(ls.is_intersection for ls in avm.vector_lane_segments.values())
        # The ego's rear axle sits on the ground: the av2 ground-height query agrees.
        z_map = avm.raster_ground_height_layer.get_ground_height_at_xy(pose.translation[None])
        assert z_map[0] == pytest.approx(pose.translation[2], abs=0.1)
        assert (split == 'test') != (log_dir / 'annotations.feather').exists()


def test_sensor_dataloader_without_cache(synthetic_av2_root):
    from av2.datasets.sensor.sensor_dataloader import SensorDataloader
    loader = SensorDataloader(
        Path(synthetic_av2_root) / 'sensor', with_annotations=True, with_cache=False)
    assert len(loader) == TINY.num_sweeps * sum(TINY.logs_per_split.values())
    for idx in (0, len(loader) - 1):
        datum = loader[idx]
        assert len(datum.sweep) > 2000
        assert set(datum.synchronized_imagery) == set(RING_CAMERA_NAMES)
        for cam, image in datum.synchronized_imagery.items():
            assert abs(image.timestamp_ns - datum.timestamp_ns) <= 25_000_000
        assert datum.avm is not None and len(datum.avm.vector_lane_segments) > 20


def test_column_dtypes_are_exact(synthetic_av2_root):
    _, log_dir, _ = _logs(synthetic_av2_root)[0]
    lidar = pa_feather.read_table(next((log_dir / 'sensors' / 'lidar').iterdir())).schema
    assert {
        f.name: str(f.type)
        for f in lidar
    } == {
        'x': 'halffloat',
        'y': 'halffloat',
        'z': 'halffloat',
        'intensity': 'uint8',
        'laser_number': 'uint8',
        'offset_ns': 'int32'
    }
    poses = pa_feather.read_table(log_dir / 'city_SE3_egovehicle.feather').schema
    pose_cols = ('qw', 'qx', 'qy', 'qz', 'tx_m', 'ty_m', 'tz_m')
    assert {
        f.name: str(f.type)
        for f in poses
    } == {
        'timestamp_ns': 'int64',
        **{
            c: 'double'
            for c in pose_cols
        }
    }
    extr = pa_feather.read_table(log_dir / 'calibration' / 'egovehicle_SE3_sensor.feather')
    assert str(extr.schema.field('sensor_name').type) in ('string', 'large_string')
    names = set(extr.column('sensor_name').to_pylist())
    assert names == set(RING_CAMERA_NAMES) | {
        'stereo_front_left', 'stereo_front_right', 'up_lidar', 'down_lidar'
    }
    intr = pa_feather.read_table(log_dir / 'calibration' / 'intrinsics.feather').schema
    types = {f.name: str(f.type) for f in intr}
    assert types['height_px'] == types['width_px'] == 'uint16'
    intr_cols = ('fx_px', 'fy_px', 'cx_px', 'cy_px', 'k1', 'k2', 'k3')
    assert all(types[c] == 'double' for c in intr_cols)
    ann = pa_feather.read_table(log_dir / 'annotations.feather').schema
    types = {f.name: str(f.type) for f in ann}
    assert types['timestamp_ns'] == types['num_interior_pts'] == 'int64'
    assert types['track_uuid'] in ('string', 'large_string')
    # Every lidar and camera timestamp has a pose row.
    pose_ts = set(pd.read_feather(log_dir / 'city_SE3_egovehicle.feather')['timestamp_ns'])
    files = list((log_dir / 'sensors').rglob('*.feather')) + list(
        (log_dir / 'sensors').rglob('*.jpg'))
    assert {int(f.stem) for f in files} <= pose_ts


def _box_distance(local, half):
    """Euclidean distance from points (N, 3) to the surface of a centred box."""
    q = np.abs(local) - half
    outside = np.linalg.norm(np.maximum(q, 0.0), axis=1)
    inside = np.minimum(q.max(axis=1), 0.0)
    return np.abs(outside + inside)


def test_lidar_returns_lie_on_the_surface_they_hit(synthetic_av2_root):
    checked = {'ground': 0, 'object': 0, 'ego': 0}
    for split, log_dir, meta in _logs(synthetic_av2_root)[:2]:
        scene = _scene(meta)
        for path in sorted((log_dir / 'sensors' / 'lidar').iterdir())[::6]:
            ts = int(path.stem)
            frame = pd.read_feather(path)
            ids = np.load(log_dir / 'synthetic_gt' / 'lidar' / f'{ts}.npz')['object_id']
            p16 = frame[['x', 'y', 'z']].to_numpy()
            p_ego = p16.astype(np.float64)
            # Half a float16 step per coordinate, plus float32 ray-casting slack.
            tol = np.linalg.norm(np.spacing(np.abs(p16)).astype(np.float64) / 2, axis=1) + 2e-3
            world_from_ego = scene.world_from_ego(scene.seconds(ts))
            p_w = p_ego @ world_from_ego[:3, :3].T + world_from_ego[:3, 3]
            g = ids == 0
            dz = np.abs(p_w[g, 2] - scene.ground.height_at(p_w[g, :2]))
            assert np.all(dz <= 2.5 * tol[g]), dz.max()
            checked['ground'] += int(g.sum())
            t_pt = scene.seconds(ts + frame['offset_ns'].to_numpy().astype(np.int64))
            for obj in np.unique(ids[ids >= 2]):
                sel = ids == obj
                shape = scene.shapes[obj - 2]
                st = scene.object_states_at(t_pt[sel])[obj - 2]  # (n, 4)
                c, s = np.cos(st[:, 3]), np.sin(st[:, 3])
                rel = p_w[sel] - st[:, :3]
                local = np.stack(
                    [c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1], rel[:, 2]], 1)
                dist = np.min([
                    _box_distance(local - ctr, half)
                    for ctr, half in zip(shape.centers, shape.half_sizes)
                ],
                              axis=0)
                assert np.all(dist <= tol[sel]), (shape.kind, dist.max())
                checked['object'] += int(sel.sum())
            checked['ego'] += int((ids == 1).sum())
    assert min(checked.values()) > 0, checked


def test_missing_rays_are_recorded(synthetic_av2_root):
    _, log_dir, meta = _logs(synthetic_av2_root)[1]
    rig = meta['lidar']
    n_rays = 64 * rig['azimuth_steps']
    for path in sorted((log_dir / 'sensors' / 'lidar').iterdir())[::10]:
        frame = pd.read_feather(path)
        gt = np.load(log_dir / 'synthetic_gt' / 'lidar' / f'{path.stem}.npz')
        assert len(gt['object_id']) == len(frame)
        assert len(frame) + len(gt['missing_laser_number']) == n_rays
        # Every (beam, firing) appears exactly once among returns and missing rays.
        col = np.asarray(frame['offset_ns']) // (10**8 // rig['azimuth_steps'])
        miss_col = gt['missing_offset_ns'] // (10**8 // rig['azimuth_steps'])
        keys = np.concatenate([
            np.asarray(frame['laser_number']) * 10**6 + col,
            gt['missing_laser_number'].astype(np.int64) * 10**6 + miss_col
        ])
        assert len(np.unique(keys)) == n_rays
        # Missing rays point to the sky or far away: none is steep enough (below -7 deg) to meet
        # the ground within range (it is never more than ~4 m below the sensors).
        d = gt['missing_direction_ego']
        assert np.allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-4)
        assert np.all(d[:, 2] > -0.12)
        assert (d[:, 2] > 0).mean() > 0.5


def test_lidar_points_project_onto_the_same_object_in_cameras(synthetic_av2_root):
    from av2.datasets.sensor.av2_sensor_dataloader import AV2SensorDataLoader
    from av2.structures.sweep import Sweep
    agree = total = 0
    for split, log_dir, _ in _logs(synthetic_av2_root)[:2]:
        loader = AV2SensorDataLoader(log_dir.parent, log_dir.parent)
        log_id = log_dir.name
        for ts in loader.get_ordered_log_lidar_timestamps(log_id)[2::9]:
            sweep = Sweep.from_feather(loader.get_lidar_fpath(log_id, ts))
            ids = np.load(log_dir / 'synthetic_gt' / 'lidar' / f'{ts}.npz')['object_id']
            for cam in RING_CAMERA_NAMES:
                img_path = loader.get_closest_img_fpath(log_id, cam, ts)
                uv, pts_cam, valid = loader.project_ego_to_img_motion_compensated(
                    sweep.xyz, cam, int(img_path.stem), ts, log_id)
                valid &= ids != 1  # the cameras do not see the ego body
                valid &= pts_cam[:, 2] > 2.0  # skip parallax-dominated close range
                id_img = cv2.imread(
                    str(log_dir / 'synthetic_gt' / 'camera_ids' / cam / f'{img_path.stem}.png'),
                    cv2.IMREAD_UNCHANGED)
                u, v = np.round(uv[valid]).astype(int).T
                seen = id_img[v, u].astype(np.int64) - 1
                agree += int((seen == ids[valid]).sum())
                total += int(valid.sum())
    assert total > 500
    assert agree / total > 0.9, agree / total


def test_num_interior_pts_matches_av2_count(synthetic_av2_root):
    from av2.structures.cuboid import CuboidList
    from av2.structures.sweep import Sweep
    nonzero = 0
    for split, log_dir, _ in _logs(synthetic_av2_root):
        if split == 'test':
            continue
        table = pd.read_feather(log_dir / 'annotations.feather')
        cuboids = CuboidList.from_feather(log_dir / 'annotations.feather')
        stamps = sorted(table['timestamp_ns'].unique())
        for ts in stamps[::5]:
            sweep = Sweep.from_feather(log_dir / 'sensors' / 'lidar' / f'{ts}.feather')
            rows = table[table['timestamp_ns'] == ts]
            for (_, row), cuboid in zip(rows.iterrows(),
                                        [c for c in cuboids if c.timestamp_ns == ts]):
                _, mask = cuboid.compute_interior_points(sweep.xyz)
                assert int(mask.sum()) == row['num_interior_pts']
                nonzero += int(row['num_interior_pts'] > 0)
    assert nonzero > 20


def test_ego_poses_follow_the_lanes(synthetic_av2_root):
    from av2.datasets.sensor.av2_sensor_dataloader import AV2SensorDataLoader
    from av2.map.map_api import ArgoverseStaticMap
    for _, log_dir, meta in _logs(synthetic_av2_root):
        loader = AV2SensorDataLoader(log_dir.parent, log_dir.parent)
        avm = ArgoverseStaticMap.from_map_dir(log_dir / 'map')
        stamps = loader.get_ordered_log_lidar_timestamps(log_dir.name)
        poses = [loader.get_city_SE3_ego(log_dir.name, ts) for ts in stamps]
        xy = np.array([p.translation[:2] for p in poses])
        heading = np.array([np.arctan2(p.rotation[1, 0], p.rotation[0, 0]) for p in poses])
        speed = np.linalg.norm(np.diff(xy, axis=0), axis=1) / 0.1
        assert speed.max() < 16.0 and np.all(np.abs(np.diff(speed)) < 1.0)
        lines = [avm.get_lane_segment_centerline(i)[:, :2] for i in avm.vector_lane_segments]
        for p, yaw in zip(xy[::3], heading[::3]):
            # Some lane (intersection lanes overlap) passes under the rear axle, pointing the
            # way the ego drives.
            aligned = False
            for line in lines:
                seg = np.diff(line, axis=0)
                rel = p - line[:-1]
                w = np.clip((rel * seg).sum(1) / (seg * seg).sum(1), 0, 1)
                d = np.linalg.norm(rel - w[:, None] * seg, axis=1)
                k = int(np.argmin(d))
                err = (yaw - np.arctan2(seg[k, 1], seg[k, 0]) + np.pi) % (2 * np.pi) - np.pi
                aligned |= bool(d[k] < 0.3 and abs(err) < np.deg2rad(10))
            assert aligned, (log_dir.name, p, yaw)
