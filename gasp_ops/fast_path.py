"""When the ops take their Triton fast path.

Every op in :mod:`gasp_ops` has one dispatch function; it calls :func:`use_fast_path` with its
input tensors and runs the Triton kernel when that returns True, else the PyTorch reference.
The fast path needs CUDA tensors and an importable ``triton``; ``GASP_OPS_FAST=0`` in the
environment forces the reference everywhere (to bisect a numerical difference).

The Triton kernels also run on CPU tensors under ``TRITON_INTERPRET=1`` (the tests do that on
machines without a GPU); the dispatch never picks them for CPU tensors.
"""
import functools
import os
from typing import Sequence

import torch

FAST_ENV = 'GASP_OPS_FAST'
#: Floating dtypes the Triton kernels compute with (fp32 arithmetic inside); fp64 inputs stay on
#: the reference.
FAST_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


@functools.lru_cache(maxsize=None)
def triton_available() -> bool:
    """True when ``triton`` imports (it ships with CUDA builds of torch)."""
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except ImportError:
        return False
    return True


def use_fast_path(*tensors: torch.Tensor) -> bool:
    """Whether an op on ``tensors`` runs its Triton kernel.

    Args:
        tensors: the op's tensor inputs; all must live on a CUDA device.

    Returns:
        True when every tensor is on CUDA, triton imports and ``GASP_OPS_FAST`` is not ``0``.
    """
    if os.environ.get(FAST_ENV, '1') == '0':
        return False
    return all(t.is_cuda for t in tensors) and triton_available()


def device_constant(values: Sequence[float], dtype: torch.dtype,
                    device: torch.device) -> torch.Tensor:
    """``torch.tensor(values, dtype=dtype, device=device)``, made once per (values as floats,
    dtype, device). A host-to-device copy from a Python list makes the host wait for the GPU to
    drain its queue, so ops called every step keep their region, cell sizes and steps here.
    The tensor is shared: never modify it in place."""
    return _device_constant(tuple(map(float, values)), dtype, device)


@functools.lru_cache(maxsize=128)
def _device_constant(values: tuple, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype, device=device)
