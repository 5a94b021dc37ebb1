"""Reliability: the dataset checker and the loader on a fault-injected synthetic world, the
non-finite guard through the mmengine Runner, the skipped-sample count."""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.structures import BaseDataElement
from torch.utils.data import Dataset

from gasp.datasets import AV2DataError, AV2OccDataset, SampleTiming, create_av2_infos
from gasp.datasets.dataset_check import check_dataset, may_train, problems_to_json
from gasp.engine import NonFiniteLossError, SkippedSamplesHook
from gasp.fileio import save_npz_atomic
from gasp.targets.cache_manifest import write_or_check_manifest
from gasp.targets.feature_cache import FEATURES_KIND, feature_cache_path

REPO = Path(__file__).resolve().parents[1]
TIMING = SampleTiming(future_horizon_s=1.0)


def _sweeps(log_dir):
    return sorted((log_dir / 'sensors' / 'lidar').glob('*.feather'), key=lambda p: int(p.stem))


@pytest.fixture(scope='module')
def faulty_world(synthetic_av2_root, tmp_path_factory):
    """A copy of the tiny world with one fault of each kind, the infos made before the
    faults (as on a disk that went bad after create_data), and a feature cache."""
    root = tmp_path_factory.mktemp('faulty') / 'world'
    shutil.copytree(synthetic_av2_root, root)
    infos = create_av2_infos(str(root), str(root / 'infos'), splits=['train', 'val'], timing=TIMING)
    log_a, log_b = sorted((root / 'sensor' / 'train').iterdir())
    val_log = next((root / 'sensor' / 'val').iterdir())
    sweeps_a, sweeps_b = _sweeps(log_a), _sweeps(log_b)
    faults = dict(log_a=log_a.name, log_b=log_b.name, val_log=val_log.name)

    truncated = sweeps_a[9]  # reference sweep of sample 1, past sweep of samples 3, 5, 7, ...
    truncated.write_bytes(truncated.read_bytes()[:200])
    faults['truncated'] = int(truncated.stem)

    nan_sweep = sweeps_a[20]
    frame = pd.read_feather(nan_sweep)
    frame.loc[3, 'x'] = np.float16('nan')
    frame.to_feather(nan_sweep)
    faults['nan'] = int(nan_sweep.stem)

    far_sweep = sweeps_a[24]
    frame = pd.read_feather(far_sweep)
    frame.loc[0, 'z'] = np.float16(5000.0)
    frame.to_feather(far_sweep)
    faults['absurd'] = int(far_sweep.stem)

    poses = pd.read_feather(log_a / 'city_SE3_egovehicle.feather')
    faults["no_pose"] = int(sweeps_a[27].stem)
    poses[poses.timestamp_ns != faults['no_pose']].reset_index(drop=True).to_feather(
        log_a / 'city_SE3_egovehicle.feather')

    wrong = sweeps_b[5]
    frame = pd.read_feather(wrong)
    frame['x'] = frame['x'].astype(np.float32)
    frame.to_feather(wrong)
    faults['wrong_dtype'] = int(wrong.stem)
    shutil.rmtree(log_b / 'sensors' / 'cameras' / 'ring_rear_left')

    for path in _sweeps(val_log)[10:]:  # 1 s left: too short for 0.8 s past + 1 s future
        path.unlink()

    # A feature cache for the train samples' future sweeps, with one stale file (another
    # cache's id), one whose point indices exceed its sweep, one missing file.
    cache = root / 'features'
    cache_id = write_or_check_manifest(cache, FEATURES_KIND, dict(version=1), 'make it')
    train = pd.read_pickle(infos['train'])
    sweeps = sorted({(s['log_id'], t)
                     for s in train['data_list']
                     for t in s['future_timestamps_ns']})
    for k, (log_id, stamp) in enumerate(sweeps):
        if k == 2:
            continue
        save_npz_atomic(
            feature_cache_path(cache, log_id, stamp),
            features=np.zeros((4, 8), np.float16),
            point_index=np.array([0, 1, 2, 10**7 if k == 1 else 3], np.int32),
            camera_index=np.zeros(4, np.uint8),
            cache_id=np.array('0123456789abcdef' if k == 0 else cache_id))
    faults.update(stale=sweeps[0], beyond=sweeps[1], uncached=sweeps[2])
    return root, infos, faults


def _find(problems, kind, **where):
    return [
        p for p in problems if p.kind == kind and all(getattr(p, k) == v for k, v in where.items())
    ]


def test_checker_reports_every_injected_fault(faulty_world):
    root, infos, f = faulty_world
    problems = check_dataset(
        root,
        info_files=[infos['train'], infos['val']],
        splits=['train', 'val'],
        timing=TIMING,
        feature_cache=str(root / 'features'))
    assert not may_train(problems)
    a, b = f['log_a'], f['log_b']
    truncated = _find(problems, 'unreadable_file', log_id=a, timestamp_ns=f['truncated'])
    assert len(truncated) == 1 and truncated[0].path.endswith(f"{f['truncated']}.feather")
    nan = _find(problems, 'nonfinite_points', log_id=a, timestamp_ns=f['nan'])
    assert len(nan) == 1 and nan[0].message.startswith('1 points')
    assert len(_find(problems, 'absurd_points', log_id=a, timestamp_ns=f['absurd'])) == 1
    no_pose = _find(problems, 'missing_pose_row', log_id=a, timestamp_ns=f['no_pose'])
    assert len(no_pose) == 1 and '1 lidar timestamps' in no_pose[0].message
    wrong = _find(problems, 'wrong_dtypes', log_id=b, timestamp_ns=f['wrong_dtype'])
    assert len(wrong) == 1 and "'x': 'float'" in wrong[0].message
    camera = _find(problems, 'missing_camera', log_id=b)
    assert len(camera) == 1 and 'ring_rear_left' in camera[0].message
    short = _find(problems, 'log_too_short', log_id=f['val_log'])
    assert len(short) == 1 and short[0].severity == 'warning'
    # The val info file still lists the deleted sweeps: a stale info file.
    assert len(_find(problems, 'stale_info', log_id=f['val_log'])) > 0
    stale = _find(problems, 'stale_cache_file', log_id=f['stale'][0], timestamp_ns=f['stale'][1])
    assert len(stale) == 1 and 'another cache' in stale[0].message
    beyond = _find(problems, 'stale_cache_file', log_id=f['beyond'][0], timestamp_ns=f['beyond'][1])
    assert len(beyond) == 1 and 'point index 10000000' in beyond[0].message
    assert len(
        _find(
            problems, 'missing_cache_file', log_id=f['uncached'][0],
            timestamp_ns=f['uncached'][1])) == 1
    report = problems_to_json(problems)
    assert report['warnings'] == 1 and report['errors'] == len(problems) - 1


def test_checker_passes_the_clean_world_and_the_tool_exit_status(synthetic_av2_root, faulty_world,
                                                                 tmp_path):
    assert check_dataset(synthetic_av2_root, splits=['train', 'val', 'test'], timing=TIMING) == []
    root, infos, _ = faulty_world
    result = subprocess.run([
        sys.executable, 'tools/check_dataset.py', '--root-path',
        str(root), '--splits', 'train', '--future-horizon', '1.0', '--out-dir',
        str(tmp_path)
    ],
                            cwd=REPO,
                            capture_output=True,
                            text=True,
                            timeout=300)
    assert result.returncode == 1, result.stderr[-2000:]
    assert 'unreadable_file' in result.stdout and 'fix the errors' in result.stdout
    assert (tmp_path / 'dataset_check.json').is_file()
    assert (tmp_path / 'dataset_check.png').read_bytes()[:4] == b'\x89PNG'


def _dataset(root, infos, **kwargs):
    return AV2OccDataset(
        ann_file=str(infos['train']),
        data_root=str(root),
        pipeline=[dict(type='LoadPastSweeps'),
                  dict(type='PackGASPInputs')],
        **kwargs)


def test_loader_raises_by_default_naming_the_file(faulty_world):
    root, infos, f = faulty_world
    dataset = _dataset(root, infos)
    assert dataset[0]['data_samples'].metainfo['log_id'] == f['log_a']
    with pytest.raises(AV2DataError) as err:
        dataset[1]
    message = str(err.value)
    assert f"{f['truncated']}.feather" in message and f['log_a'] in message
    assert f"timestamp_ns {f['truncated']}" in message and "on_load_error='skip'" in message


def test_loader_skips_and_counts_when_configured(faulty_world):
    root, infos, f = faulty_world
    dataset = _dataset(root, infos, on_load_error='skip')
    train = pd.read_pickle(infos['train'])['data_list']
    broken = {f['truncated'], f['nan']}
    expected = [i for i, s in enumerate(train) if broken & set(s['past_timestamps_ns'])]
    assert expected[:5] == [1, 3, 5, 7, 9]
    seen_failures = []
    for i in range(len(dataset)):
        sample = dataset[i]['data_samples']
        failures = sample.metainfo.get('load_failures', [])
        seen_failures += [x['sample_idx'] for x in failures]
        if failures:  # replaced by the next loadable sample, whatever the random state
            assert sample.metainfo['sample_idx'] == failures[-1]['sample_idx'] + 1
            assert failures[0]['log_id'] == f['log_a']
    # Sample i is tried as itself and again as the replacement of i - 1 when that failed.
    assert sorted(set(seen_failures)) == expected
    assert dataset.num_skipped == len(seen_failures)


def test_skipped_samples_hook_logs_the_count():
    hook = SkippedSamplesHook()

    class _Runner:
        message_hub = MessageHub.get_instance('test_skipped_samples_hook')

    def batch(*failed):
        samples = [
            BaseDataElement(
                metainfo=dict(load_failures=[
                    dict(sample_idx=i, log_id='log', timestamp_ns=100 + i, error='bad file')
                ])) for i in failed
        ]
        return dict(data_samples=samples + [BaseDataElement(metainfo=dict(sample_idx=9))])

    hook.after_train_iter(_Runner, 0, batch(3, 4))
    hook.after_train_iter(_Runner, 1, batch())
    hook.after_train_iter(_Runner, 2, batch(7))
    assert hook.total == 3
    assert _Runner.message_hub.get_scalar('train/skipped_samples').current() == 3


class _TaggedLine(Dataset):
    """y = 2 x; sample 5 has a NaN input, sample 9 gives a NaN gradient with a finite loss."""

    def __len__(self):
        return 12

    def __getitem__(self, index):
        x = torch.tensor([float('nan') if index == 5 else index / 12.0])
        meta = dict(sample_idx=index, log_id=f'log{index // 4}', timestamp_ns=1000 + index)
        return dict(inputs=x, data_samples=BaseDataElement(metainfo=meta, target=2 * x))


class _LineModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(1, 1)

    def forward(self, inputs, data_samples, mode='tensor'):
        pred = self.fc(torch.stack(inputs))
        target = torch.stack([s.target for s in data_samples])
        if mode != 'loss':
            return pred
        loss = ((pred - target)**2).mean()
        if any(s.sample_idx == 9 for s in data_samples):
            # sqrt'(0) is infinite: 0 * inf gives NaN gradients with a finite (0) term.
            loss = loss + 0 * torch.sqrt((self.fc.weight - self.fc.weight.detach()).abs()).sum()
        return dict(loss=loss)


# The guard checks inside the step with mmengine's wrapper, and reads the flags a
# SyncFreeOptimWrapper kept on the GPU at the logger's interval (here the last iteration).
GUARDED_WRAPPERS = {
    'OptimWrapper':
    dict(optimizer=dict(type='SGD', lr=0.1)),
    'SyncFreeOptimWrapper':
    dict(type='SyncFreeOptimWrapper', optimizer=dict(type='SGD', lr=0.1)),
    'SyncFreeOptimWrapper-fused':
    dict(type='SyncFreeOptimWrapper', optimizer=dict(type='AdamW', lr=0.1, fused=True)),
}


def _guarded_runner(work_dir, action, wrapper='OptimWrapper'):
    return Runner(
        model=_LineModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=_TaggedLine(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='pseudo_collate'),
            batch_size=2,
            num_workers=0),
        train_cfg=dict(by_epoch=False, max_iters=6),
        optim_wrapper=GUARDED_WRAPPERS[wrapper],
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=100, by_epoch=False),
            runtime_info=dict(type='DeferredRuntimeInfoHook')),
        custom_hooks=[dict(type='NonFiniteGuardHook', action=action)],
        default_scope='mmdet3d',
        randomness=dict(seed=0))


@pytest.mark.parametrize('wrapper', list(GUARDED_WRAPPERS))
def test_nan_in_a_batch_stops_training_naming_the_batch(tmp_path, wrapper):
    runner = _guarded_runner(tmp_path, 'stop', wrapper)
    with pytest.raises(NonFiniteLossError) as err:
        runner.train()
    message = str(err.value)
    # Batch 2 holds samples 4 and 5 (sample 5 is NaN).
    assert 'iteration 2' in message and "loss terms ['loss']" in message
    assert 'batch: log log1 @ 1004; log log1 @ 1005' in message
    assert torch.isfinite(runner.model.fc.weight).all()  # the bad update was not applied


@pytest.mark.parametrize('wrapper', list(GUARDED_WRAPPERS))
def test_nan_with_skip_configured_continues_and_logs_the_skips(tmp_path, wrapper):
    runner = _guarded_runner(tmp_path, 'skip', wrapper)
    weights = []
    runner.register_hook(_WeightRecorder(weights), 'LOWEST')
    runner.train()
    hook = next(h for h in runner.hooks if type(h).__name__ == 'NonFiniteGuardHook')
    # Batch 2 (NaN loss) and batch 4 (samples 8, 9: NaN gradient) were skipped.
    assert hook.skipped == 2
    assert runner.message_hub.get_scalar('train/nonfinite_skips').current() == 2
    assert all(np.isfinite(w) for w in weights)
    assert weights[2] == weights[1] and weights[4] == weights[3]  # no update at the skips
    assert weights[3] != weights[2] and weights[5] != weights[4]  # training went on


class _WeightRecorder(Hook):

    def __init__(self, weights):
        self.weights = weights

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.weights.append(float(runner.model.fc.weight))


class _PointsModel(BaseModel):
    """A one-parameter model over the packed past points (enough for data-parallel steps)."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        feats = torch.stack([p[:, :3].float().mean(0) for p in inputs['points']])
        pred = self.fc(feats)
        return dict(loss=(pred**2).mean()) if mode == 'loss' else pred


def _gloo_rank(rank, root, info, policy, out_dir, port):
    import json
    import os
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE='2',
        MASTER_ADDR='127.0.0.1',
        MASTER_PORT=str(port))
    result = dict(rank=rank)
    torch.set_num_threads(1)
    try:
        runner = Runner(
            model=_PointsModel(),
            work_dir=str(out_dir),
            train_dataloader=dict(
                dataset=dict(
                    type='AV2OccDataset',
                    ann_file=info,
                    data_root=root,
                    on_load_error=policy,
                    pipeline=[dict(type='LoadPastSweeps'),
                              dict(type='PackGASPInputs')]),
                sampler=dict(type='DefaultSampler', shuffle=False),
                collate_fn=dict(type='pseudo_collate'),
                batch_size=1,
                num_workers=0),
            train_cfg=dict(by_epoch=False, max_iters=3),
            optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
            default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=100)),
            custom_hooks=[dict(type='SkippedSamplesHook')],
            launcher='pytorch',
            env_cfg=dict(dist_cfg=dict(backend='gloo', timeout=60)),
            cfg=dict(
                model_wrapper_cfg=dict(
                    type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False)),
            default_scope='mmdet3d',
            randomness=dict(seed=0))
        runner.train()
        result.update(skipped=int(runner.message_hub.get_scalar('train/skipped_samples').current()))
    except BaseException as err:  # reported to the test
        result.update(error=type(err).__name__, message=str(err)[:500])
    with open(Path(out_dir) / f'rank{rank}.json', 'w') as f:
        json.dump(result, f)


@pytest.mark.parametrize('policy', ['skip', 'raise'])
def test_two_gloo_ranks_follow_the_same_load_policy(faulty_world, tmp_path, policy):
    import json
    import multiprocessing
    root, infos, f = faulty_world
    # Rank 1 (odd samples, no shuffle) meets the truncated sweep at its first batch.
    port = 29630 + (policy == 'raise')
    ctx = multiprocessing.get_context('fork')  # the ranks start with this process's imports
    procs = [
        ctx.Process(
            target=_gloo_rank,
            args=(rank, str(root), str(infos['train']), policy, str(tmp_path), port))
        for rank in (0, 1)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=240)
    hung = [proc.pid for proc in procs if proc.is_alive()]
    for proc in procs:
        if proc.is_alive():
            proc.kill()
    assert not hung, f'ranks hung: {hung}'
    results = [json.loads((tmp_path / f'rank{r}.json').read_text()) for r in (0, 1)]
    if policy == 'skip':
        # Rank 1 skipped samples 1, 3 and 5 (one per iteration); both ranks log the total.
        assert [r.get('error') for r in results] == [None, None]
        assert [r['skipped'] for r in results] == [3, 3]
    else:
        assert results[1]['error'] == 'AV2DataError'
        assert f"{f['truncated']}.feather" in results[1]['message']
        assert results[0].get('error') is not None  # rank 0 stopped too instead of waiting
