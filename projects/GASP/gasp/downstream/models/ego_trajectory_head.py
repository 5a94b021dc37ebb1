"""Ego trajectory prediction: future waypoints regressed from the BEV feature map."""
from typing import Dict, List

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmdet3d.registry import MODELS
from mmengine.model import BaseModule
from torch import nn


@MODELS.register_module()
class EgoTrajectoryHead(BaseModule):
    """Strided convs -> adaptive pooling to ``pool_size`` x ``pool_size`` -> MLP ->
    (num_waypoints, 2) metric (x, y) in the reference frame.

    Reads ``ego_waypoints`` (W, 2) of each data sample (:class:`EgoWaypointTargets`);
    :meth:`predict` writes ``pred_ego_waypoints`` (W, 2). Loss: smooth L1 on the metres.

    Args:
        in_channels: C of the BEV feature map.
        num_waypoints: W.
        hidden_channels: conv and MLP width.
        num_convs: stride-2 conv layers.
        pool_size: side of the pooled map flattened into the MLP.
        loss_weight: scale of the loss.
    """

    def __init__(self,
                 in_channels: int,
                 num_waypoints: int = 3,
                 hidden_channels: int = 64,
                 num_convs: int = 2,
                 pool_size: int = 4,
                 loss_weight: float = 1.0,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        layers, channels = [], in_channels
        for _ in range(num_convs):
            layers.append(
                ConvModule(
                    channels,
                    hidden_channels,
                    3,
                    stride=2,
                    padding=1,
                    norm_cfg=dict(type='BN'),
                    act_cfg=dict(type='ReLU')))
            channels = hidden_channels
        self.convs = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(pool_size))
        self.mlp = nn.Sequential(nn.Flatten(),
                                 nn.Linear(channels * pool_size * pool_size, hidden_channels),
                                 nn.ReLU(inplace=True), nn.Linear(hidden_channels,
                                                                  num_waypoints * 2))
        self.num_waypoints = num_waypoints
        self.loss_weight = loss_weight

    def forward(self, bev: torch.Tensor) -> torch.Tensor:
        """(B, C, H', W') -> (B, num_waypoints, 2) waypoints (m)."""
        return self.mlp(self.convs(bev)).view(-1, self.num_waypoints, 2)

    def loss(self, bev: torch.Tensor, data_samples: List) -> Dict[str, torch.Tensor]:
        target = torch.stack([s.ego_waypoints for s in data_samples]).float()
        return dict(loss_ego_trajectory=F.smooth_l1_loss(self(bev), target) * self.loss_weight)

    @torch.no_grad()
    def predict(self, bev: torch.Tensor, data_samples: List) -> None:
        for sample, waypoints in zip(data_samples, self(bev).float()):
            sample.set_field(waypoints, 'pred_ego_waypoints')
