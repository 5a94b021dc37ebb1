"""4D occupancy forecasting benchmark: ray marching, renderer, metric, JSON files, query rays
and baselines, against hand-computed values."""
import json
import math

import numpy as np
import pytest
import torch

from gasp_ops import ray_box_intersection, render_expected_depth

GRID_RANGE = (0.0, 0.0, 0.0, 20.0, 20.0, 2.0)  # 100 x 100 x 10 cells of 0.2 m
VOXEL = (0.2, 0.2, 0.2)


def empty_grid(point_cloud_range=GRID_RANGE, voxel=VOXEL):
    shape = [
        int(round((point_cloud_range[a + 3] - point_cloud_range[a]) / voxel[a])) for a in (2, 1, 0)
    ]
    return torch.zeros(shape, dtype=torch.float64)


def ray(origin, direction):
    return (torch.tensor([origin],
                         dtype=torch.float64), torch.tensor([direction], dtype=torch.float64))


# ----------------------------------------------------------------------------- ray marching


def test_ray_box_intersection_hand_values():
    origins = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [-5.0, 1.0, 1.0], [-5.0, 30.0, 1.0]],
                           dtype=torch.float64)
    s = 1 / math.sqrt(2)
    directions = torch.tensor([[1.0, 0, 0], [s, s, 0], [1.0, 0, 0], [1.0, 0, 0]],
                              dtype=torch.float64)
    t_enter, t_exit = ray_box_intersection(origins, directions, GRID_RANGE)
    assert t_enter[:3].tolist() == pytest.approx([0.0, 0.0, 5.0])
    assert t_exit[:3].tolist() == pytest.approx([19.0, 19.0 * math.sqrt(2), 25.0])
    assert t_exit[3] <= t_enter[3]  # parallel to the y slab and outside it: a miss


def test_empty_grid_gives_grid_exit_or_max_depth():
    origins, directions = ray([1.0, 1.1, 1.1], [1.0, 0.0, 0.0])
    grid = empty_grid()
    assert render_expected_depth(origins, directions, grid, GRID_RANGE,
                                 VOXEL).item() == pytest.approx(19.0)
    assert render_expected_depth(
        origins, directions, grid, GRID_RANGE, VOXEL, max_depth=5.0).item() == pytest.approx(5.0)


def test_single_opaque_cell_gives_its_distance():
    # Segments of 0.2 m from x = 0 have midpoints at x = 0.1, 0.3, ...; cell ix = 50 spans
    # [10.0, 10.2), so the first segment inside it is centred at 10.1 m.
    origins, directions = ray([0.0, 1.1, 1.1], [1.0, 0.0, 0.0])
    grid = empty_grid()
    grid[5, 5, 50] = math.inf
    assert render_expected_depth(origins, directions, grid, GRID_RANGE,
                                 VOXEL).item() == pytest.approx(10.1)
    # Behind the origin the same cell is never reached.
    origins2, directions2 = ray([15.0, 1.1, 1.1], [1.0, 0.0, 0.0])
    assert render_expected_depth(origins2, directions2, grid, GRID_RANGE,
                                 VOXEL).item() == pytest.approx(5.0)


def test_two_half_transparent_cells_hand_computed():
    # alpha = 1 - exp(-sigma * 0.2) = 0.5 in cells 50 and 60:
    # p = 0.5 at 10.1 m, 0.25 at 12.1 m, p_out = 0.25 at the exit (20 m).
    origins, directions = ray([0.0, 1.1, 1.1], [1.0, 0.0, 0.0])
    grid = empty_grid()
    grid[5, 5, 50] = grid[5, 5, 60] = math.log(2.0) / 0.2
    expected = 0.5 * 10.1 + 0.25 * 12.1 + 0.25 * 20.0
    assert render_expected_depth(origins, directions, grid, GRID_RANGE,
                                 VOXEL).item() == pytest.approx(expected)


def test_uniform_density_with_truncated_last_segment():
    # Grid [0, 1] m along x, sigma = 2 / m, step 0.3: segments of length 0.3, 0.3, 0.3, 0.1
    # with midpoints 0.15, 0.45, 0.75, 0.95; S_i = 2 * cumulative length.
    box = (0.0, 0.0, 0.0, 1.0, 0.2, 0.2)
    grid = empty_grid(box) + 2.0
    origins, directions = ray([0.0, 0.1, 0.1], [1.0, 0.0, 0.0])
    lengths, mids = np.array([0.3, 0.3, 0.3, 0.1]), np.array([0.15, 0.45, 0.75, 0.95])
    total = 2.0 * np.cumsum(lengths)
    before = np.concatenate([[0.0], total[:-1]])
    expected = ((np.exp(-before) - np.exp(-total)) * mids).sum() + np.exp(-total[-1]) * 1.0
    got = render_expected_depth(origins, directions, grid, box, VOXEL, step=0.3)
    assert got.item() == pytest.approx(expected)


def test_ray_marching_is_independent_of_chunking():
    generator = torch.Generator().manual_seed(0)
    grid = (torch.rand(empty_grid().shape, generator=generator, dtype=torch.float64) > 0.97)
    grid = grid.double() * 3.0
    origins = torch.rand(
        200, 3, generator=generator, dtype=torch.float64) * torch.tensor([20.0, 20.0, 2.0])
    directions = torch.nn.functional.normalize(
        torch.randn(200, 3, generator=generator, dtype=torch.float64), dim=1)
    one = render_expected_depth(origins, directions, grid, GRID_RANGE, VOXEL, steps_per_chunk=1)
    many = render_expected_depth(origins, directions, grid, GRID_RANGE, VOXEL, steps_per_chunk=64)
    torch.testing.assert_close(one, many)
    # Each ray alone gives the same depth as in the batch (vectorized, no cross-talk).
    torch.testing.assert_close(
        render_expected_depth(origins[7:8], directions[7:8], grid, GRID_RANGE, VOXEL), many[7:8])


# ----------------------------------------------------------------------------- renderer


def test_renderer_wall_gives_depth_over_cosine():
    from mmdet3d.registry import MODELS

    from gasp.evaluation import ExpectedDepthRenderer
    step = 0.2
    renderer = MODELS.build(
        dict(
            type='ExpectedDepthRenderer',
            step=step,
            max_depth=50.0,
            field_output='probabilities',
            min_transmittance=0.0))
    assert isinstance(renderer, ExpectedDepthRenderer)
    angles = torch.tensor([0.0, 0.3, 0.7, 1.0], dtype=torch.float64)
    directions = torch.stack([angles.cos(), angles.sin(), torch.zeros_like(angles)], dim=1)
    origins = torch.zeros(4, 3, dtype=torch.float64)

    def wall(points):  # occupied for x >= 10 m
        return (points[:, 0] >= 10.0).double()

    depth = renderer(wall, origins, directions, times=0.0)
    exact = 10.0 / angles.cos()
    assert ((depth >= exact) & (depth <= exact + step)).all(), (depth, exact)
    # The wall moves with time: x >= 10 + 5 t; rays at t = 1 s see it at 15 m.
    moving = renderer(
        lambda p: (p[:, 0] >= 10.0 + 5.0 * p[:, 3]).double(),
        origins[:1],
        directions[:1],
        times=torch.tensor([1.0]))
    assert 15.0 <= moving.item() <= 15.0 + step
    # Logits: a very confident wall gives the same depths.
    logit_renderer = ExpectedDepthRenderer(
        step=step, max_depth=50.0, field_output='logits', min_transmittance=0.0)
    torch.testing.assert_close(
        logit_renderer(lambda p: (wall(p) - 0.5) * 200, origins, directions, 0.0), depth)


def test_renderer_dense_grid_wall():
    from gasp.evaluation import ExpectedDepthRenderer
    renderer = ExpectedDepthRenderer(
        step=0.2,
        max_depth=15.0,
        point_cloud_range=GRID_RANGE,
        voxel_size=VOXEL,
        min_transmittance=0.0)
    grid = empty_grid()
    grid[:, :, 60] = math.inf  # a wall filling the cells x in [12.0, 12.2)
    origins = torch.tensor([[0.0, 1.1, 1.1], [0.0, 1.1, 1.1], [13.0, 1.1, 1.1]],
                           dtype=torch.float64)
    directions = torch.tensor([[1.0, 0, 0], [0.0, 1, 0], [1.0, 0, 0]], dtype=torch.float64)
    depth = renderer.render_grid(grid, origins, directions)
    # The wall at 12.1 m; along y the grid exit (18.9 m) is cut at max_depth; behind the wall
    # the ray leaves the grid at x = 20 m.
    assert depth.tolist() == pytest.approx([12.1, 15.0, 7.0])


def test_renderer_half_occupied_field_and_empty_field():
    from gasp.evaluation import ExpectedDepthRenderer
    renderer = ExpectedDepthRenderer(
        step=0.5,
        max_depth=1.0,
        point_cloud_range=None,
        field_output='probabilities',
        min_transmittance=0.0)
    origins, directions = ray([0.0, 0.0, 0.0], [0.0, 0.0, 1.0])
    # Two samples at 0.25 and 0.75 m with alpha 0.5: 0.5 * 0.25 + 0.25 * 0.75 + 0.25 * 1.0.
    half = renderer(lambda p: torch.full(p.shape[:1], 0.5), origins, directions, 0.0)
    assert half.item() == pytest.approx(0.5 * 0.25 + 0.25 * 0.75 + 0.25 * 1.0)
    empty = renderer(lambda p: torch.zeros(p.shape[:1]), origins, directions, 0.0)
    assert empty.item() == pytest.approx(1.0)


# ----------------------------------------------------------------------------- metric


@pytest.mark.parametrize('backend', ['cdist', 'kdtree'])
def test_chamfer_distance_is_squared(backend):
    from gasp.evaluation import chamfer_distance_squared
    pred = torch.tensor([[0.0, 0, 0], [3.0, 0, 0]])
    gt = torch.tensor([[0.0, 0, 0], [0.0, 0, 1], [1.0, 0, 0]])
    # pred -> gt: 0 and 4 (mean 2); gt -> pred: 0, 1, 1 (mean 2/3); CD = (2 + 2/3) / 2.
    for chunk in (1, 4096):
        assert chamfer_distance_squared(pred, gt, chunk, backend).item() == pytest.approx(4 / 3)


def test_nearest_neighbour_backends_agree_on_far_clouds():
    from gasp.evaluation import nearest_neighbour
    generator = torch.Generator().manual_seed(0)
    # Clouds 60 m from the origin with cm gaps: float32 cdist alone would be off by ~1e-3 m^2.
    points = torch.randn(3000, 3, generator=generator) * 5 + 60
    queries = points[::3] + 0.01 * torch.randn(1000, 3, generator=generator)
    index_c, squared_c = nearest_neighbour(queries, points, 256, 'cdist')
    index_k, squared_k = nearest_neighbour(queries, points, backend='kdtree')
    torch.testing.assert_close(squared_c, squared_k, atol=1e-6, rtol=0)
    assert (index_c == index_k).float().mean() > 0.99


def two_rays():
    origins = torch.zeros(2, 3)
    directions = torch.tensor([[1.0, 0, 0], [0.0, 1, 0]])
    return origins, directions, torch.tensor([2.0, 4.0]), torch.tensor([3.0, 2.0])


def test_step_errors_hand_computed():
    from gasp.evaluation import occ_forecasting_step_errors
    origins, directions, gt, pred = two_rays()
    errors = occ_forecasting_step_errors(origins, directions, gt, pred)
    # GT points (2,0,0), (0,4,0); predicted (3,0,0), (0,2,0). Both NN means are (1 + 4) / 2.
    assert errors['L1'] == pytest.approx(1.5)
    assert errors['AbsRel'] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert errors['CD'] == pytest.approx(2.5)
    assert errors['NFCD'] == pytest.approx(2.5)
    assert errors['num_rays'] == 2
    # Near field |x|, |y| <= 2.5: GT keeps (2,0,0), prediction keeps (0,2,0): 8 m^2 each way.
    small = (-2.5, -2.5, -1.0, 2.5, 2.5, 1.0)
    errors = occ_forecasting_step_errors(origins[0], directions, gt, pred, small)
    assert errors['NFCD'] == pytest.approx(8.0)
    assert errors['CD'] == pytest.approx(2.5)
    # No predicted point in the near field: NFCD = 0.
    errors = occ_forecasting_step_errors(origins, directions, gt, torch.tensor([9.0, 9.0]), small)
    assert errors['NFCD'] == 0.0
    # The paper's variant clamps both depths to the box exit (2.5 m on both rays).
    errors = occ_forecasting_step_errors(origins, directions, gt, pred, small, clamp_to_box=True)
    assert errors['L1'] == pytest.approx((0.5 + 0.5) / 2)
    assert errors['AbsRel'] == pytest.approx((0.5 / 2.0 + 0.5 / 2.5) / 2)
    assert errors['CD'] == pytest.approx(2.5)


def test_metric_averages_over_log_frame_step_rows(tmp_path):
    from mmdet3d.registry import METRICS
    out_file = tmp_path / 'metrics.json'
    metric = METRICS.build(dict(type='OccForecastingMetric', out_file=str(out_file)))
    x = np.array([[1.0, 0, 0]])
    xxx = np.repeat(x, 3, 0)
    # Frame A: step 1 has one ray off by 1 m, step 2 three rays off by 2 m.
    # Frame B: step 1 one ray off by 3 m, step 2 one exact ray.
    metric.process(None, [
        dict(
            log_id='a',
            timestamp_ns=1,
            origins=[np.zeros(3)] * 2,
            directions=[x, xxx],
            gt_depths=[[10.0], [10.0] * 3],
            pred_depths=[[11.0], [12.0] * 3])
    ])
    metric.process(None, [
        dict(
            log_id='b',
            timestamp_ns=2,
            origins=[np.zeros(3)] * 2,
            directions=[x, x],
            gt_depths=[[10.0], [10.0]],
            pred_depths=[[7.0], [10.0]])
    ])
    metrics = metric.evaluate(size=2)
    # Rows: 1, 2, 3, 0 -> mean 1.5 (the mean over the 6 rays would be 10 / 6).
    assert metrics['occ_forecasting/L1'] == pytest.approx(1.5)
    assert metrics['occ_forecasting/AbsRel'] == pytest.approx(0.15)
    # One point per cloud on the x axis: CD = (d - d_hat)^2 per row.
    assert metrics['occ_forecasting/CD'] == pytest.approx((1 + 4 + 9 + 0) / 4)
    saved = json.loads(out_file.read_text())
    assert saved['per_step']['0']['L1'] == pytest.approx(2.0)  # (1 + 3) / 2
    assert saved['per_step']['1']['L1'] == pytest.approx(1.0)  # (2 + 0) / 2
    assert len(saved['rows']) == 4 and saved['variant'].startswith('plain')


# ----------------------------------------------------------------------------- JSON files


def make_frames():
    from gasp.evaluation import OccForecastingFrame
    rng = np.random.default_rng(0)
    frames = []
    for log_id, stamp in (('log-b', 300), ('log-a', 200), ('log-a', 100)):
        counts = [3, 0, 2]
        directions = [rng.normal(size=(n, 3)) for n in counts]
        frames.append(
            OccForecastingFrame(
                log_id=log_id,
                timestamp_ns=stamp,
                past_timestamps_ns=[stamp - 10, stamp],
                future_timestamps_ns=[stamp + 10, stamp + 20, stamp + 30],
                origins=[np.tile(rng.normal(size=3), (n, 1)).astype(np.float32) for n in counts],
                directions=[(d / np.linalg.norm(d, axis=1, keepdims=True)).astype(np.float32)
                            for d in directions],
                depths=[rng.uniform(1, 60, size=n).astype(np.float32) for n in counts]))
    return frames


@pytest.mark.parametrize('suffix', ['.json', '.json.gz'])
def test_challenge_json_round_trip(tmp_path, suffix):
    from gasp.evaluation import (evaluate_frames, read_challenge_rays, read_submission,
                                 write_challenge_rays, write_submission)
    frames = make_frames()
    write_challenge_rays(frames, tmp_path / f'gt{suffix}', '1s', kind='ground_truth')
    write_challenge_rays(frames, tmp_path / f'queries{suffix}', '1s', kind='queries')
    horizon, back = read_challenge_rays(tmp_path / f'gt{suffix}')
    assert horizon == '1s'
    expected = sorted(frames, key=lambda f: (f.log_id, f.timestamp_ns))
    assert [(f.log_id, f.timestamp_ns) for f in back] == [(f.log_id, f.timestamp_ns)
                                                          for f in expected]
    for got, want in zip(back, expected):
        assert got.past_timestamps_ns == want.past_timestamps_ns
        assert got.future_timestamps_ns == want.future_timestamps_ns
        for k in range(3):
            np.testing.assert_allclose(got.origins[k], want.origins[k], atol=1e-5)
            np.testing.assert_allclose(got.directions[k], want.directions[k], atol=1e-5)
            np.testing.assert_allclose(got.depths[k], want.depths[k], atol=1e-5)
    _, queries = read_challenge_rays(tmp_path / f'queries{suffix}')
    assert all(f.depths is None for f in queries)

    predictions = {f.log_id: {} for f in frames}
    for f in frames:
        predictions[f.log_id][f.frame_id] = [d + 1.0 for d in f.depths]
    write_submission(predictions, tmp_path / f'sub{suffix}', '1s')
    horizon, pred_back = read_submission(tmp_path / f'sub{suffix}')
    assert horizon == '1s'
    for f in frames:
        for k in range(3):
            np.testing.assert_allclose(
                pred_back[f.log_id][f.frame_id][k], f.depths[k] + 1, atol=1e-5)
    # Scoring the files: every ray is off by 1 m (the metric refuses steps without rays).
    for f in back:
        del f.origins[1], f.directions[1], f.depths[1]
    for steps in (s for log in pred_back.values() for s in log.values()):
        del steps[1]
    assert evaluate_frames(back, pred_back)['L1'] == pytest.approx(1.0, abs=1e-4)


def test_challenge_json_layout(tmp_path):
    from gasp.evaluation import write_challenge_rays, write_submission
    frames = make_frames()[:1]
    write_challenge_rays(frames, tmp_path / 'gt.json', '3s', kind='ground_truth')
    data = json.loads((tmp_path / 'gt.json').read_text())
    rays = data['queries'][0]['rays']
    assert data['queries'][0]['horizon'] == '3s'
    assert list(rays) == ['log-b'] and list(rays['log-b']) == ['300.feather']
    steps = rays['log-b']['300.feather']
    assert [len(s) for s in steps] == [3, 0, 2] and len(steps[0][0]) == 7
    write_submission(
        {'log-b': {
            '300.feather': [np.array([1.5, 2.0, 3.0]),
                            np.zeros(0),
                            np.array([4.0, 5.0])]
        }}, tmp_path / 's.json', '3s')
    sub = json.loads((tmp_path / 's.json').read_text())['queries'][0]['rays']
    assert sub['log-b']['300.feather'][0] == [[1.5], [2.0], [3.0]]


# ----------------------------------------------------------------------------- query rays


def test_protocols_and_frame_selection():
    from gasp.evaluation import get_protocol
    from gasp.evaluation.query_rays import frame_indices
    one, three = get_protocol(1), get_protocol(3)
    assert one.sweep_offsets() == ([-8, -6, -4, -2, 0], [2, 4, 6, 8, 10])
    assert three.sweep_offsets() == ([-24, -18, -12, -6, 0], [6, 12, 18, 24, 30])
    lidar_ns = np.arange(40, dtype=np.int64) * 100_000_000
    # First frame needs 8 past sweeps, last one 10 future sweeps; frames every 4 sweeps.
    assert frame_indices(lidar_ns, one) == [8, 12, 16, 20, 24, 28]
    assert frame_indices(lidar_ns, three) == []
    # Sweep 13 dropped: frames 8 to 20 have a sweep 0.1 s off its nominal time in their window.
    dropped = np.delete(np.arange(41, dtype=np.int64) * 100_000_000, 13)
    assert frame_indices(dropped, one) == [24, 28]


def _pose(table):
    from av2.datasets.sensor.av2_sensor_dataloader import convert_pose_dataframe_to_SE3
    return convert_pose_dataframe_to_SE3(table).transform_matrix


def test_query_rays_of_the_synthetic_world(synthetic_av2_root):
    from av2.utils.io import read_feather

    from gasp.evaluation import get_protocol, log_query_frames
    from gasp.evaluation.query_rays import split_log_dirs
    log_dir = split_log_dirs(synthetic_av2_root, 'val')[0]
    protocol = get_protocol(1, num_future=2)
    frames = log_query_frames(log_dir, protocol, max_frames=1)
    assert len(frames) == 1
    frame = frames[0]
    lidar_ns = sorted(int(p.stem) for p in (log_dir / 'sensors' / 'lidar').glob('*.feather'))
    k = lidar_ns.index(frame.timestamp_ns)
    assert k == 8  # the first sweep with 4 past frames 0.2 s apart
    assert frame.future_timestamps_ns == [lidar_ns[k + 2], lidar_ns[k + 4]]
    assert frame.past_timestamps_ns == [lidar_ns[k + o] for o in (-8, -6, -4, -2, 0)]

    # Independent path: av2's own pose conversion.
    calib = read_feather(log_dir / 'calibration' / 'egovehicle_SE3_sensor.feather')
    ego_from_lidar = _pose(calib[calib['sensor_name'] == 'up_lidar'])
    poses = read_feather(log_dir / 'city_SE3_egovehicle.feather')
    city_from_lidar_0 = _pose(poses[poses['timestamp_ns'] == frame.timestamp_ns]) @ ego_from_lidar
    for step, stamp in enumerate(frame.future_timestamps_ns):
        city_from_lidar_t = _pose(poses[poses['timestamp_ns'] == stamp]) @ ego_from_lidar
        ref_from_lidar = np.linalg.inv(city_from_lidar_0) @ city_from_lidar_t
        np.testing.assert_allclose(
            frame.origins[step],
            np.tile(ref_from_lidar[:3, 3], (len(frame.origins[step]), 1)),
            atol=1e-4)
        sweep = read_feather(log_dir / 'sensors' / 'lidar' / f'{stamp}.feather')
        xyz_ego = sweep[['x', 'y', 'z']].to_numpy(np.float64)
        xyz_lidar = (np.linalg.inv(ego_from_lidar) @ np.c_[xyz_ego, np.ones(len(xyz_ego))].T).T
        ego = ((xyz_lidar[:, 0] >= -1.75) & (xyz_lidar[:, 0] <= 3.75) & (xyz_lidar[:, 1] >= -1.25) &
               (xyz_lidar[:, 1] <= 1.25))
        kept = (ref_from_lidar @ xyz_lidar[~ego].T).T[::5, :3]
        assert len(frame.depths[step]) == len(kept)
        np.testing.assert_allclose(
            frame.depths[step], np.linalg.norm(kept - ref_from_lidar[:3, 3], axis=1), atol=1e-3)
        np.testing.assert_allclose(
            frame.origins[step] + frame.directions[step] * frame.depths[step][:, None],
            kept,
            atol=1e-3)
        np.testing.assert_allclose(np.linalg.norm(frame.directions[step], axis=1), 1.0, atol=1e-5)


# ----------------------------------------------------------------------------- baselines


def test_constant_velocity_flow_hand_values():
    from gasp.evaluation import ConstantVelocityBaseline
    baseline = ConstantVelocityBaseline(min_speed_mps=2.5, max_speed_mps=30.0)
    prev = np.array([[0.0, 0, 0], [10.0, 0, 0], [30.0, 0, 0]])
    now = np.array([[0.1, 0, 0.3], [11.0, 0, 0], [30.0, 8.0, 0]])
    velocity = baseline.velocities(now, prev, dt_s=0.2)
    # 0.1 m in 0.2 s is below 2.5 m/s (static); 1 m in 0.2 s is 5 m/s along x (z ignored);
    # 8 m in 0.2 s (40 m/s) is above the plausible maximum (a wrong match).
    np.testing.assert_allclose(velocity, [[0, 0, 0], [5.0, 0, 0], [0, 0, 0]])


def test_static_baseline_reproduces_the_t0_sweep(synthetic_av2_root):
    """Rays of the t = 0 sweep itself, rendered through the t = 0 grid, end in the voxel of
    their own return (unless another occupied voxel is in front)."""
    from gasp.evaluation import (ConstantVelocityBaseline, StaticWorldBaseline, UpLidarLog,
                                 get_protocol, log_query_frames)
    from gasp.evaluation.query_rays import future_query_rays, split_log_dirs
    log_dir = split_log_dirs(synthetic_av2_root, 'val')[0]
    protocol = get_protocol(1, num_future=1, ray_stride=1)
    frame = log_query_frames(log_dir, protocol, max_frames=1)[0]
    log = UpLidarLog(log_dir)
    origins, directions, depths = future_query_rays(log, frame.timestamp_ns, [frame.timestamp_ns],
                                                    protocol)
    np.testing.assert_allclose(origins[0], 0.0, atol=1e-6)  # the reference lidar itself
    frame.origins, frame.directions, frame.depths = origins, directions, depths
    frame.future_timestamps_ns = [frame.timestamp_ns]
    pred = StaticWorldBaseline().predict(log, frame)[0]
    inside = np.abs(origins[0] + directions[0] * depths[0][:, None]).max(1) < 60
    error = np.abs(pred - depths[0])[inside]
    assert np.median(error) < 0.2  # within a voxel
    # A constant-velocity baseline that sees no motion is the static world.
    frozen = ConstantVelocityBaseline(min_speed_mps=math.inf).predict(log, frame)[0]
    np.testing.assert_allclose(frozen, pred)
