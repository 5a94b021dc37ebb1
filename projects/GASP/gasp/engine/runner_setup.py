"""Config adjustments and runner set-up shared by tools/train.py, tools/test.py and
tools/demo.py."""
import os.path as osp
import sys

import torch
from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner


def use_cpu_processes(cfg: Config) -> None:
    """Distributed runs without GPUs: gloo instead of NCCL, and DDP without ``device_ids``
    (which torch only accepts for GPU modules)."""
    print('[gasp] no GPU visible: processes run on CPU with the gloo backend')
    cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    cfg.model_wrapper_cfg = dict(
        type='MMDistributedDataParallel',
        device_ids=None,
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))


def add_reliability_hooks(cfg: Config) -> None:
    """Append each hook of ``cfg.reliability_hooks`` (see configs/_base_/default_runtime.py)
    whose type the config's ``custom_hooks`` lacks: NaN guard, random states for exact
    resume, skipped-sample count. Child configs often replace ``custom_hooks`` entirely."""
    hooks = list(cfg.get('custom_hooks', None) or [])
    have = {hook.get('type') for hook in hooks if isinstance(hook, dict)}
    added = [hook for hook in cfg.get('reliability_hooks', []) if hook['type'] not in have]
    if added:
        print('[gasp] reliability hooks added: ' + ', '.join(h['type'] for h in added))
    cfg.custom_hooks = hooks + added


def enable_amp(cfg: Config) -> None:
    """bf16 autocast for training (``tools/train.py --amp``, ``tools/benchmark.py``): a
    ``SyncFreeOptimWrapper`` gets ``dtype='bfloat16'``; any other wrapper becomes mmengine's
    ``AmpOptimWrapper`` (bf16, dynamic loss scale)."""
    if cfg.optim_wrapper.get('type') == 'SyncFreeOptimWrapper':
        cfg.optim_wrapper.dtype = 'bfloat16'
        return
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.setdefault('dtype', 'bfloat16')
    cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')


def config_from_args(args) -> Config:
    """The config of a tools/ script: ``args.config`` with ``--cfg-options``, ``--launcher``
    and ``--work-dir`` applied (default ``./work_dirs/<config name>``), and gloo processes
    when a launcher is used without GPUs."""
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.launcher != 'none' and not torch.cuda.is_available():
        use_cpu_processes(cfg)
    return cfg


def set_gil_switch_interval(cfg: Config) -> None:
    """Apply ``env_cfg.gil_switch_interval_s`` (``sys.setswitchinterval``) when the config
    sets it.

    The dataloader's pin-memory thread unpickles every batch in the training process and
    holds the GIL while it does; the main thread, which releases the GIL in every torch call,
    then waits up to the switch interval (5 ms by default) to get it back, with no GPU work
    launched meanwhile. A shorter interval bounds those waits.
    """
    interval = cfg.get('env_cfg', {}).get('gil_switch_interval_s')
    if interval:
        sys.setswitchinterval(float(interval))


def build_runner(cfg: Config) -> Runner:
    set_gil_switch_interval(cfg)
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)


def leave_process_group() -> None:
    """Leave the process group cleanly; gloo can abort at interpreter exit otherwise."""
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
