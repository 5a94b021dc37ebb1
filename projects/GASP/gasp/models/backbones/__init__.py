"""BEV encoders."""
from .bev_resnet_fpn import BEVResNetFPN

__all__ = ['BEVResNetFPN']
