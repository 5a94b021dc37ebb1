"""Implicit decoders: fields that answer space-time queries from a BEV feature map."""
from .implicit_occupancy_decoder import ImplicitOccupancyDecoder

__all__ = ['ImplicitOccupancyDecoder']
