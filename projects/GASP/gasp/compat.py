"""Fixes the OpenMMLab stack needs on modern PyTorch, applied once on ``import gasp``.

Each fix names the upstream problem it works around, is idempotent, and is tested in
``tests/test_compat.py`` against a reference computation.
"""
import importlib
import logging
import os
import os.path as osp
import re

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


def _put_atomic(self, obj: bytes, filepath) -> None:
    """``LocalBackend.put`` through :func:`gasp.fileio.atomic_write_bytes`."""
    from .fileio import atomic_write_bytes
    atomic_write_bytes(filepath, obj)


def _put_text_atomic(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
    """``LocalBackend.put_text`` through :func:`gasp.fileio.atomic_write_bytes`."""
    from .fileio import atomic_write_bytes
    atomic_write_bytes(filepath, obj.encode(encoding))


_CHECKPOINT_NAME = re.compile(r'^(?:iter|epoch)_(\d+)\.pth$')


def find_latest_checkpoint(path: str):
    """The checkpoint named in ``<path>/last_checkpoint``, or the newest complete
    ``iter_*.pth`` / ``epoch_*.pth`` in ``path`` when that file is empty, missing or names a
    file that does not exist (None when there is no checkpoint)."""
    save_file = osp.join(path, 'last_checkpoint')
    named = None
    if osp.isfile(save_file):
        with open(save_file) as f:
            named = f.read().strip() or None
    if named is not None and osp.isfile(named) and osp.getsize(named) > 0:
        return named
    found = []
    if osp.isdir(path):
        for name in os.listdir(path):
            match = _CHECKPOINT_NAME.match(name)
            if match and osp.getsize(osp.join(path, name)) > 0:
                found.append((int(match.group(1)), name.startswith('iter'), name))
    if not found:
        logger.warning('no checkpoint to resume from in %s', path)
        return None
    latest = osp.join(path, max(found)[2])
    logger.warning('%s names %r, which is not a checkpoint; resuming from %s instead', save_file,
                   named, latest)
    return latest


def make_mmengine_checkpoints_atomic() -> None:
    """Write checkpoints (and every other file of mmengine's local file backend) atomically.

    Upstream problem: mmengine 0.10.7 ``save_checkpoint`` serialises the checkpoint to
    memory and hands the bytes to ``LocalBackend.put``, which opens the target with
    ``open(filepath, 'wb')`` and writes in place; a process killed during that write leaves
    a truncated ``iter_N.pth``. ``CheckpointHook`` then writes ``last_checkpoint`` in place
    with a bare ``open``, so a kill there leaves it empty and ``--resume`` finds nothing.
    ``put`` / ``put_text`` now write a temporary file and rename it over the target
    (:mod:`gasp.fileio`), and ``find_latest_checkpoint`` falls back to the newest
    ``iter_*.pth`` / ``epoch_*.pth`` when ``last_checkpoint`` is empty or dangling.
    """
    from mmengine.fileio.backends import local_backend
    local_backend.LocalBackend.put = _put_atomic
    local_backend.LocalBackend.put_text = _put_text_atomic
    import mmengine.runner
    from mmengine.runner import _flexible_runner, checkpoint, runner
    for module in (mmengine.runner, checkpoint, runner, _flexible_runner):
        module.find_latest_checkpoint = find_latest_checkpoint


def _load_local_weights_only(filename, map_location):
    """mmengine's local checkpoint loader with ``weights_only=True`` said explicitly."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return torch.load(filename, map_location=map_location, weights_only=True)


def load_local_checkpoints_weights_only() -> None:
    """Load local checkpoints (``load_from``, ``--resume``) with ``weights_only=True`` always.

    Upstream problem: mmengine 0.10.7 ``load_from_local`` calls ``torch.load`` without
    ``weights_only``, so it follows torch's default, which the environment variable
    ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` turns off: a checkpoint from elsewhere could then
    run code when unpickled. Said explicitly, ``weights_only=True`` cannot be overridden;
    the classes mmengine checkpoints need are allow-listed by
    :func:`allow_mmengine_checkpoints`.
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', force=True)(_load_local_weights_only)


FIXES = {
    'mmengine_weights_only_resume': allow_mmengine_checkpoints,
    'spconv_cpu_backward': fix_spconv_cpu_backward,
    'mmcv_cpu_dynamic_scatter': fix_mmcv_cpu_dynamic_scatter,
    'mmengine_cpu_launcher': fix_mmengine_cpu_launcher,
    'mmengine_atomic_checkpoints': make_mmengine_checkpoints_atomic,
    'mmengine_weights_only_local_load': load_local_checkpoints_weights_only,
}


def apply_fixes() -> None:
    """Apply every fix in :data:`FIXES` once per process."""
    for name, fix in FIXES.items():
        if name not in _applied:
            fix()
            _applied.add(name)
            logger.debug('gasp.compat: applied %s', name)
