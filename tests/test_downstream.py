"""Downstream fine-tuning: label rasterization, metrics, label fractions, training, load_from."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from av2.structures.cuboid import CuboidList
from av2.utils.io import read_city_SE3_ego
from mmdet3d.registry import METRICS, MODELS, TRANSFORMS
from mmengine.config import Config
from mmengine.runner import Runner
from mmengine.structures import BaseDataElement

import gasp  # noqa: F401
from gasp.datasets import AV2DataError, SampleTiming, create_av2_infos
from gasp.downstream import AV2DownstreamDataset, BEVGrid, label_fraction_indices
from gasp.downstream.bev_grid import points_in_cuboids, rasterize_polyline
from gasp.fileio import atomic_open, dump_json_atomic
from gasp.geometry import pose_matrix, rotation_z

REPO = Path(__file__).resolve().parents[1]
TASKS = ('bev_semantic_forecasting', 'semantic_occupancy_4d', 'map_segmentation', 'ego_trajectory')


def cuboid_pose(x, y, z, yaw):
    pose = rotation_z(yaw)
    pose[:3, 3] = [x, y, z]
    return pose


def cells(*rows_cols):
    """Set of (row, col) pairs from row and column ranges."""
    rows, cols = rows_cols
    return {(i, j) for i in rows for j in cols}


def set_cells(mask):
    return {tuple(ij) for ij in np.argwhere(mask)}


# ---------------------------------------------------------------- label rasterization


def test_cuboids_rasterize_to_exactly_the_cells_under_their_footprint():
    # Grid over [-10, 10]^2 with 1 m cells: cell (i, j) has its centre at (j - 9.5, i - 9.5).
    transform = TRANSFORMS.build(
        dict(
            type='BEVSemanticTargets',
            point_cloud_range=[-10, -10, -3, 10, 10, 3],
            cell_size=1.0,
            num_classes=2))
    cuboids = dict(
        times_s=np.array([0.0, 1.0], np.float32),
        frame_index=np.array([0, 1, 1]),
        # A 4 m x 2 m vehicle at (3, 2) heading +x; the same turned to +y at t = 1 s; a
        # 0.6 m pedestrian at (-4.5, -4.5) (its footprint holds one cell centre).
        ref_from_object=np.stack([
            cuboid_pose(3.0, 2.0, 0.5, 0.0),
            cuboid_pose(3.0, 2.0, 0.5, math.pi / 2),
            cuboid_pose(-4.5, -4.5, 0.9, 0.3)
        ]),
        size_lwh=np.array([[4, 2, 1.5], [4, 2, 1.5], [0.6, 0.6, 1.8]], np.float32),
        class_index=np.array([0, 0, 1]))
    out = transform.transform(dict(future_cuboids=cuboids))['bev_semantics']
    assert out.shape == (2, 2, 20, 20) and out.dtype == np.uint8
    # Centres x in {1.5, .., 4.5}, y in {1.5, 2.5}: columns 11-14, rows 11-12.
    assert set_cells(out[0, 0]) == cells(range(11, 13), range(11, 15))
    # Turned: x in {2.5, 3.5}, y in {0.5, .., 3.5}: columns 12-13, rows 10-13.
    assert set_cells(out[1, 0]) == cells(range(10, 14), range(12, 14))
    assert set_cells(out[1, 1]) == {(5, 5)}
    assert out[0, 1].sum() == 0


def test_lane_divider_polyline_marks_the_cells_within_half_its_width():
    grid = BEVGrid((-10.0, -10.0, 10.0, 10.0), 1.0)
    mask = rasterize_polyline(grid, np.array([[-5.0, 0.2], [5.0, 0.2]]), width=1.0)
    # Centres y = -0.5 (0.7 m away) are out, y = 0.5 (0.3 m) in; x = +-5.5 is 0.58 m off the
    # ends and out.
    assert set_cells(mask) == cells([10], range(5, 15))


def write_map(map_dir: Path, log_id: str, city_from_ego: np.ndarray):
    """An AV2 vector map whose shapes, in the ego frame of ``city_from_ego``, are axis aligned:
    drivable area [0, 4] x [-2, 2]; a lane with a painted left boundary y = 1.2 and an
    unpainted right boundary y = -1 for x in [-6, 6]; a crossing [-4, -2] x [-3, 3]."""

    def city(points_ego):
        xyz = np.c_[np.asarray(points_ego, float), np.zeros(len(points_ego))]
        xyz = xyz @ city_from_ego[:3, :3].T + city_from_ego[:3, 3]
        return [dict(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in xyz]

    vector_map = dict(
        drivable_areas={'10': dict(id=10, area_boundary=city([[0, -2], [4, -2], [4, 2], [0, 2]]))},
        lane_segments={
            '1':
            dict(
                id=1,
                is_intersection=False,
                lane_type='VEHICLE',
                left_lane_boundary=city([[-6, 1.2], [6, 1.2]]),
                left_lane_mark_type='DASHED_WHITE',
                right_lane_boundary=city([[-6, -1], [6, -1]]),
                right_lane_mark_type='NONE',
                successors=[],
                predecessors=[],
                right_neighbor_id=None,
                left_neighbor_id=None)
        },
        pedestrian_crossings={
            '20': dict(id=20, edge1=city([[-4, -3], [-4, 3]]), edge2=city([[-2, -3], [-2, 3]]))
        })
    dump_json_atomic(vector_map, map_dir / f'log_map_archive_{log_id}____PIT_city_1.json')


def test_map_layers_rasterize_in_the_reference_frame(tmp_path):
    log_id = 'map-log'
    city_from_ego = pose_matrix(
        np.array([math.cos(math.pi / 4), 0, 0, math.sin(math.pi / 4)]),  # yaw 90 deg
        np.array([100.0, 200.0, 10.0]))
    write_map(tmp_path / 'map', log_id, city_from_ego)
    log = dict(
        log_id=log_id,
        log_dir='.',
        map_dir='map',
        pose_timestamps_ns=np.array([5], np.int64),
        city_from_ego=city_from_ego[None])
    transform = TRANSFORMS.build(
        dict(
            type='MapRasterTargets',
            point_cloud_range=[-8, -8, -3, 8, 8, 3],
            cell_size=1.0,
            line_width=1.0))
    out = transform.transform(dict(log=log, data_root=str(tmp_path), timestamp_ns=5))['map_raster']
    # Cell (i, j) has its centre at (j - 7.5, i - 7.5).
    assert set_cells(out[0]) == cells(range(6, 10), range(8, 12))  # x 0.5..3.5, y -1.5..1.5
    # Only centres y = 1.5 (row 9) lie within 0.5 m of y = 1.2; the end points are x = +-6.
    assert set_cells(out[1]) == cells([9], range(2, 14))
    assert set_cells(out[2]) == cells(range(5, 11), range(4, 6))  # x -3.5, -2.5; y -2.5..2.5
    log['map_dir'] = 'no_map'
    with pytest.raises(AV2DataError, match='vector map'):
        transform.transform(dict(log=log, data_root=str(tmp_path), timestamp_ns=5))


def test_points_take_the_class_of_the_cuboid_that_holds_them():
    pose = np.stack([cuboid_pose(10.0, 0.0, 0.0, math.pi / 2), cuboid_pose(-5, -5, 0, 0)])
    size = np.array([[4.0, 2.0, 2.0], [1.0, 1.0, 2.0]])
    points = np.array([[10.9, 1.9, 0.0], [11.1, 0.0, 0.0], [-5.4, -5.4, 0.9], [0, 0, 0]])
    # Turned by 90 deg the first cuboid spans x 9..11, y -2..2.
    assert points_in_cuboids(points, pose, size).tolist() == [0, -1, 1, -1]
    assert points_in_cuboids(points, pose, size, margin=0.15)[1] == 0


def test_semantic_occupancy_queries_behind_returns_carry_the_cuboid_class():
    transform = TRANSFORMS.build(
        dict(
            type='SemanticOccupancyTargets',
            point_cloud_range=[-20, -20, -3, 20, 20, 3],
            num_queries=400,
            free_fraction=0.5,
            object_fraction=0.5))
    # Ray 0 runs along +x from (0, 0, 1) and returns at x = 10 on a vehicle spanning x 10..12;
    # ray 1 runs along +y and returns at y = 5 on nothing labelled (static).
    rays = dict(
        origins=np.array([[0, 0, 1], [0, 0, 1]], np.float32),
        directions=np.array([[1, 0, 0], [0, 1, 0]], np.float32),
        depths=np.array([10.0, 5.0], np.float32),
        times_s=np.array([0.2, 0.2], np.float32),
        sweep_index=np.array([0, 0], np.int16))
    cuboids = dict(
        times_s=np.array([0.0, 0.2], np.float32),
        timestamps_ns=np.array([0, 200_000_000]),
        frame_index=np.array([1]),
        ref_from_object=cuboid_pose(11.0, 0.0, 1.0, 0.0)[None],
        size_lwh=np.array([[2.0, 2.0, 2.0]], np.float32),
        class_index=np.array([0]))
    np.random.seed(0)
    out = transform.transform(
        dict(
            rays=rays,
            future_cuboids=cuboids,
            future_timestamps_ns=[200_000_000],
            log=dict(log_id='x'),
            timestamp_ns=0))
    queries, labels = out['semantic_queries'], out['semantic_labels']
    assert queries.shape == (400, 4) and labels.shape == (400, )
    assert np.all(queries[:, 3] == np.float32(0.2))
    vehicle, static, free = queries[labels == 2], queries[labels == 1], queries[labels == 0]
    assert len(free) == 200 and len(vehicle) >= 100  # half the occupied ones are objects
    assert len(vehicle) + len(static) == 200
    assert vehicle[:, 0].min() >= 10.0 and vehicle[:, 0].max() <= 10.3 + 1e-5
    np.testing.assert_allclose(vehicle[:, 1:3], np.tile([[0.0, 1.0]], (len(vehicle), 1)))
    assert static[:, 1].min() >= 5.0 and static[:, 1].max() <= 5.3 + 1e-5
    assert np.all(np.abs(static[:, 0]) < 1e-6)
    along = np.where(np.abs(free[:, 0]) > 0, free[:, 0], free[:, 1])
    assert np.all((along >= 0) & (along <= np.where(np.abs(free[:, 0]) > 0, 9.7, 4.7) + 1e-5))


def test_ego_waypoints_interpolate_the_future_path():
    transform = TRANSFORMS.build(dict(type='EgoWaypointTargets', times_s=[0.5, 1.0, 1.25]))
    path = dict(
        times_s=np.array([0.0, 0.5, 1.0, 1.5], np.float32),
        xy=np.array([[0, 0], [2, 0], [4, 1], [6, 3]], np.float32),
        yaw=np.zeros(4, np.float32))
    results = dict(ego_path=path, log=dict(log_id='x'), timestamp_ns=7)
    np.testing.assert_allclose(
        transform.transform(results)['ego_waypoints'], [[2, 0], [4, 1], [5, 2]], atol=1e-6)
    with pytest.raises(AV2DataError, match='ego path ends'):
        TRANSFORMS.build(dict(type='EgoWaypointTargets', times_s=[3.0])).transform(results)


# ---------------------------------------------------------------- metrics


def evaluate(metric_cfg, samples):
    metric = METRICS.build(metric_cfg)
    metric.process({}, [BaseDataElement(**s) for s in samples])
    return metric.compute_metrics(metric.results)


def test_bev_forecasting_metric_ap_and_soft_iou():
    # Class 0 scores 0.9 (pos), 0.8 (neg), 0.7 (pos), 0.1 (neg): precision 1 at recall 0.5,
    # 2/3 at recall 1 -> AP = 0.5 + 0.5 * 2/3; soft-IoU = 1.6 / (1 + 0.8 + 1 + 0.1).
    # Class 1 has no positive: AP and soft-IoU are undefined and left out of the means.
    prob = torch.tensor([[0.9, 0.8], [0.7, 0.1]])
    label = torch.tensor([[1, 0], [1, 0]], dtype=torch.uint8)
    sample = dict(
        pred_bev_semantics=torch.stack([prob, prob])[None],  # (T=1, C=2, 2, 2)
        bev_semantics=torch.stack([label, torch.zeros_like(label)])[None])
    result = evaluate(
        dict(type='BEVForecastingMetric', class_names=['car', 'ped'], times_s=[1.0]), [sample])
    assert result['AP_car'] == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert result['mAP'] == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert result['soft_IoU_car'] == pytest.approx(1.6 / 2.9)
    assert result['soft_IoU'] == pytest.approx(1.6 / 2.9)
    assert result['soft_IoU@1s'] == pytest.approx(1.6 / 2.9)
    assert math.isnan(result['AP_ped']) and math.isnan(result['soft_IoU_ped'])


def test_semantic_occupancy_metric_miou():
    # Truth 0 0 1 1 2, prediction 0 1 1 1 2: IoU 1/2, 2/3, 1.
    sample = dict(
        pred_semantic_labels=torch.tensor([0, 1, 1, 1, 2]),
        semantic_labels=torch.tensor([0, 0, 1, 1, 2]))
    result = evaluate(
        dict(type='SemanticOccupancyMetric', class_names=['free', 'static', 'vehicle', 'ped']),
        [sample])
    assert result['IoU_free'] == pytest.approx(0.5)
    assert result['IoU_static'] == pytest.approx(2 / 3)
    assert result['IoU_vehicle'] == pytest.approx(1.0)
    assert math.isnan(result['IoU_ped'])
    assert result['mIoU'] == pytest.approx((0.5 + 2 / 3 + 1) / 3)
    assert result['mIoU_occupied'] == pytest.approx((2 / 3 + 1) / 2)


def test_map_segmentation_metric_iou_over_all_samples():
    # Drivable: sample 1 predicts 2 of 3 true cells and 1 false (I 2, U 4); sample 2 predicts
    # its 1 true cell exactly (I 1, U 1) -> IoU 3/5. Dividers: nothing true, one false -> 0.
    pred_a = torch.tensor([[[0.9, 0.6, 0.2, 0.7]], [[0.0, 0.0, 0.0, 0.55]]])
    true_a = torch.tensor([[[1, 1, 1, 0]], [[0, 0, 0, 0]]], dtype=torch.uint8)
    pred_b = torch.tensor([[[0.5, 0.4, 0.0, 0.0]], [[0.0, 0.0, 0.0, 0.0]]])
    true_b = torch.tensor([[[1, 0, 0, 0]], [[0, 0, 0, 0]]], dtype=torch.uint8)
    result = evaluate(
        dict(type='MapSegmentationMetric', class_names=['drivable_area', 'lane_divider']), [
            dict(pred_map_raster=pred_a, map_raster=true_a),
            dict(pred_map_raster=pred_b, map_raster=true_b)
        ])
    assert result['IoU_drivable_area'] == pytest.approx(3 / 5)
    assert result['IoU_lane_divider'] == 0.0
    assert result['mIoU'] == pytest.approx(0.3)


def test_ego_trajectory_metric_l2():
    truth = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    result = evaluate(
        dict(type='EgoTrajectoryMetric', times_s=[1, 2, 3]), [
            dict(
                pred_ego_waypoints=truth + torch.tensor([[0, 0], [0, 3], [3, 4.]]),
                ego_waypoints=truth),
            dict(
                pred_ego_waypoints=truth + torch.tensor([[1, 0], [0, 1], [0, 0.]]),
                ego_waypoints=truth)
        ])
    assert result['L2@1s'] == pytest.approx(0.5)
    assert result['L2@2s'] == pytest.approx(2.0)
    assert result['L2@3s'] == pytest.approx(2.5)
    assert result['L2'] == pytest.approx(5 / 3)


# ---------------------------------------------------------------- data on the synthetic world


@pytest.fixture(scope='module')
def downstream_infos(synthetic_av2_root, tmp_path_factory):
    out = tmp_path_factory.mktemp('downstream_infos')
    return create_av2_infos(
        str(synthetic_av2_root),
        str(out),
        splits=['train', 'val'],
        timing=SampleTiming(future_horizon_s=1.0))


def test_label_fraction_keeps_a_seeded_nested_subset(synthetic_av2_root, downstream_infos):
    small, large = label_fraction_indices(40, 0.1, 3), label_fraction_indices(40, 0.5, 3)
    assert len(small) == 4 and len(large) == 20 and set(small) <= set(large)
    assert np.array_equal(small, label_fraction_indices(40, 0.1, 3))
    assert not np.array_equal(small, label_fraction_indices(40, 0.1, 4))
    with pytest.raises(ValueError, match='label_fraction'):
        label_fraction_indices(40, 0.0, 0)

    def stamps(**kwargs):
        dataset = AV2DownstreamDataset(
            ann_file=str(downstream_infos['train']), data_root=str(synthetic_av2_root), **kwargs)
        return [dataset.get_data_info(i)['timestamp_ns'] for i in range(len(dataset))]

    every = stamps()
    tenth = stamps(label_fraction=0.1, label_seed=1)
    assert len(tenth) == math.ceil(0.1 * len(every))
    assert tenth == stamps(label_fraction=0.1, label_seed=1)
    assert set(tenth) <= set(every)


def test_future_cuboids_match_av2_poses(synthetic_av2_root, downstream_infos):
    dataset = AV2DownstreamDataset(
        ann_file=str(downstream_infos['val']), data_root=str(synthetic_av2_root))
    info = dataset.get_data_info(3)
    transform = TRANSFORMS.build(dict(type='LoadFutureCuboids', times_s=[0.0, 1.0]))
    cuboids = transform.transform(dict(info))['future_cuboids']
    log_dir = synthetic_av2_root / info['log']['log_dir']
    t0, t1 = info['timestamp_ns'], cuboids['timestamps_ns'][1]
    assert t1 == info['future_timestamps_ns'][-1]
    # Independently through av2: ref_from_object = inv(city_SE3_ego(t0)) city_SE3_ego(t1) obj.
    city_poses = read_city_SE3_ego(log_dir)
    ref_from_ego1 = city_poses[t0].inverse().compose(city_poses[t1])
    wanted = [
        c for c in CuboidList.from_feather(log_dir / 'annotations.feather').cuboids
        if c.timestamp_ns == t1 and c.category in ('REGULAR_VEHICLE', 'LARGE_VEHICLE', 'BUS',
                                                   'BOX_TRUCK', 'PEDESTRIAN', 'BICYCLE',
                                                   'BICYCLIST', 'MOTORCYCLE', 'MOTORCYCLIST')
    ]
    got = cuboids['ref_from_object'][cuboids['frame_index'] == 1]
    assert len(wanted) == len(got) > 0
    expected = np.stack([ref_from_ego1.compose(c.dst_SE3_object).transform_matrix for c in wanted])
    np.testing.assert_allclose(
        got[np.lexsort(got[:, :2, 3].T)], expected[np.lexsort(expected[:, :2, 3].T)], atol=1e-4)


def synthetic_cfg(task, root, infos, work_dir):
    """The task's synthetic config on the tiny world (1 s horizon), 3 iterations."""
    cfg = Config.fromfile(str(REPO / 'configs' / 'downstream' / f'{task}_synthetic.py'))
    for loader, split in ((cfg.train_dataloader, 'train'), (cfg.val_dataloader, 'val')):
        loader.dataset.data_root = str(root) + '/'
        loader.dataset.ann_file = str(infos[split])
        for t in loader.dataset.pipeline:
            if t.type == 'LoadFutureCuboids' and t.times_s:
                t.times_s = [0.0, 0.6, 1.0]
            if t.type == 'EgoWaypointTargets':
                t.times_s = [0.5, 1.0]
            if t.type == 'SemanticOccupancyTargets':
                t.num_queries = 1024
    cfg.val_dataloader.dataset.max_samples = 2
    cfg.test_dataloader = cfg.val_dataloader
    if task == 'bev_semantic_forecasting':
        cfg.model.head.num_times = 3
        cfg.val_evaluator.times_s = [0.0, 0.6, 1.0]
    if task == 'ego_trajectory':
        cfg.model.head.num_waypoints = 2
        cfg.val_evaluator.times_s = [0.5, 1.0]
    cfg.test_evaluator = cfg.val_evaluator
    cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = 3
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=-1, save_last=False)
    cfg.work_dir = str(work_dir)
    return cfg


HEADLINE = dict(
    bev_semantic_forecasting='bev_forecast/mAP',
    semantic_occupancy_4d='semantic_occ/mIoU',
    map_segmentation='map_seg/mIoU',
    ego_trajectory='ego_traj/L2')


@pytest.mark.parametrize('task', TASKS)
def test_task_trains_and_evaluates_on_the_synthetic_world(task, synthetic_av2_root,
                                                          downstream_infos, tmp_path):
    cfg = synthetic_cfg(task, synthetic_av2_root, downstream_infos, tmp_path)
    runner = Runner.from_cfg(cfg)
    head_before = {k: v.clone() for k, v in runner.model.head.state_dict().items()}
    encoder_before = {k: v.clone() for k, v in runner.model.backbone.state_dict().items()}
    runner.train()
    metrics = runner.val_loop.run()
    changed = [
        not torch.equal(v,
                        runner.model.head.state_dict()[k]) for k, v in head_before.items()
    ]
    assert any(changed)
    assert any(not torch.equal(v,
                               runner.model.backbone.state_dict()[k])
               for k, v in encoder_before.items())
    value = metrics[HEADLINE[task]]
    if task == 'ego_trajectory':
        assert 0.0 <= value < 50.0  # metres; the world moves < 15 m/s
    else:
        assert 0.0 <= value <= 1.0


def test_load_from_a_gasp_checkpoint_loads_the_encoder(tmp_path, synthetic_av2_root,
                                                       downstream_infos):
    pretrain = Config.fromfile(str(REPO / 'configs' / 'gasp_synthetic_demo.py'))
    gasp_model = MODELS.build(pretrain.model)
    with torch.no_grad():  # make every encoder tensor distinctive
        for p in gasp_model.backbone.parameters():
            p.normal_()
    checkpoint = tmp_path / 'gasp_pretrained.pth'
    with atomic_open(checkpoint) as f:
        torch.save(dict(state_dict=gasp_model.state_dict(), meta=dict()), f)

    cfg = synthetic_cfg('map_segmentation', synthetic_av2_root, downstream_infos, tmp_path / 'w')
    cfg.load_from = str(checkpoint)
    runner = Runner.from_cfg(cfg)
    head_before = {k: v.clone() for k, v in runner.model.head.state_dict().items()}
    runner.load_or_resume()
    loaded = runner.model.backbone.state_dict()
    for key, value in gasp_model.backbone.state_dict().items():
        torch.testing.assert_close(loaded[key], value, msg=f'backbone.{key} was not loaded')
    for key, value in runner.model.head.state_dict().items():
        assert torch.equal(value, head_before[key]), f'head.{key} changed on loading'
