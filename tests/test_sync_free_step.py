"""SyncFreeOptimWrapper and DeferredRuntimeInfoHook: the same updates and logs as mmengine's
wrapper and hook, non-finite updates skipped on the device, no host read inside a step."""
import pytest
import torch
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner
from mmengine.structures import BaseDataElement
from torch.utils.data import Dataset

from gasp.engine import SyncFreeOptimWrapper


def _param(values):
    return torch.nn.Parameter(torch.tensor(values))


@pytest.mark.parametrize('fused', [False, True])
def test_clipped_step_has_the_known_norm_and_update(fused):
    # Gradient (3, 4): norm 5, clipped to norm 1 -> (0.6, 0.8). SGD with lr 1 subtracts it.
    param = _param([1.0, 1.0])
    wrapper = SyncFreeOptimWrapper(
        torch.optim.SGD([param], lr=1.0, fused=fused), clip_grad=dict(max_norm=1.0))
    assert wrapper.skips_on_device == fused
    param.grad = torch.tensor([3.0, 4.0])
    wrapper.step()
    assert float(wrapper.last_step['grad_norm']) == pytest.approx(5.0)
    assert float(wrapper.last_step['skipped']) == 0.0
    assert torch.allclose(param.detach(), torch.tensor([0.4, 0.2]))


@pytest.mark.parametrize('bad', [float('nan'), float('inf')])
@pytest.mark.parametrize('fused', [False, True])
def test_non_finite_gradient_leaves_parameters_and_moments(fused, bad):
    param = _param([1.0, -2.0])
    wrapper = SyncFreeOptimWrapper(
        torch.optim.AdamW([param], lr=0.1, weight_decay=0.01, fused=fused),
        clip_grad=dict(max_norm=10.0))
    param.grad = torch.tensor([0.5, -1.0])
    wrapper.step()
    before = param.detach().clone()
    state = {k: v.clone() for k, v in wrapper.optimizer.state[param].items()}
    param.grad = torch.tensor([bad, 1.0])
    wrapper.step()
    assert float(wrapper.last_step['skipped']) == 1.0
    assert torch.equal(param.detach(), before)
    for key, value in wrapper.optimizer.state[param].items():
        assert torch.equal(value, state[key]), key  # moments and step count unchanged
    param.grad = torch.tensor([0.5, -1.0])
    wrapper.step()  # and the next finite step updates again
    assert not torch.equal(param.detach(), before)
    assert float(wrapper.optimizer.state[param]['step']) == 2.0


def test_same_updates_as_mmengine_optim_wrapper():
    torch.manual_seed(0)
    reference = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    model.load_state_dict(reference.state_dict())
    wrappers = [
        OptimWrapper(
            torch.optim.AdamW(reference.parameters(), lr=0.05), clip_grad=dict(max_norm=0.5)),
        SyncFreeOptimWrapper(
            torch.optim.AdamW(model.parameters(), lr=0.05, fused=True),
            clip_grad=dict(max_norm=0.5)),
    ]
    for step in range(4):
        x = torch.randn(16, 4, generator=torch.Generator().manual_seed(step))
        for net, wrapper in zip((reference, model), wrappers):
            wrapper.update_params(net(x).pow(2).mean())
    for a, b in zip(reference.parameters(), model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_step_reads_nothing_on_the_host(monkeypatch):
    """Every way a tensor reaches Python (and so makes a CUDA host wait) raises inside the
    step of a fused optimizer."""
    model = torch.nn.Linear(3, 2)
    wrapper = SyncFreeOptimWrapper(
        torch.optim.AdamW(model.parameters(), lr=0.1, fused=True), clip_grad=dict(max_norm=1.0))
    loss = model(torch.randn(5, 3)).pow(2).sum()

    def host_read(*args, **kwargs):
        raise AssertionError('a tensor was read on the host inside the step')

    for name in ('item', 'tolist', '__bool__', '__float__', '__int__', 'cpu', 'numpy'):
        monkeypatch.setattr(torch.Tensor, name, host_read)
    wrapper.update_params(loss)
    monkeypatch.undo()
    assert float(wrapper.last_step['skipped']) == 0.0


def test_autocast_dtype_and_its_validation():
    # mmengine's autocast acts on the machine's accelerator (the GPU where there is one).
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    model = torch.nn.Linear(3, 2).to(device)
    wrapper = SyncFreeOptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), dtype='bfloat16')
    with wrapper.optim_context(model):
        assert model(torch.randn(4, 3, device=device)).dtype == torch.bfloat16
    plain = SyncFreeOptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    with plain.optim_context(model):
        assert model(torch.randn(4, 3, device=device)).dtype == torch.float32
    with pytest.raises(ValueError, match='AmpOptimWrapper'):
        SyncFreeOptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), dtype='float16')


class _Line(Dataset):

    def __len__(self):
        return 16

    def __getitem__(self, index):
        x = torch.tensor([index / 16.0, 1.0 - index / 16.0])
        return dict(inputs=x, data_samples=BaseDataElement(metainfo=dict(sample_idx=index)))


class _TwoLossModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        pred = self.fc(torch.stack(inputs))
        return dict(loss_fit=(pred - 1).pow(2).mean(), loss_small=pred.abs().mean())


def _logged_history(work_dir, runtime_info, wrapper):
    torch.manual_seed(0)
    runner = Runner(
        model=_TwoLossModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=_Line(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='pseudo_collate'),
            batch_size=2,
            num_workers=0),
        train_cfg=dict(by_epoch=False, max_iters=7),
        optim_wrapper=dict(
            type=wrapper, optimizer=dict(type='SGD', lr=0.1), clip_grad=dict(max_norm=0.1)),
        default_hooks=dict(
            runtime_info=dict(type=runtime_info),
            logger=dict(type='LoggerHook', interval=3),
            checkpoint=dict(type='CheckpointHook', interval=100, by_epoch=False)),
        default_scope='mmdet3d',
        experiment_name=f'{runtime_info}-{wrapper}',  # each run its own message hub
        randomness=dict(seed=0))
    runner.train()
    return {
        key: runner.message_hub.get_scalar(f'train/{key}').data[0].tolist()
        for key in ('loss', 'loss_fit', 'loss_small', 'grad_norm')
    }


def test_deferred_hook_logs_what_runtime_info_hook_logs(tmp_path):
    expected = _logged_history(tmp_path / 'a', 'RuntimeInfoHook', 'OptimWrapper')
    found = _logged_history(tmp_path / 'b', 'DeferredRuntimeInfoHook', 'SyncFreeOptimWrapper')
    for key, values in expected.items():
        assert len(values) == 7, key
        assert found[key] == pytest.approx(values, rel=1e-6), key


def test_step_log_only_after_an_update_with_accumulation():
    param = _param([1.0, 1.0])
    wrapper = SyncFreeOptimWrapper(
        torch.optim.SGD([param], lr=0.5), accumulative_counts=2, clip_grad=dict(max_norm=100.0))
    wrapper.update_params((param * torch.tensor([3.0, 4.0])).sum())
    assert wrapper.last_step == {} and torch.equal(param.detach(), torch.ones(2))
    wrapper.update_params((param * torch.tensor([3.0, 4.0])).sum())
    # Two accumulated halves of (3, 4): norm 5, SGD step 0.5 * (3, 4).
    assert float(wrapper.last_step['grad_norm']) == pytest.approx(5.0)
    assert torch.allclose(param.detach(), torch.tensor([-0.5, -1.0]))
