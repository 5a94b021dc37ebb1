"""Synthetic Argoverse 2 world: procedural driving logs written in the exact AV2 sensor format.

Public API:

- :func:`generate_world` writes ``<root>/sensor/{train,val,test}/<log_id>/`` for a preset.
- :func:`generate_log` writes one log.
- :data:`PRESETS` / :class:`SyntheticPreset`: ``tiny`` (unit tests), ``demo``, ``full`` (AV2
  density, for GPU benchmarks).
- :func:`build_scene` rebuilds a log's world (for ground-truth checks).
"""
from .generate import SIDECAR_DIR, generate_log, generate_world, log_tasks
from .presets import PRESETS, SyntheticPreset, get_preset
from .scene import Scene, build_scene

__all__ = [
    'generate_world', 'generate_log', 'log_tasks', 'PRESETS', 'SyntheticPreset', 'get_preset',
    'Scene', 'build_scene', 'SIDECAR_DIR'
]
