from .field_visualization_hook import FieldVisualizationHook
from .validate_at_start_hook import ValidateAtStartHook

__all__ = ['FieldVisualizationHook', 'ValidateAtStartHook']
