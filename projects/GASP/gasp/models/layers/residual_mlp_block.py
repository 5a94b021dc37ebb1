"""Residual MLP block of the implicit decoder's trunk."""
import torch
from mmdet3d.registry import MODELS
from mmengine.model import BaseModule
from torch import nn


@MODELS.register_module()
class ResidualMLPBlock(BaseModule):
    """Pre-activation residual block on per-query features: ``x + fc2(relu(fc1(relu(x))))``.

    Args:
        channels: width of the block's input, hidden layer and output.
        init_cfg: mmengine initialisation config.
    """

    def __init__(self, channels: int = 256, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.fc1 = nn.Linear(channels, channels)
        self.fc2 = nn.Linear(channels, channels)
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x: (..., channels). Returns: (..., channels)."""
        return x + self.fc2(self.activation(self.fc1(self.activation(x))))
