"""Config adjustments shared by tools/train.py, tools/test.py and tools/demo.py."""
from mmengine.config import Config


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
