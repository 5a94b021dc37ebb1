"""Fixes the OpenMMLab stack needs on modern PyTorch, applied once on ``import gasp``.

Each fix names the upstream problem it works around, is idempotent, and is tested in
``tests/test_compat.py`` against a reference computation.
"""
import importlib
import logging

import numpy as np
import torch

logger = logging.getLogger(__name__)

_applied = set()


def _history_buffer_state(buffer) -> dict:
    """``HistoryBuffer.__getstate__`` without the class-wide method table."""
    state = dict(buffer.__dict__)
    state.pop('statistics_methods', None)
    return state


def allow_mmengine_checkpoints() -> None:
    """Let ``torch.load(weights_only=True)`` read mmengine checkpoints.

    Upstream problem: torch >= 2.6 loads with ``weights_only=True`` by default, and
    mmengine 0.10.7 (``mmengine.runner.checkpoint._load_checkpoint``) calls ``torch.load``
    without the argument. A checkpoint written by the Runner stores the message hub's
    ``HistoryBuffer`` objects, numpy arrays and, through ``HistoryBuffer.__getstate__``,
    the class-wide table of statistics methods pickled as ``getattr(HistoryBuffer, 'min')``,
    so resume fails with "Weights only load failed".

    Instead of switching the safety off (or allow-listing ``getattr``, which would let a
    checkpoint reach any attribute of an allowed class), buffers are pickled without the
    method table (``__setstate__`` already tolerates its absence, and the table is
    class-level state rebuilt at import), and the few classes a checkpoint then holds are
    allow-listed. Checkpoints written by mmengine without this fix still need
    ``weights_only=False`` from a trusted source.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    HistoryBuffer.__getstate__ = _history_buffer_state

    numpy_globals = [
        np.ndarray,
        np.dtype,
        np.core.multiarray._reconstruct,
        np.core.multiarray.scalar,
    ]
    # Concrete dtype classes (numpy >= 1.25 pickles dtypes by their class).
    numpy_globals += [
        type(np.dtype(name))
        for name in ('bool', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32',
                     'uint64', 'float16', 'float32', 'float64')
    ]
    torch.serialization.add_safe_globals([HistoryBuffer, *numpy_globals])


def _current_stream_or_default() -> int:
    """The current CUDA stream handle, or 0 (the default stream) without CUDA."""
    if torch.cuda.is_available():
        return torch.cuda.current_stream().cuda_stream
    return 0


def fix_spconv_cpu_backward() -> None:
    """Let spconv's CPU kernels run their backward pass on a machine without CUDA.

    Upstream problem: spconv 2.3.8 (``spconv/pytorch/ops.py``, ``indice_conv_backward``
    and friends) asks ``torch.cuda.current_stream()`` before it branches on the device;
    the CPU branch never uses the stream, but the call raises without an NVIDIA driver.
    The stream lookup is replaced by one that returns the default stream (0) when CUDA
    is absent, which is what the CPU kernels ignore anyway.
    """
    try:
        modules = [
            importlib.import_module(f'spconv.pytorch.{name}')
            for name in ('cppcore', 'ops', 'hash', 'utils')
        ]
    except ImportError:
        return
    for module in modules:
        if hasattr(module, 'get_current_stream'):
            module.get_current_stream = _current_stream_or_default


def fix_mmcv_cpu_dynamic_scatter() -> None:
    """Give mmcv's ``dynamic_scatter`` a CPU implementation.

    Upstream problem: mmcv 2.1.0 compiles ``dynamic_point_to_voxel_forward`` for CUDA
    only, so mmdet3d's dynamic voxel encoders (``DynamicVFE``, ``DynamicPillarFeatureNet``)
    raise on CPU tensors. CPU tensors now go to :func:`gasp_ops.dynamic_scatter_reference`
    (same voxel order and gradients as the CUDA kernel); CUDA tensors still use mmcv's.
    """
    from mmcv.ops import scatter_points

    from gasp_ops import dynamic_scatter
    scatter_points.dynamic_scatter = dynamic_scatter
    import mmcv.ops
    mmcv.ops.dynamic_scatter = dynamic_scatter


def fix_mmengine_cpu_launcher() -> None:
    """Let ``launcher='pytorch'`` start CPU processes (gloo) on a machine without GPUs.

    Upstream problem: mmengine 0.10.7 (``mmengine.dist.utils._init_dist_pytorch``) calls
    ``torch.cuda.set_device(local_rank)`` before ``init_process_group`` whatever the
    backend, which raises without an NVIDIA driver. Without CUDA the process group is now
    initialised directly; asking for NCCL there is an error that says what to use instead.
    """
    from mmengine.dist import utils as dist_utils
    original = dist_utils._init_dist_pytorch
    if getattr(original, 'gasp_fixed', False):
        return

    def init_dist_pytorch(backend, init_backend='torch', **kwargs) -> None:
        if torch.cuda.is_available():
            return original(backend, init_backend=init_backend, **kwargs)
        if backend == 'nccl':
            raise RuntimeError('NCCL needs GPUs and none is visible: set '
                               "env_cfg.dist_cfg.backend='gloo' (tools/train.py does this "
                               'when it finds no GPU).')
        torch.distributed.init_process_group(backend=backend, **kwargs)

    init_dist_pytorch.gasp_fixed = True
    dist_utils._init_dist_pytorch = init_dist_pytorch


FIXES = {
    'mmengine_weights_only_resume': allow_mmengine_checkpoints,
    'spconv_cpu_backward': fix_spconv_cpu_backward,
    'mmcv_cpu_dynamic_scatter': fix_mmcv_cpu_dynamic_scatter,
    'mmengine_cpu_launcher': fix_mmengine_cpu_launcher,
}


def apply_fixes() -> None:
    """Apply every fix in :data:`FIXES` once per process."""
    for name, fix in FIXES.items():
        if name not in _applied:
            fix()
            _applied.add(name)
            logger.debug('gasp.compat: applied %s', name)
