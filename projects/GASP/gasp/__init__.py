"""GASP for OpenMMLab: importing this package registers every GASP module into the
mmdet3d registries (use ``custom_imports=dict(imports=['gasp'])`` in a config)."""
from . import compat
from .version import __version__

compat.apply_fixes()

from . import (datasets, downstream, engine, evaluation, models,  # noqa: E402 (after the fixes)
               targets)

__all__ = [
    '__version__', 'compat', 'datasets', 'downstream', 'engine', 'evaluation', 'models', 'targets'
]
