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
