"""Registering the plugin from a config, the way a user's own config does it."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

REPO = Path(__file__).resolve().parents[1]


def test_runtime_config_inherits_mmdet3d_and_imports_gasp():
    cfg = Config.fromfile(REPO / 'configs/_base_/default_runtime.py')
    assert cfg.custom_imports == dict(imports=['gasp'], allow_failed_imports=False)
    # Values that come from mmdet3d::_base_/default_runtime.py.
    assert cfg.default_scope == 'mmdet3d'
    assert cfg.default_hooks.checkpoint.type == 'CheckpointHook'
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'


@pytest.mark.parametrize('name', ['gasp_av2', 'uno_av2', 'gasp_nus', 'uno_nus'])
def test_pretraining_configs_checkpoint_and_log_by_iteration(name):
    """mmdet3d's runtime saves no checkpoint before the end (interval -1) and logs by epoch;
    GASP's schedules count iterations."""
    cfg = Config.fromfile(REPO / f'configs/{name}.py')
    checkpoint = cfg.default_hooks.checkpoint
    assert checkpoint.by_epoch is False
    assert 0 < checkpoint.interval < cfg.train_cfg.max_iters
    assert checkpoint.interval % cfg.train_cfg.val_interval == 0  # a checkpoint per validation
    assert cfg.log_processor.by_epoch is False
    assert cfg.default_hooks.runtime_info.type == 'DeferredRuntimeInfoHook'


def test_dist_benchmark_config_trains_without_epochs_or_validation_and_checks_ranks():
    cfg = Config.fromfile(REPO / 'configs/gasp_av2_dist_benchmark.py')
    assert cfg.train_dataloader.sampler == dict(type='InfiniteSampler', shuffle=True)
    assert cfg.train_dataloader.batch_size == 8 and cfg.train_cfg.max_iters == 300
    assert cfg.val_cfg is None and cfg.val_dataloader is None
    assert dict(type='RankConsistencyHook', interval=100) in cfg.custom_hooks
    assert cfg.model.type == 'GASP' and 'feature' in cfg.model.losses  # gasp_av2.py's model


def test_openmmlab_stack_imports():
    import mmdet3d.datasets  # noqa: F401
    import mmdet3d.models  # noqa: F401
    import mmpretrain.models  # noqa: F401
    from mmcv.ops import Voxelization
    points = torch.tensor([[0.1, 0.1, 0.1, 1.0], [0.15, 0.12, 0.1, 1.0], [1.1, 0.1, 0.1, 1.0]])
    voxels, coors, counts = Voxelization(
        voxel_size=[0.5, 0.5, 4],
        point_cloud_range=[0, 0, -2, 2, 2, 2],
        max_num_points=4,
        max_voxels=10)(
            points)
    assert sorted(counts.tolist()) == [1, 2]  # mmcv's compiled CPU op works


def test_user_config_registers_plugin(tmp_path):
    user_cfg = tmp_path / 'my_experiment.py'
    user_cfg.write_text("_base_ = ['mmdet3d::_base_/default_runtime.py']\n"
                        "custom_imports = dict(imports=['gasp'], allow_failed_imports=False)\n"
                        "log_level = 'DEBUG'\n")
    cfg = Config.fromfile(user_cfg)
    assert cfg.log_level == 'DEBUG'
    assert cfg.default_scope == 'mmdet3d'
    import sys
    assert 'gasp' in sys.modules


def test_custom_imports_register_gasp_into_mmdet3d_registries(tmp_path):
    """In a fresh interpreter, only the config's custom_imports bring GASP in."""
    import subprocess
    import sys
    user_cfg = tmp_path / 'cfg.py'
    user_cfg.write_text("_base_ = ['mmdet3d::_base_/default_runtime.py']\n"
                        "custom_imports = dict(imports=['gasp'], allow_failed_imports=False)\n")
    script = f"""
import sys
import torch
import torch
from mmengine.config import Config
from mmdet3d.registry import DATASETS, HOOKS, METRICS, MODELS, TASK_UTILS, TRANSFORMS
assert MODELS.get('BEVResNetFPN') is None
Config.fromfile({str(user_cfg)!r})
assert 'gasp' in sys.modules
assert DATASETS.get('AV2OccDataset') is not None
assert TRANSFORMS.get('LoadFutureRays') is not None
assert TASK_UTILS.get('OccupancyQuerySampler') is not None
assert METRICS.get('OccupancyFieldMetric') is not None
assert METRICS.get('OccForecastingMetric') is not None
assert HOOKS.get('FieldVisualizationHook') is not None
assert MODELS.get('GASP') is not None
encoder = MODELS.build(dict(type='BEVResNetFPN', in_channels=3, out_channels=16,
                            stem_channels=(8, 8), stage_channels=(8, 8, 8)))
out = encoder(torch.zeros(1, 3, 32, 32))[0]
print(tuple(out.shape))
"""
    result = subprocess.run([sys.executable, '-c', script],
                            capture_output=True,
                            text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == '(1, 16, 8, 8)'


def test_gasp_config_logs_to_local_tensorboard_and_offline_wandb(tmp_path, monkeypatch):
    """The visualizer of configs/gasp_av2.py writes scalars to all three backends offline."""
    import json

    from mmdet3d.registry import VISUALIZERS
    from mmengine.visualization import Visualizer

    import gasp  # noqa: F401
    monkeypatch.setenv('WANDB_SILENT', 'true')
    monkeypatch.chdir(tmp_path)
    cfg = Config.fromfile(Path(__file__).parents[1] / 'configs/gasp_av2.py')
    vis_cfg = dict(cfg.visualizer, save_dir=str(tmp_path / 'vis'), name='vis_backends_test')
    visualizer = VISUALIZERS.build(vis_cfg)
    try:
        visualizer.add_scalars({'loss': 0.25}, step=3)
        backends = [type(b).__name__ for b in visualizer._vis_backends.values()]
        assert backends == ['LocalVisBackend', 'TensorboardVisBackend', 'WandbVisBackend']
    finally:
        visualizer.close()
        Visualizer._instance_dict.pop('vis_backends_test', None)
    vis_data = tmp_path / 'vis' / 'vis_data'
    scalars = [json.loads(line) for line in (vis_data / 'scalars.json').read_text().splitlines()]
    assert scalars == [{'loss': 0.25, 'step': 3}]
    assert list(vis_data.glob('events.out.tfevents.*'))
    assert list((vis_data / 'wandb').glob('offline-run-*'))
