"""Depth rendering of the implicit field: the model side of 4D occupancy forecasting."""
from .gasp_occ_forecaster import GASPOccForecaster
from .learned_depth_renderer import LearnedDepthRenderer

__all__ = ['GASPOccForecaster', 'LearnedDepthRenderer']
