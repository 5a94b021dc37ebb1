"""tools/train.py and tools/dist_train.sh on the synthetic world (CPU, gloo)."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gasp.datasets import SampleTiming, create_av2_infos

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def train_cfg(synthetic_av2_root, tmp_path_factory):
    """A short-run config over the tiny synthetic world."""
    out = tmp_path_factory.mktemp('launch')
    create_av2_infos(
        str(synthetic_av2_root),
        str(out / 'infos'),
        splits=['train', 'val'],
        timing=SampleTiming(future_horizon_s=1.0))
    cfg = out / 'short.py'
    root = str(synthetic_av2_root) + '/'
    train_info, val_info = (str(out / f'infos/av2_occ_infos_{s}.pkl') for s in ('train', 'val'))
    cfg.write_text(f"""
_base_ = [{str(REPO / 'configs/gasp_synthetic_demo.py')!r}]
# No target caches here: occupancy and ego fields only.
_pipeline = [dict(type='LoadPastSweeps'), dict(type='LoadFutureRays', max_rays_per_sweep=512),
             dict(type='LoadFutureEgoPath'), dict(type='PackGASPInputs')]
train_dataloader = dict(batch_size=1, num_workers=0, dataset=dict(
    data_root={root!r}, ann_file={train_info!r}, pipeline=_pipeline))
val_dataloader = dict(num_workers=0, dataset=dict(
    data_root={root!r}, ann_file={val_info!r}, max_samples=2, pipeline=_pipeline))
test_dataloader = val_dataloader
model = dict(data_preprocessor=dict(occupancy_sampler=dict(num_queries=1024,
                                                         missing_ray_fraction=0.0),
                                    ego_sampler=dict(num_queries=256), num_feature_queries=0),
             decoder=dict(heads=dict(_delete_=True, occupancy=1, ego=1)),
             losses=dict(_delete_=True, occupancy=dict(type='OccupancyBCELoss'),
                         ego=dict(type='OccupancyBCELoss')))
train_cfg = dict(max_iters=4, val_interval=100)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False))
custom_hooks = [dict(type='RankConsistencyHook')]
randomness = dict(seed=0)
""")
    return cfg


def _run(cmd, **env):
    full_env = dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable, **env)
    result = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, timeout=900, env=full_env)
    log = result.stdout + result.stderr
    assert result.returncode == 0, (f'exit {result.returncode}\n--- stdout (tail) ---\n'
                                    f'{result.stdout[-3000:]}\n--- stderr (tail) ---\n'
                                    f'{result.stderr[-3000:]}')
    return log


def _losses(log):
    return {
        int(m.group(1)): float(m.group(2))
        for m in re.finditer(r'Iter\(train\) \[\s*(\d+)/\d+\].*?\bloss: ([0-9.]+)', log)
    }


def test_two_gloo_processes_train_and_agree(train_cfg, tmp_path):
    # One loader worker per rank: batches come through each rank's own batch slots.
    log = _run([
        'bash', 'tools/dist_train.sh',
        str(train_cfg), '2', '--work-dir',
        str(tmp_path), '--cfg-options', 'train_cfg.max_iters=3', 'train_dataloader.num_workers=1'
    ],
               PORT='29517')
    assert 'gloo' in log
    report = json.loads((tmp_path / 'rank_consistency.json').read_text())
    assert report['world_size'] == 2 and report['iter'] == 3
    assert report['identical'] and report['max_abs_diff'] == 0.0
    assert sorted(_losses(log)) == [1, 2, 3]
    # The checkpoint (saved by rank 0 alone) holds the random states of both ranks.
    import torch
    states = torch.load(tmp_path / 'iter_2.pth', weights_only=True)['random_states']
    assert len(states) == 2 and all({'python', 'numpy', 'torch'} <= set(s) for s in states)


def test_resume_continues_iterations_and_loss(train_cfg, tmp_path):
    first = _run([
        sys.executable, 'tools/train.py',
        str(train_cfg), '--work-dir',
        str(tmp_path), '--cfg-options', 'train_cfg.max_iters=2'
    ])
    assert (tmp_path / 'iter_2.pth').exists()
    resumed = _run(
        [sys.executable, 'tools/train.py',
         str(train_cfg), '--work-dir',
         str(tmp_path), '--resume'])
    assert 'resumed' in resumed.lower() and 'iter_2.pth' in resumed
    before, after = _losses(first), _losses(resumed)
    assert sorted(before) == [1, 2] and sorted(after) == [3, 4]
    # The resumed run starts from the trained weights: its loss is in the same range.
    assert abs(after[3] - before[2]) < 0.5
