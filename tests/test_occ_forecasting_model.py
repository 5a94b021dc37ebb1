"""A GASP model on the 4D occupancy forecasting benchmark: renderers on fields of known
geometry, the benchmark dataset against the files, tools/test.py and tools/dist_test.sh."""
import io
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmdet3d.registry import MODELS
from mmengine.structures import BaseDataElement

import gasp  # noqa: F401
from gasp.datasets.av2_io import lidar_path, read_sweep
from gasp.datasets.log_frames import ref_from_ego_at
from gasp.evaluation import AV2OccForecastingDataset, generate_query_frames, get_protocol
from gasp.fileio import atomic_write_bytes
from gasp.geometry import transform_points
from gasp.models import GASPOccForecaster
from gasp_ops import ray_box_intersection

REPO = Path(__file__).resolve().parents[1]
RANGE = [-20.0, -20.0, -2.0, 20.0, 20.0, 2.0]
WALL_X_M, WALL_SPEED_MPS = 10.0, 5.0  # the stub field's wall: x >= 10 + 5 t


@MODELS.register_module(name='WallFieldForecaster', force=True)
class WallFieldForecaster(GASPOccForecaster):
    """Test-only: the occupancy field is an analytic wall, occupied where x >= 10 + 5 t
    (confident logits, +-50), whatever the encoder computes."""

    def query(self, bev, queries, head):
        wall = queries[..., 0] >= WALL_X_M + WALL_SPEED_MPS * queries[..., 3]
        return wall.float() * 100.0 - 50.0


def small_forecaster_cfg(renderer, type='GASPOccForecaster', **kwargs):
    return dict(
        type=type,
        renderer=renderer,
        data_preprocessor=dict(
            type='GASPDataPreprocessor',
            point_cloud_range=RANGE,
            voxel_size=[1.0, 1.0, 1.0],
            num_past_sweeps=2,
            occupancy_sampler=None),
        backbone=dict(
            type='BEVResNetFPN',
            in_channels=8,
            out_channels=8,
            stem_channels=(8, 8),
            stage_channels=(8, 8, 8)),
        decoder=dict(
            type='ImplicitOccupancyDecoder',
            in_channels=8,
            point_cloud_range=RANGE,
            time_range=[0.0, 1.0],
            hidden_channels=16,
            num_res_blocks=1,
            heads=dict(occupancy=1)),
        losses=dict(occupancy=dict(type='OccupancyBCELoss')),
        **kwargs)


def ray_batch(origins, directions, times_s, depths=None):
    """One sample: a few past points and rays, as the packer gives them."""
    points = torch.zeros(10, 5)
    points[:, :3] = torch.rand(10, 3) * 4 - 2
    points[5:, 4] = -0.2
    rays = BaseDataElement(origins=origins, directions=directions, times_s=times_s)
    sample = BaseDataElement(metainfo=dict(log_id='log', timestamp_ns=0), query_rays=rays)
    if depths is not None:
        sample.set_field(
            BaseDataElement(origins=origins, directions=directions, times_s=times_s, depths=depths),
            'rays')
    return dict(inputs=dict(points=[points]), data_samples=[sample])


def fan_of_rays(angles_deg, origin=(0.0, 0.0, 1.0)):
    angles = torch.tensor(angles_deg) * math.pi / 180
    directions = torch.stack([angles.cos(), angles.sin(), torch.zeros_like(angles)], dim=1)
    return torch.tensor([origin]).repeat(len(angles), 1), directions


# ----------------------------------------------------------------------------- renderers


def test_expected_depth_of_a_wall_field_through_the_model():
    step = 0.2
    model = MODELS.build(
        small_forecaster_cfg(
            dict(
                type='ExpectedDepthRenderer',
                step=step,
                point_cloud_range=RANGE,
                min_transmittance=0.0),
            type='WallFieldForecaster',
            rays_per_render=3))  # several renderer calls per sample
    model.eval()
    angles = [0.0, 20.0, -40.0, 180.0, 0.0, 30.0]
    origins, directions = fan_of_rays(angles)
    times = torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0, 1.0])
    with torch.no_grad():
        out = model.test_step(ray_batch(origins, directions, times))[0]
    depth = out.pred_depths
    # The wall at x = 10 + 5 t along a ray at angle a: (10 + 5 t) / cos(a), within one step.
    cosines = torch.cos(torch.tensor(angles) * math.pi / 180)
    exact = (WALL_X_M + WALL_SPEED_MPS * times) / cosines
    hits = cosines > 0
    assert ((depth[hits] >= exact[hits] - 1e-4) &
            (depth[hits] <= exact[hits] + step)).all(), (depth, exact)
    # Backwards the ray meets no wall and ends at the region's exit, x = -20 m.
    assert depth[3].item() == pytest.approx(20.0, abs=1e-4)


def test_learned_renderer_learns_the_depth_of_two_walls():
    """UnO's renderer on a frozen field of two walls (x >= 10, y >= 6): after training on
    random rays its depths match the exact ones to well under a metre."""
    torch.manual_seed(0)
    renderer = MODELS.build(
        dict(
            type='LearnedDepthRenderer',
            num_samples=32,
            hidden_channels=32,
            max_depth=30.0,
            point_cloud_range=RANGE,
            field_output='probabilities'))

    def walls(points):
        return ((points[:, 0] >= 10.0) | (points[:, 1] >= 6.0)).float()

    def rays(n):
        angles = torch.rand(n) * 2 * math.pi
        directions = torch.stack([angles.cos(), angles.sin(), torch.zeros(n)], dim=1)
        origins = torch.zeros(n, 3)
        to_x = torch.where(directions[:, 0] > 0, 10.0 / directions[:, 0], torch.inf)
        to_y = torch.where(directions[:, 1] > 0, 6.0 / directions[:, 1], torch.inf)
        _, exit_ = ray_box_intersection(origins, directions, RANGE)
        return origins, directions, torch.minimum(torch.minimum(to_x, to_y), exit_)

    test_o, test_d, test_depth = rays(512)
    before = (renderer(walls, test_o, test_d, 0.0) - test_depth).abs().mean().item()
    optimizer = torch.optim.Adam(renderer.parameters(), lr=1e-2)
    for _ in range(120):
        o, d, depth = rays(128)
        loss = renderer.loss(renderer(walls, o, d, 0.0), depth)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        pred = renderer(walls, test_o, test_d, 0.0)
    after = (pred - test_depth).abs().mean().item()
    assert before > 3.0 and after < 0.5, (before, after)
    # Depths always lie on the ray's part inside the region.
    _, exit_ = ray_box_intersection(test_o, test_d, RANGE)
    assert ((pred >= 0) & (pred <= exit_ + 1e-4)).all()


def test_freeze_field_trains_only_the_renderer():
    renderer = dict(type='LearnedDepthRenderer', num_samples=16, point_cloud_range=RANGE)
    model = MODELS.build(small_forecaster_cfg(renderer, freeze_field=True))
    model.train()
    assert not model.backbone.training and not model.decoder.training
    assert model.renderer.training
    origins, directions = fan_of_rays([0.0, 45.0, 90.0])
    batch = ray_batch(origins, directions, torch.full((3, ), 0.4), torch.tensor([3.0, 5.0, 7.0]))
    data = model.data_preprocessor(batch, training=True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_depth'}
    losses['loss_depth'].backward()
    for name, param in model.named_parameters():
        if name.startswith('renderer.'):
            assert param.grad is not None and param.requires_grad, name
        else:
            assert param.grad is None and not param.requires_grad, name
    # A renderer without parameters has nothing to train.
    with pytest.raises(ValueError, match='no parameters'):
        MODELS.build(small_forecaster_cfg(dict(type='ExpectedDepthRenderer'), freeze_field=True))


# ----------------------------------------------------------------------------- dataset


def test_dataset_frames_and_rays_match_the_benchmark(synthetic_av2_root):
    root = str(synthetic_av2_root)
    dataset = AV2OccForecastingDataset(
        data_root=root,
        split='val',
        horizons=[1],
        pipeline=[
            dict(type='LoadPastSweeps'),
            dict(type='LoadOccForecastingQueries'),
            dict(type='PackOccForecastingInputs')
        ])
    frames = generate_query_frames(root, 'val', get_protocol(1))
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    assert [(d['log_id'], d['timestamp_ns']) for d in infos] == [(f.log_id, f.timestamp_ns)
                                                                 for f in frames]
    packed = dataset[1]
    sample, frame = packed['data_samples'], frames[1]
    assert sample.horizon == '1s' and sample.timestamp_ns == frame.timestamp_ns
    for k in range(len(frame.depths)):
        np.testing.assert_array_equal(sample.gt_depths[k], frame.depths[k])
        np.testing.assert_array_equal(sample.directions[k], frame.directions[k])
    # The model's rays end on the returns of the future sweeps, moved into the ego frame at
    # t = 0 straight from the files; their times are the sweeps' offsets from t = 0.
    rays = sample.query_rays
    ends = (rays.origins + rays.directions *
            torch.from_numpy(np.concatenate(sample.gt_depths))[:, None]).double().numpy()
    info = dataset.get_data_info(1)
    ref_from_ego = ref_from_ego_at(info['log'], frame.future_timestamps_ns, frame.timestamp_ns)
    log_dir = Path(root) / info['log']['log_dir']
    for k, stamp in enumerate(frame.future_timestamps_ns):
        mine = ends[rays.step_index.numpy() == k]
        xyz = read_sweep(lidar_path(log_dir, stamp), frame.log_id)['xyz_ego'].astype(np.float64)
        returns_ref = transform_points(ref_from_ego[k], xyz)
        gap = np.linalg.norm(mine[:, None] - returns_ref[None], axis=2).min(1)
        assert gap.max() < 1e-3, (k, gap.max())
        times = rays.times_s[rays.step_index == k]
        assert torch.allclose(times, torch.tensor(0.2 * (k + 1)), atol=0.01)
    # The model's input sweeps: 5 at 0.2 s, ending at t = 0.
    past = np.array(info['past_timestamps_ns'])
    np.testing.assert_allclose(
        (past - frame.timestamp_ns) * 1e-9, [-0.8, -0.6, -0.4, -0.2, 0.0], atol=0.01)
    assert packed['inputs']['points'][:, 4].min().item() == pytest.approx(-0.8, abs=0.01)


# ----------------------------------------------------------------------------- tools/test.py


def _test_args(root, checkpoint, work_dir):
    return [
        'configs/gasp_synthetic_occ_forecasting.py',
        str(checkpoint), '--work-dir',
        str(work_dir), '--cfg-options', f'test_dataloader.dataset.data_root={root}/',
        'test_dataloader.num_workers=0', 'test_dataloader.dataset.max_frames_per_log=2'
    ]


@pytest.fixture(scope='module')
def one_process_run(synthetic_av2_root, tmp_path_factory):
    """A randomly initialised checkpoint of the synthetic config, tested in this process by
    tools/test.py; returns (checkpoint, work dir)."""
    from mmengine.config import Config
    out = tmp_path_factory.mktemp('occ_forecasting_test')
    cfg = Config.fromfile(str(REPO / 'configs/gasp_synthetic_occ_forecasting.py'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    buffer = io.BytesIO()
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), buffer)
    checkpoint = atomic_write_bytes(out / 'random_init.pth', buffer.getvalue())

    work_dir = out / 'one_process'
    argv, cwd, path = sys.argv, os.getcwd(), list(sys.path)
    sys.argv = ['tools/test.py'] + _test_args(synthetic_av2_root, checkpoint, work_dir)
    sys.path.insert(0, str(REPO / 'tools'))
    try:
        os.chdir(REPO)
        import runpy
        runpy.run_path(str(REPO / 'tools/test.py'), run_name='__main__')
    finally:
        sys.argv, sys.path[:] = argv, path
        os.chdir(cwd)
    return checkpoint, work_dir


def test_tools_test_writes_finite_metrics_and_pictures(one_process_run):
    _, work_dir = one_process_run
    report = json.loads((work_dir / 'occ_forecasting_1s.json').read_text())
    metrics = report['metrics']
    assert set(metrics) == {'L1', 'AbsRel', 'CD', 'NFCD'}
    assert all(math.isfinite(v) and v >= 0 for v in metrics.values()), metrics
    # Tiny val: one 3 s log has 3 frames at 1 s; 2 kept (max_frames_per_log), 5 steps each.
    assert report['horizon'] == '1s' and report['num_rows'] == 2 * 5
    assert {r['step'] for r in report['rows']} == set(range(5))
    # The means are over (log, frame, step) rows.
    assert metrics['L1'] == pytest.approx(np.mean([r['L1'] for r in report['rows']]))
    pictures = list((work_dir / 'occ_forecasting_vis').glob('1s_*.png'))
    assert len(pictures) == 2 and all(p.stat().st_size > 10_000 for p in pictures)


def test_dist_test_with_two_gloo_processes_matches_one_process(one_process_run, tmp_path,
                                                               synthetic_av2_root):
    checkpoint, one_dir = one_process_run
    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(('127.0.0.1', 0))
        port = str(probe.getsockname()[1])
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable, PORT=port)
    result = subprocess.run(
        [
            'bash', 'tools/dist_test.sh', 'configs/gasp_synthetic_occ_forecasting.py',
            str(checkpoint), "2"
        ] + _test_args(synthetic_av2_root, checkpoint, tmp_path)[2:],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env=env)
    assert result.returncode == 0, (f'exit {result.returncode}\n{result.stdout[-3000:]}\n'
                                    f'{result.stderr[-3000:]}')
    assert 'gloo' in result.stdout + result.stderr
    one = json.loads((one_dir / 'occ_forecasting_1s.json').read_text())
    two = json.loads((tmp_path / 'occ_forecasting_1s.json').read_text())
    assert two['num_rows'] == one['num_rows']
    for name, value in one['metrics'].items():
        assert two['metrics'][name] == pytest.approx(value, rel=1e-5), name


def test_av2_configs_score_both_horizons_and_freeze_the_field_for_the_learned_renderer():
    from mmengine.config import Config
    cfg = Config.fromfile(str(REPO / 'configs/gasp_av2_occ_forecasting.py'))
    assert cfg.test_dataloader.dataset.horizons == [1, 3]
    assert [(m['horizon'], m['prefix'])
            for m in cfg.test_evaluator] == [('1s', 'occ_forecasting_1s'),
                                             ('3s', 'occ_forecasting_3s')]
    assert cfg.model.renderer.type == 'ExpectedDepthRenderer' and cfg.model.renderer.step == 0.2
    learned = Config.fromfile(str(REPO / 'configs/gasp_av2_occ_forecasting_learned_renderer.py'))
    model = MODELS.build(learned.model)
    trainable = {name.split('.')[0] for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {'renderer'}
    assert learned.train_dataloader.dataset.pipeline[1]['type'] == 'LoadFutureRays'
