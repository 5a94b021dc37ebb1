"""An mmengine Runner trains, checkpoints and resumes with ``weights_only`` loading left on."""
import pickle

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from gasp import compat


class _LineDataset(Dataset):
    """y = 3 x - 1 sampled at 16 points."""

    def __len__(self):
        return 16

    def __getitem__(self, index):
        x = torch.tensor([index / 16.0])
        return dict(inputs=x, target=3 * x - 1)


class _LinearModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(1, 1)

    def forward(self, inputs, target, mode='tensor'):
        pred = self.fc(torch.stack(inputs) if isinstance(inputs, list) else inputs)
        if mode == 'loss':
            target = torch.stack(target) if isinstance(target, list) else target
            return dict(loss=((pred - target)**2).mean())
        return pred


class _RecordIters(Hook):

    def __init__(self):
        self.iters = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.iters.append(runner.iter)


def _runner(work_dir, max_iters, resume=False):
    recorder = _RecordIters()
    runner = Runner(
        model=_LinearModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=_LineDataset(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=4,
            num_workers=0),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        param_scheduler=dict(type='MultiStepLR', milestones=[3], by_epoch=False),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[recorder],
        randomness=dict(seed=0),
        resume=resume,
        default_scope='mmdet3d',
    )
    return runner, recorder


def test_runner_trains_checkpoints_and_resumes(tmp_path):
    runner, recorder = _runner(tmp_path, max_iters=4)
    runner.train()
    assert recorder.iters == [0, 1, 2, 3]
    ckpt_path = tmp_path / 'iter_4.pth'
    ckpt = torch.load(ckpt_path, map_location='cpu', weights_only=True)
    assert ckpt['meta']['iter'] == 4
    saved_weight = ckpt['state_dict']['fc.weight'].clone()
    assert 'message_hub' in ckpt
    assert len(ckpt['message_hub']['log_scalars']['train/loss'].data[0]) == 4

    resumed, recorder = _runner(tmp_path, max_iters=6, resume=True)
    resumed.train()
    # The run continued at iteration 4 with the saved weights, optimizer and scheduler.
    assert recorder.iters == [4, 5]
    # The learning rate decayed at iteration 3 stays decayed: the scheduler was restored.
    assert resumed.optim_wrapper.get_lr()['lr'] == [pytest.approx(0.01)]
    assert (tmp_path / 'iter_6.pth').exists()
    history = resumed.message_hub.get_scalar('train/loss').data[0]
    assert len(history) == 6  # the 4 losses before the kill were restored
    ckpt6 = torch.load(tmp_path / 'iter_6.pth', map_location='cpu', weights_only=True)
    assert not torch.equal(ckpt6['state_dict']['fc.weight'], saved_weight)


def test_weights_only_load_needs_the_allow_list(tmp_path):
    runner, _ = _runner(tmp_path, max_iters=2)
    runner.train()
    allowed = torch.serialization.get_safe_globals()
    try:
        torch.serialization.clear_safe_globals()
        with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer'):
            torch.load(tmp_path / 'iter_2.pth', map_location='cpu', weights_only=True)
        compat.allow_mmengine_checkpoints()
        ckpt = torch.load(tmp_path / 'iter_2.pth', map_location='cpu', weights_only=True)
        assert ckpt['meta']['iter'] == 2
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(allowed)


class _NoisyLineDataset(Dataset):
    """y = 3 x - 1 with random augmentation from python, numpy and torch's global RNGs."""

    def __len__(self):
        return 10

    def __getitem__(self, index):
        import random

        import numpy as np
        x = index / 10.0 + 0.05 * random.random() + 0.05 * float(np.random.rand())
        x = torch.tensor([x]) + 0.05 * torch.rand(1)
        return dict(inputs=x, target=3 * x - 1)


class _QuerySampler:
    """Stands for a GASP query sampler that owns its generator."""

    def __init__(self):
        self.generator = torch.Generator().manual_seed(123)

    def __call__(self, n):
        return torch.rand(n, 1, generator=self.generator)


class _NoisyModel(_LinearModel):
    """Adds random queries (sampler generator) and dropout-like noise (torch global RNG)."""

    def __init__(self):
        super().__init__()
        self.sampler = _QuerySampler()

    def forward(self, inputs, target, mode='tensor'):
        inputs = torch.stack(inputs) if isinstance(inputs, list) else inputs
        target = torch.stack(target) if isinstance(target, list) else target
        queries = self.sampler(len(inputs))
        noise = 0.01 * torch.randn(len(inputs), 1)
        pred = self.fc(inputs + queries) + noise
        if mode == 'loss':
            return dict(loss=((pred - target - 3 * queries)**2).mean())
        return pred


class _RecordLosses(Hook):

    def __init__(self):
        self.losses = {}

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.losses[runner.iter] = outputs['loss'].item()


class _Killed(BaseException):
    pass


class _KillAfterCheckpoint(Hook):
    """Ends the process's training abruptly right after the checkpoint of ``iteration``."""

    priority = 'LOWEST'  # after CheckpointHook

    def __init__(self, iteration):
        self.iteration = iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.iteration:
            raise _Killed


def _noisy_runner(work_dir,
                  max_iters=8,
                  resume=False,
                  seed=0,
                  random_state_hook=True,
                  num_workers=0,
                  kill_at=None):
    recorder = _RecordLosses()
    hooks = [recorder] + ([dict(type='RandomStateHook')] if random_state_hook else [])
    hooks += [_KillAfterCheckpoint(kill_at)] if kill_at else []
    torch.manual_seed(0)  # the same initial weights in every run
    runner = Runner(
        model=_NoisyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=_NoisyLineDataset(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=4,
            num_workers=num_workers,
            persistent_workers=False),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.05)),
        param_scheduler=dict(type='CosineAnnealingLR', T_max=8, by_epoch=False),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=4, by_epoch=False),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=hooks,
        randomness=dict(seed=seed),
        resume=resume,
        default_scope='mmdet3d',
    )
    return runner, recorder


@pytest.fixture
def no_epoch_pause(monkeypatch):
    """mmengine's infinite data iterator sleeps 2 s at every epoch end; not needed here."""
    monkeypatch.setattr('mmengine.runner.loops.time.sleep', lambda seconds: None)


@pytest.mark.parametrize('num_workers', [0, 1])
def test_killed_and_resumed_run_repeats_the_straight_losses(tmp_path, num_workers, no_epoch_pause):
    straight, straight_losses = _noisy_runner(tmp_path / 'straight', num_workers=num_workers)
    straight.train()
    # 8 iterations of 4 samples cross two epochs of the 10-sample dataset (order replayed).
    assert sorted(straight_losses.losses) == list(range(8))

    first, first_losses = _noisy_runner(tmp_path / 'killed', kill_at=4, num_workers=num_workers)
    with pytest.raises(_Killed):  # the run dies right after its checkpoint at iteration 4
        first.train()
    ckpt = torch.load(tmp_path / 'killed' / 'iter_4.pth', map_location='cpu', weights_only=True)
    assert set(ckpt['random_states'][0]['generators']) == {'sampler.generator'}
    # Resumed without a configured seed: the data order comes from the checkpoint's seed.
    resumed, resumed_losses = _noisy_runner(
        tmp_path / 'killed', resume=True, seed=None, num_workers=num_workers)
    resumed.train()
    assert sorted(resumed_losses.losses) == [4, 5, 6, 7]
    for it in range(8):
        got = (first_losses if it < 4 else resumed_losses).losses[it]
        assert got == pytest.approx(straight_losses.losses[it], rel=1e-6, abs=1e-9), it


def test_resume_without_random_states_differs(tmp_path, no_epoch_pause):
    # The check above is not vacuous: without the restored states the losses differ.
    straight, straight_losses = _noisy_runner(tmp_path / 'straight')
    straight.train()
    first, _ = _noisy_runner(tmp_path / 'killed', kill_at=4, random_state_hook=False)
    with pytest.raises(_Killed):
        first.train()
    resumed, resumed_losses = _noisy_runner(
        tmp_path / 'killed', resume=True, random_state_hook=False)
    resumed.train()
    assert all(resumed_losses.losses[it] != pytest.approx(straight_losses.losses[it], rel=1e-6)
               for it in range(4, 8))
