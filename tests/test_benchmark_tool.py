"""``tools/benchmark.py`` on CPU: FLOP / byte accounting of a tiny GASP model against
hand-computed layer costs, the floor arithmetic, the in-memory AV2-count batches, the trace
arithmetic, and the data mode's runner and measurement windows."""
import copy
import importlib.util
import os

import pytest
import torch
from mmengine.model import BaseModel

import gasp  # noqa: F401  (registers the GASP modules)
from gasp.datasets.collate import unpack_batch

_TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tools', 'benchmark.py')
_spec = importlib.util.spec_from_file_location('gasp_benchmark_tool', _TOOL)
benchmark = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(benchmark)

RANGE = [-8.0, -8.0, -2.0, 8.0, 8.0, 2.0]
QUERIES = 64


def tiny_model():
    from mmdet3d.registry import MODELS
    return MODELS.build(
        dict(
            type='GASP',
            data_preprocessor=dict(
                type='GASPDataPreprocessor',
                point_cloud_range=RANGE,
                voxel_size=[0.5, 0.5, 1.0],
                num_past_sweeps=2,
                occupancy_sampler=dict(type='OccupancyQuerySampler', num_queries=QUERIES)),
            backbone=dict(
                type='BEVResNetFPN',
                in_channels=2 * 4,
                stem_channels=(8, ),
                stem_strides=(1, ),
                stage_channels=(8, 16),
                stage_blocks=(1, 1),
                stage_strides=(2, 2),
                out_channels=16),
            decoder=dict(
                type='ImplicitOccupancyDecoder',
                in_channels=16,
                point_cloud_range=RANGE,
                hidden_channels=32,
                num_heads=2,
                num_points=3,
                num_res_blocks=1,
                heads=dict(occupancy=1)),
            losses=dict(occupancy=dict(type='OccupancyBCELoss'))))


def tiny_counts():
    return dict(
        past_sweeps=2,
        past_interval_s=0.2,
        points_per_sweep=500,
        future_sweeps=3,
        rays_per_sweep=40,
        missing_rays_per_sweep=0,
        feature_points_per_sweep=0,
        feature_dim=0,
        horizon_s=0.6)


@pytest.fixture(scope='module')
def prepared():
    torch.manual_seed(0)
    model = tiny_model().train()
    data = benchmark.synthetic_batch(tiny_counts(), 2, torch.Generator().manual_seed(1))
    inputs = model.data_preprocessor(data, training=True)['inputs']
    return model, data, inputs


def test_synthetic_batch_has_the_counts_and_feeds_the_preprocessor(prepared):
    model, packed, inputs = prepared
    # The batch is gasp_collate's (one tensor per field); per sample once unpacked.
    # points, 4 ray fields, 3 ego-path fields, the footprint
    assert len(list(packed['packed'].keys())) == 9
    data = unpack_batch(copy.deepcopy(packed))
    assert len(data['inputs']['points']) == 2
    points = data['inputs']['points'][0]
    assert points.shape == (2 * 500, 5) and torch.isfinite(points).all()
    torch.testing.assert_close(points[:, 4].unique(), torch.tensor([-0.2, 0.0]))
    rays = data['data_samples'][0].rays
    assert rays.depths.shape == (3 * 40, ) and (rays.depths > 0).all()
    torch.testing.assert_close(rays.directions.norm(dim=1), torch.ones(120))
    assert inputs['bev'].shape == (2, 2 * 4, 32, 32) and inputs['bev'].sum() > 0
    assert inputs['targets']['occupancy']['queries'].shape == (2, QUERIES, 4)
    # Packed bytes: points (2 x 1000 x 5 fp32) + rays (120 x (3 + 3 + 1 + 1) fp32) + ego path
    # (7 knots x 4 fp32) + footprint (4 fp32), per sample.
    per_sample = 1000 * 5 * 4 + 120 * 8 * 4 + 7 * 4 * 4 + 4 * 4
    assert benchmark.batch_bytes(data) == benchmark.batch_bytes(packed) == 2 * per_sample


def test_sample_counts_of_the_gasp_av2_config():
    cfg = benchmark.load_config('configs/gasp_av2.py')
    counts = benchmark.sample_counts(cfg, 100_000)
    assert counts == dict(
        past_sweeps=5,
        past_interval_s=0.2,
        points_per_sweep=100_000,
        future_sweeps=15,
        rays_per_sweep=8192,
        missing_rays_per_sweep=4096,
        feature_points_per_sweep=4096,
        feature_dim=64,
        horizon_s=3.0)


def test_layer_flops_and_bytes_match_hand_counts(prepared):
    model, _, inputs = prepared
    records = benchmark.count_step_work(model, inputs)
    convs = [r for r in records if r['kind'] == 'Conv2d']
    linears = [r for r in records if r['kind'] == 'Linear']
    gathers = [r for r in records if r['kind'] == 'deformable_bev_gather']
    num_convs = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert len(convs) == num_convs  # every conv runs once
    assert all(r['phase'] == 'encoder' for r in convs)
    assert all(r['phase'] == 'decoder' for r in linears + gathers)

    # The stem: 3x3 conv, 8 -> 8 channels on the 32 x 32 grid of 2 samples, fp32; its input
    # (the voxel grid) needs no gradient, so the backward computes only the weight gradient.
    stem = convs[0]
    assert stem['name'] == 'backbone.stem.0.conv'
    flops = 2 * (2 * 8 * 32 * 32) * 8 * 9
    assert stem['fwd_flops'] == flops and stem['bwd_flops'] == flops
    activation = 2 * 8 * 32 * 32 * 4
    assert stem['fwd_bytes'] == 2 * activation + 8 * 8 * 9 * 4
    assert stem['bwd_bytes'] == 2 * activation + 8 * 8 * 9 * 4
    # A 1x1 lateral conv of the second stage: 16 -> 16 channels on 8 x 8, input needs grad.
    lateral = next(r for r in convs if r['name'] == 'backbone.laterals.1.conv')
    assert lateral['fwd_flops'] == 2 * (2 * 16 * 8 * 8) * 16
    assert lateral['bwd_flops'] == 2 * lateral['fwd_flops']

    # Decoder: the first query-MLP layer reads the centre feature (16) + embedding per query.
    in_features = 16 + model.decoder.embedding.out_channels
    first = next(r for r in linears if r['name'] == 'decoder.query_mlp.0')
    assert first['fwd_flops'] == 2 * (2 * QUERIES * 32) * in_features
    # Two gathers per decoder call: the centre read (1 head x 1 point) and the sampled one
    # (2 heads x 3 points), both over the (2, 16, 16, 16) map (output stride 2).
    assert [g['name'] for g in gathers] == ['gather 1x1 points', 'gather 2x3 points']
    bev_bytes = 2 * 16 * 16 * 16 * 4
    sampled = gathers[1]
    small = 2 * QUERIES * 2 * 3 * 2 * 4 + 2 * QUERIES * 2 * 3 * 4  # locations + weights
    assert sampled['fwd_bytes'] == bev_bytes + small + 2 * QUERIES * 16 * 4
    assert sampled['fwd_flops'] == 2 * (2 * QUERIES * 16) * 3 * 4


def test_floor_is_the_roofline_sum_of_the_records(prepared):
    model, data, inputs = prepared
    records = benchmark.count_step_work(model, inputs)
    # 1 FLOP per ms and 1 byte per ms: a call's floor is max(FLOPs, bytes) ms.
    ceilings = dict(bf16_matmul_tflop_s=1e-9, copy_gb_s=1e-6, h2d_pinned_gb_s=1e-6 / 2)
    floor = benchmark.step_floor(records, inputs, model, ceilings, h2d_bytes=1000)
    phases = floor['phases']
    encoder = sum(max(r['fwd_flops'], r['fwd_bytes']) for r in records if r['phase'] == 'encoder')
    backward = sum(max(r['bwd_flops'], r['bwd_bytes']) for r in records)
    assert phases['encoder']['ms'] == pytest.approx(encoder)
    assert phases['backward']['ms'] == pytest.approx(backward)
    assert phases['h2d']['ms'] == pytest.approx(2000)
    num_params = sum(p.numel() for p in model.parameters())
    assert phases['optimizer']['ms'] == pytest.approx(32 * num_params)
    grid_bytes = 2 * 8 * 32 * 32 * 4
    assert phases['preprocess']['bytes'] == grid_bytes + 2 * 1000 * 5 * 4
    assert floor['total_ms'] == pytest.approx(sum(p['ms'] for p in phases.values()))


def test_busy_time_is_the_union_of_kernel_intervals():
    # Two streams overlap on [2, 3]; holes at [4, 6] and [7, 10].
    intervals = [(0.0, 3.0), (2.0, 4.0), (6.0, 7.0), (10.0, 10.5)]
    assert benchmark._union_us(intervals) == pytest.approx(5.5)
    assert benchmark._gaps_us(intervals) == pytest.approx([2.0, 3.0])
    assert benchmark._gaps_us([(0.0, 5.0), (1.0, 2.0), (4.0, 6.0)]) == []


def test_host_activity_in_gaps_names_what_ran_while_the_gpu_idled():
    events = [
        dict(cat='kernel', ts=0.0, dur=1000.0),
        dict(cat='kernel', ts=4000.0, dur=1000.0),  # 3 ms gap [1000, 4000]
        dict(cat='kernel', ts=5500.0, dur=100.0),  # 0.5 ms gap: too short to count
        # Main thread: an op covering [1500, 2500] of the gap, then nothing.
        dict(cat='cpu_op', name='aten::copy_', tid=7, ts=1500.0, dur=1000.0),
        # Another thread (pin memory): one op across the whole gap and beyond.
        dict(cat='cpu_op', name='aten::pin_memory', tid=9, ts=500.0, dur=4000.0),
        dict(cat='cpu_op', name='aten::add', tid=7, ts=4100.0, dur=100.0),  # not in a gap
        dict(cat='user_annotation', name=benchmark.STEP_LABEL, tid=7, ts=0.0, dur=6000.0),
    ]
    found = benchmark.host_activity_in_gaps(events)  # the main thread: the annotated one
    assert found['gaps'] == 1 and found['gap_ms'] == pytest.approx(3.0)
    # The main thread ran an op for 1 of the 3 ms.
    assert found['main_thread_without_op_share'] == pytest.approx(2 / 3)
    by_op = {(row['thread'], row['op']): row['ms'] for row in found['ops_in_gaps_ms']}
    assert by_op == {
        ('other', 'aten::pin_memory'): pytest.approx(3.0),
        ('main', 'aten::copy_'): pytest.approx(1.0)
    }


class _Recorder:
    """Stands in for the probe's windows (which need a GPU): records when it was called."""

    def __init__(self, calls, name, result=None):
        self.calls, self.name, self.result, self.iteration = calls, name, result, None

    def __getattr__(self, method):
        if method.startswith('__'):
            raise AttributeError(method)

        def record(*args, **kwargs):
            self.calls.append((self.name, method, self.iteration()) + args)
            return self.result

        return record


class _Numbers(torch.utils.data.Dataset):

    def __len__(self):
        return 32

    def __getitem__(self, index):
        return dict(inputs=torch.tensor([float(index)]))


class _Fit(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(1, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return dict(loss=self.fc(torch.stack(inputs)).pow(2).mean())


def test_fed_step_probe_measures_the_chosen_iterations(tmp_path):
    from mmengine.runner import Runner
    runner = Runner(
        model=_Fit(),
        work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=_Numbers(),
            sampler=dict(type='InfiniteSampler', shuffle=False),
            collate_fn=dict(type='pseudo_collate'),
            batch_size=2,
            num_workers=0),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=7),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=100)),
        default_scope='mmdet3d',
        experiment_name='fed_step_probe')
    probe = benchmark.FedStepProbe(warmup=2, steps=3, profile_steps=2, trace_path=None)
    calls = []
    probe.kernels = _Recorder(calls, 'kernels', result=(0.5, 1.0, {}))
    probe.host = _Recorder(calls, 'host', result={'gaps': 0})
    probe.kernels.iteration = probe.host.iteration = lambda: runner.iter
    runner.register_hook(probe.hook())
    runner.train()
    # The kernel window opens at the end of iteration 1 (so it holds the data fetch of
    # iteration 2) and closes after iteration 4: 3 measured iterations. The host profile
    # then covers iterations 5 and 6, each one marked step.
    assert calls == [
        ('kernels', 'start', 1),
        ('kernels', 'stop', 4, 3),
        ('host', 'start', 4),
        ('host', 'begin_step', 5),
        ('host', 'end_step', 5),
        ('host', 'begin_step', 6),
        ('host', 'end_step', 6),
        ('host', 'stop', 6),
    ]
    assert len(probe.waits) == 3 and all(w >= 0 for w in probe.waits)
    # The replayed batch is iteration 1's, taken before the window opens.
    assert [float(x) for x in probe.first_batch['inputs']] == [2.0, 3.0]
    assert probe.result == (0.5, 1.0, {}) and probe.host_profile == {'gaps': 0}


def test_data_mode_trains_through_the_runner_of_train_py_amp(tmp_path):
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet3d')
    cfg = benchmark.load_config(
        os.path.join(os.path.dirname(_TOOL), '..', 'configs', 'gasp_av2.py'))
    runner = benchmark.training_runner(
        cfg, cfg.train_dataloader.dataset, batch_size=8, num_workers=3, iters=40, work_dir=tmp_path)
    hooks = [type(h).__name__ for h in runner.hooks]
    for name in ('DeferredRuntimeInfoHook', 'NonFiniteGuardHook', 'RandomStateHook',
                 'SkippedSamplesHook', 'LoggerHook'):
        assert name in hooks
    assert runner.optim_wrapper['type'] == 'SyncFreeOptimWrapper'
    assert runner.optim_wrapper['dtype'] == 'bfloat16'
    assert runner.optim_wrapper['optimizer']['fused'] is True
    assert runner._train_loop['max_iters'] == 40
    assert runner._val_loop is None
    loader = runner._train_dataloader
    assert (loader['batch_size'], loader['num_workers'],
            loader['sampler']['type']) == (8, 3, 'InfiniteSampler')


def test_step_mode_builds_the_wrapper_of_train_py_amp():
    from mmengine.registry import DefaultScope
    cfg = benchmark.load_config(
        os.path.join(os.path.dirname(_TOOL), '..', 'configs', 'gasp_av2.py'))
    with DefaultScope.overwrite_default_scope('mmengine'):  # as a fresh `benchmark.py step`
        model, optim_wrapper = benchmark.build_training(cfg, 'cpu', amp=True)
    assert type(optim_wrapper).__name__ == 'SyncFreeOptimWrapper'
    assert optim_wrapper.cast_dtype == torch.bfloat16 and optim_wrapper.skips_on_device
    assert model.training
