"""Training-time extensions: hooks registered into ``mmdet3d.registry.HOOKS``."""
from .hooks import FieldVisualizationHook, ValidateAtStartHook

__all__ = ['FieldVisualizationHook', 'ValidateAtStartHook']
