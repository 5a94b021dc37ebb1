"""Stop (or skip the update) when a loss or a gradient is not finite, naming the batch."""
import logging
from typing import List, Optional, Sequence

import torch
from mmdet3d.registry import HOOKS
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import AmpOptimWrapper, OptimWrapper, OptimWrapperDict

from ...structures import sample_name
from ..optim_wrapper import SyncFreeOptimWrapper
from .deferred_runtime_info_hook import logger_interval, logger_reads_now


class NonFiniteLossError(RuntimeError):
    """A loss or gradient was NaN or infinite; the message names the batch."""


def describe_batch(data_batch) -> str:
    """``log <id> @ <timestamp_ns>`` for every sample of a batch (from the data samples'
    metainfo, see ``PackGASPInputs``), or ``sample <idx>`` without a log id."""
    samples = data_batch.get('data_samples', []) if isinstance(data_batch, dict) else []
    if not isinstance(samples, (list, tuple)):
        samples = [samples]
    names = [name for name in map(sample_name, samples) if name is not None]
    return '; '.join(names) if names else 'a batch without sample metainfo'


@HOOKS.register_module()
class NonFiniteGuardHook(Hook):
    """Watches every training step for NaN or infinite losses and gradients.

    The check runs inside the step: each loss term is checked when the model sums its
    losses, the gradients after the backward pass and before the optimizer step. On a
    non-finite value the hook either raises :class:`NonFiniteLossError` (``action='stop'``)
    or drops that update (``action='skip'``: no optimizer step, gradients zeroed) and logs
    a warning; the number of skipped updates is the message-hub scalar
    ``train/nonfinite_skips``. The message names the iteration, the bad loss terms and the
    batch (log ids and timestamps of its samples).

    In data-parallel training the ranks agree (one all-reduce of a flag per step), so every
    rank stops or skips together and none waits for the others. With an
    ``AmpOptimWrapper`` that scales the loss, infinite gradients are the loss scaler's
    business (it skips the step and lowers the scale), so only losses are checked there.

    With a :class:`~gasp.engine.SyncFreeOptimWrapper` nothing is checked on the host inside
    the step, which would make the host wait for the GPU: the wrapper skips non-finite updates
    on the GPU itself, and the hook keeps each iteration's flags (skipped update, non-finite
    loss terms) on the GPU and reads them in one copy every ``interval`` iterations (by
    default when the logger reads the losses). ``'stop'`` then raises at that check, naming
    the first bad iteration and its batch; the weights are those before that update.

    Args:
        action: 'stop' (default) or 'skip'.
        check_grads: also check gradients before each optimizer step.
        max_skips: with 'skip', stop anyway after this many skipped updates (None: never).
        interval: with a ``SyncFreeOptimWrapper``, read the flags every this many
            iterations; None: when the ``LoggerHook`` logs.
    """

    priority = 'VERY_HIGH'

    def __init__(self,
                 action: str = 'stop',
                 check_grads: bool = True,
                 max_skips: Optional[int] = None,
                 interval: Optional[int] = None):
        if action not in ('stop', 'skip'):
            raise ValueError(f"NonFiniteGuardHook: action must be 'stop' or 'skip', got {action!r}")
        self.action = action
        self.check_grads = check_grads
        self.max_skips = max_skips
        self.interval = interval
        self.skipped = 0
        self._runner = None
        self._batch = None
        self._bad_terms: List[str] = []
        self._deferred = False
        self._pending: List[tuple] = []

    # Wiring: wrap the model's loss parsing and the optimizer step once per run.
    def before_train(self, runner) -> None:
        self._runner = runner
        self._deferred = isinstance(runner.optim_wrapper, SyncFreeOptimWrapper)
        if self._deferred:
            self.interval = self.interval or logger_interval(runner)
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if not getattr(model.parse_losses, 'nonfinite_guarded', False):
            model.parse_losses = self._guard_parse_losses(model.parse_losses)
        wrappers = (
            runner.optim_wrapper.optim_wrappers.values() if isinstance(
                runner.optim_wrapper, OptimWrapperDict) else [runner.optim_wrapper])
        for optim_wrapper in wrappers:
            if isinstance(optim_wrapper, OptimWrapper) and not getattr(
                    optim_wrapper.step, 'nonfinite_guarded', False):
                optim_wrapper.step = self._guard_step(optim_wrapper)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._batch = data_batch
        self._bad_terms = []

    # SyncFreeOptimWrapper: flags kept on the GPU, read every `interval` iterations.
    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self._deferred:
            return
        terms = [k for k, v in (outputs or {}).items() if 'loss' in k and torch.is_tensor(v)]
        term_flags = [(~torch.isfinite(outputs[k].detach())).any().float() for k in terms]
        skipped = runner.optim_wrapper.last_step.get('skipped')  # absent: no update this time
        if skipped is None:
            device = term_flags[0].device if term_flags else None
            skipped = torch.zeros((), device=device)
        self._pending.append((runner.iter, describe_batch(data_batch), terms,
                              torch.stack([skipped.reshape(())] + term_flags)))
        if logger_reads_now(self, runner, batch_idx, self.interval):
            self.check_pending()

    def after_train(self, runner) -> None:
        if self._deferred:
            self.check_pending()

    def check_pending(self) -> None:
        """Read the kept flags (one copy, one all-reduce when distributed) and stop or count
        the skipped updates, in iteration order."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        flags = torch.cat([record[3] for record in pending])
        if get_world_size() > 1:
            all_reduce(flags, op='max')
        flags = iter(flags.cpu().tolist())
        for iteration, batch, terms, _ in pending:
            skipped, *term_flags = [next(flags) for _ in range(1 + len(terms))]
            bad = [term for term, flag in zip(terms, term_flags) if flag > 0]
            reasons = ([f'loss terms {bad}'] if bad else []) + (['gradients'] if skipped else [])
            if skipped or (bad and self.action == 'stop'):
                self._handle(
                    reasons,
                    iteration=iteration,
                    batch=batch,
                    note=f' (found by the check after iteration {self._runner.iter})')
            elif bad:
                print_log(
                    f'NonFiniteGuardHook: non-finite loss terms {bad} at iteration {iteration}, '
                    f'batch: {batch}; their gradients were finite, so the update was applied',
                    logger='current',
                    level=logging.WARNING)

    def _guard_parse_losses(self, parse_losses):

        def guarded(losses):
            parsed, log_vars = parse_losses(losses)
            if self._runner is not None and self._runner.model.training:
                bad = [
                    name for name, value in losses.items()
                    if 'loss' in name and not _all_finite(value)
                ]
                if not torch.isfinite(parsed.detach()).all() and not bad:
                    bad = ['loss']
                self._bad_terms = bad
            return parsed, log_vars

        guarded.nonfinite_guarded = True
        return guarded

    def _guard_step(self, optim_wrapper):
        step = optim_wrapper.step
        grads_checked = self.check_grads and not (isinstance(optim_wrapper, AmpOptimWrapper)
                                                  and optim_wrapper.loss_scaler is not None)

        def guarded(**kwargs):
            reasons = [f'loss terms {self._bad_terms}'] if self._bad_terms else []
            if grads_checked and not _grads_finite(optim_wrapper.param_groups):
                reasons.append('gradients')
            if not _any_rank(bool(reasons)):
                return step(**kwargs)
            self._handle(reasons)
            optim_wrapper.zero_grad()

        guarded.nonfinite_guarded = True
        return guarded

    def _handle(self,
                reasons: Sequence[str],
                iteration: Optional[int] = None,
                batch: Optional[str] = None,
                note: str = '') -> None:
        runner = self._runner
        iteration = runner.iter if iteration is None else iteration
        batch = describe_batch(self._batch) if batch is None else batch
        where = (f'non-finite {" and ".join(reasons) or "values on another rank"} at '
                 f'iteration {iteration} (rank {runner.rank}), batch: {batch}{note}')
        if self.action == 'stop' or (self.max_skips is not None and self.skipped >= self.max_skips):
            raise NonFiniteLossError(
                f'{where}. What to do: check these samples with tools/check_dataset.py, lower '
                'the learning rate or enable gradient clipping, then resume with --resume; '
                "or set NonFiniteGuardHook(action='skip') to drop such updates.")
        self.skipped += 1
        runner.message_hub.update_scalar('train/nonfinite_skips', self.skipped)
        print_log(
            f'NonFiniteGuardHook: skipped the update ({where}); '
            f'{self.skipped} update(s) skipped so far',
            logger='current',
            level=logging.WARNING)


def _all_finite(value) -> bool:
    if isinstance(value, torch.Tensor):
        return bool(torch.isfinite(value.detach()).all())
    if isinstance(value, (list, tuple)):
        return all(_all_finite(v) for v in value)
    return True


def _grads_finite(param_groups) -> bool:
    grads = [p.grad for group in param_groups for p in group['params'] if p.grad is not None]
    if not grads:
        return True
    norms = torch._foreach_norm(grads)
    return bool(torch.isfinite(torch.stack(norms).sum()))


def _any_rank(flag: bool) -> bool:
    """True when ``flag`` is set on any rank (an all-reduce when distributed)."""
    if get_world_size() == 1:
        return flag
    value = torch.tensor([float(flag)])
    all_reduce(value, op='max')
    return bool(value.item() > 0)
