"""mmengine's RuntimeInfoHook with the training outputs kept on the GPU until the logger
reads them."""
from collections import defaultdict
from typing import List, Optional

import torch
from mmdet3d.registry import HOOKS
from mmengine.hooks import Hook, LoggerHook, RuntimeInfoHook


def logger_interval(runner, default: int = 50) -> int:
    """The interval (iterations) of the runner's ``LoggerHook``, ``default`` without one."""
    for hook in runner.hooks:
        if isinstance(hook, LoggerHook):
            return int(hook.interval)
    return default


def logger_reads_now(hook: Hook, runner, batch_idx: int, interval: int) -> bool:
    """Whether ``LoggerHook`` with ``interval`` reads the message hub after this training
    iteration: every ``interval`` iterations (of the run or of the epoch), at epoch ends and
    at the last iteration."""
    return (hook.every_n_train_iters(runner, interval)
            or hook.every_n_inner_iters(batch_idx, interval)
            or hook.end_of_epoch(runner.train_dataloader, batch_idx)
            or hook.is_last_train_iter(runner))


def to_host(values: List[torch.Tensor]) -> List[float]:
    """Python floats of one-element tensors: one copy (one sync) per device."""
    by_device = defaultdict(list)
    for i, value in enumerate(values):
        by_device[value.device].append(i)
    found = [0.0] * len(values)
    for indices in by_device.values():
        stacked = torch.stack([values[i].detach().reshape(()).float() for i in indices])
        for i, number in zip(indices, stacked.cpu().tolist()):
            found[i] = number
    return found


@HOOKS.register_module()
class DeferredRuntimeInfoHook(RuntimeInfoHook):
    """``RuntimeInfoHook`` without a host-GPU sync per iteration.

    mmengine's hook puts every training output (the loss terms) into the message hub each
    iteration, each through ``.item()``: one sync per term and step, each of which empties the
    GPU's queue. This hook keeps each iteration's outputs, and the gradient norm of a
    :class:`~gasp.engine.SyncFreeOptimWrapper` (``train/grad_norm``), on the GPU and moves
    them to the host in one copy when the logger is about to read them (its interval, epoch
    ends, the last iteration), before validation and at the end of training. The message hub
    then receives the same values in the same order, so the logged window averages are those
    of ``RuntimeInfoHook``.

    Use it in place of mmengine's: ``default_hooks = dict(runtime_info=dict(type=
    'DeferredRuntimeInfoHook'))`` (configs/_base_/default_runtime.py does).

    Args:
        interval: move the values every this many iterations; None: the ``LoggerHook``'s.
    """

    def __init__(self, interval: Optional[int] = None):
        self.interval = interval
        self._pending: List[dict] = []

    def before_train(self, runner) -> None:
        super().before_train(runner)
        self.interval = self.interval or logger_interval(runner)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        values = dict(outputs or {})
        last_step = getattr(runner.optim_wrapper, 'last_step', None) or {}
        if 'grad_norm' in last_step:
            values['grad_norm'] = last_step['grad_norm']
        self._pending.append(values)
        if logger_reads_now(self, runner, batch_idx, self.interval):
            self.flush(runner)

    def flush(self, runner) -> None:
        """Put every kept value into the message hub, in iteration order."""
        tensors = [v for values in self._pending for v in values.values() if torch.is_tensor(v)]
        numbers = iter(to_host(tensors))
        for values in self._pending:
            for key, value in values.items():
                value = next(numbers) if torch.is_tensor(value) else value
                runner.message_hub.update_scalar(f'train/{key}', value)
        self._pending = []

    def after_train_epoch(self, runner) -> None:
        self.flush(runner)

    def before_val(self, runner) -> None:
        self.flush(runner)
        super().before_val(runner)

    def after_train(self, runner) -> None:
        self.flush(runner)
        super().after_train(runner)
