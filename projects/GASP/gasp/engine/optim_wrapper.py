"""An optimizer wrapper whose update never makes the host wait for the GPU."""
from contextlib import contextmanager
from typing import Optional, Union

import torch
from mmdet3d.registry import OPTIM_WRAPPERS
from mmengine.optim import OptimWrapper
from mmengine.runner.amp import autocast


@OPTIM_WRAPPERS.register_module()
class SyncFreeOptimWrapper(OptimWrapper):
    """``OptimWrapper`` for training steps that never synchronise the host with the GPU.

    mmengine's wrappers wait for the GPU in every step: ``OptimWrapper`` turns the gradient
    norm into a Python float for the log, and ``AmpOptimWrapper``'s loss scaler reads its
    infinity check before it steps. Each wait empties the GPU's queue, so whatever the host
    does next (fetching the next batch, launching its preprocessing) is GPU idle time. This
    wrapper:

    - autocasts the forward pass to ``dtype`` (``'bfloat16'``), or not at all (``None``).
      bf16 has fp32's exponent range, so it needs no loss scaling; for fp16 use mmengine's
      ``AmpOptimWrapper``;
    - clips the gradients by norm (``clip_grad=dict(max_norm=...)``) on the GPU and keeps the
      norm as a tensor, ``last_step['grad_norm']``, which ``DeferredRuntimeInfoHook`` logs;
    - skips the update on the GPU when the gradient norm is NaN or infinite. Fused
      optimizers (``optimizer=dict(type='AdamW', fused=True)``) take that flag as their
      ``found_inf`` argument, as they do from torch's ``GradScaler``: the parameters, the
      moments and the step count stay as they were. Other optimizers fall back to reading
      the flag on the host (one sync per step). ``last_step['skipped']`` is the flag (1.0:
      skipped), which ``NonFiniteGuardHook`` reports.

    In data-parallel training the gradients are all-reduced before the step, so every rank
    computes the same norm and skips the same updates.

    Args:
        optimizer: the wrapped optimizer.
        dtype: autocast dtype, ``'bfloat16'`` (or ``torch.bfloat16``) or None for none.
        **kwargs: ``OptimWrapper``'s (``accumulative_counts``, ``clip_grad``).
    """

    def __init__(self,
                 optimizer: torch.optim.Optimizer,
                 dtype: Optional[Union[str, torch.dtype]] = None,
                 **kwargs):
        super().__init__(optimizer, **kwargs)
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype, dtype)
        if dtype not in (None, torch.bfloat16, torch.float32):
            raise ValueError(
                f'SyncFreeOptimWrapper: dtype must be bfloat16, float32 or None, got {dtype}. '
                'float16 needs loss scaling: use AmpOptimWrapper for it.')
        self.cast_dtype = None if dtype == torch.float32 else dtype
        self.last_step: dict = {}

    @property
    def skips_on_device(self) -> bool:
        """Whether a non-finite step is skipped without a host sync (fused optimizers)."""
        return bool(getattr(self.optimizer, '_step_supports_amp_scaling', False))

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        with super().optim_context(model), autocast(
                dtype=self.cast_dtype, enabled=self.cast_dtype is not None):
            yield

    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        """``OptimWrapper.backward``; ``last_step`` is emptied until the next update (with
        ``accumulative_counts`` > 1 not every backward pass is followed by one)."""
        self.last_step = {}
        super().backward(loss, **kwargs)

    def step(self, **kwargs) -> None:
        """Clip, then update unless the gradient norm is non-finite; no host sync."""
        params = [
            p for group in self.optimizer.param_groups for p in group['params']
            if p.grad is not None
        ]
        if not params:
            self.optimizer.step(**kwargs)
            return
        if self.clip_grad_kwargs and self.grad_name == 'grad_norm':
            grad_norm = self.clip_func(params, **self.clip_grad_kwargs)
        else:
            if self.clip_grad_kwargs:
                self.clip_func(params, **self.clip_grad_kwargs)
            grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        skipped = (~torch.isfinite(grad_norm)).to(torch.float32)
        if self.skips_on_device:
            self.optimizer.found_inf, self.optimizer.grad_scale = skipped, None
            try:
                self.optimizer.step(**kwargs)
            finally:
                del self.optimizer.found_inf, self.optimizer.grad_scale
        elif not bool(skipped):
            self.optimizer.step(**kwargs)
        self.last_step = dict(grad_norm=grad_norm.detach(), skipped=skipped)

    def load_state_dict(self, state_dict: dict) -> None:
        """Also loads an ``AmpOptimWrapper`` checkpoint (its loss-scaler state is dropped)."""
        state_dict = {k: v for k, v in state_dict.items() if k != 'loss_scaler'}
        super().load_state_dict(state_dict)
