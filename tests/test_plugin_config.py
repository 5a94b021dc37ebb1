"""Registering the plugin from a config, the way a user's own config does it."""
from pathlib import Path

from mmengine.config import Config

REPO = Path(__file__).resolve().parents[1]


def test_runtime_config_inherits_mmdet3d_and_imports_gasp():
    cfg = Config.fromfile(REPO / 'configs/_base_/default_runtime.py')
    assert cfg.custom_imports == dict(imports=['gasp'], allow_failed_imports=False)
    # Values that come from mmdet3d::_base_/default_runtime.py.
    assert cfg.default_scope == 'mmdet3d'
    assert cfg.default_hooks.checkpoint.type == 'CheckpointHook'
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'


def test_user_config_registers_plugin(tmp_path):
    user_cfg = tmp_path / 'my_experiment.py'
    user_cfg.write_text("_base_ = ['mmdet3d::_base_/default_runtime.py']\n"
                        "custom_imports = dict(imports=['gasp'], allow_failed_imports=False)\n"
                        "log_level = 'DEBUG'\n")
    cfg = Config.fromfile(user_cfg)
    assert cfg.log_level == 'DEBUG'
    assert cfg.default_scope == 'mmdet3d'
    import sys
    assert 'gasp' in sys.modules
