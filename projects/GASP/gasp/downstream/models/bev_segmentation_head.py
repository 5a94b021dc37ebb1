"""Dense BEV heads: per-cell logits on the label grid (map segmentation, BEV forecasting)."""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmdet3d.registry import MODELS
from mmengine.model import BaseModule
from torch import nn

from ..bev_grid import BEVGrid


@MODELS.register_module()
class BEVSegmentationHead(BaseModule):
    """Conv layers on the BEV feature map -> ``num_outputs`` logits per cell, bilinearly
    resized to the label grid; a sigmoid BCE loss per output (outputs may overlap).

    Reads the (num_outputs, H, W) label ``label_key`` of each data sample; :meth:`predict`
    writes the probabilities as ``pred_<label_key>`` (same shape, float32).

    Args:
        in_channels: C of the BEV feature map.
        num_outputs: channels of the prediction.
        label_key: the data-sample field holding the labels.
        point_cloud_range, cell_size: the label grid (as in the label transform).
        hidden_channels, num_convs: the conv layers before the 1x1 output layer.
        pos_weight: BCE weight of positive cells, one per output (or one for all); None = 1.
        loss_weight: scale of the loss.
    """

    def __init__(self,
                 in_channels: int,
                 num_outputs: int,
                 label_key: str,
                 point_cloud_range: Sequence[float],
                 cell_size: float,
                 hidden_channels: int = 64,
                 num_convs: int = 2,
                 pos_weight: Optional[Sequence[float]] = None,
                 loss_weight: float = 1.0,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.label_key = label_key
        self.num_outputs = num_outputs
        self.out_shape = BEVGrid.from_range(point_cloud_range, cell_size).shape
        layers, channels = [], in_channels
        for _ in range(num_convs):
            layers.append(
                ConvModule(
                    channels,
                    hidden_channels,
                    3,
                    padding=1,
                    norm_cfg=dict(type='BN'),
                    act_cfg=dict(type='ReLU')))
            channels = hidden_channels
        self.convs = nn.Sequential(*layers)
        self.output = nn.Conv2d(channels, num_outputs, 1)
        weight = torch.ones(num_outputs) if pos_weight is None else torch.as_tensor(
            pos_weight, dtype=torch.float32).expand(num_outputs).clone()
        self.register_buffer('pos_weight', weight.view(-1, 1, 1), persistent=False)
        self.loss_weight = loss_weight

    def forward(self, bev: torch.Tensor) -> torch.Tensor:
        """(B, C, H', W') features -> (B, num_outputs, H, W) logits on the label grid."""
        logits = self.output(self.convs(bev))
        return F.interpolate(logits, size=self.out_shape, mode='bilinear', align_corners=False)

    def labels(self, data_samples: List) -> torch.Tensor:
        labels = torch.stack([s.get(self.label_key) for s in data_samples]).float()
        return labels.view(len(data_samples), self.num_outputs, *labels.shape[-2:])

    def loss(self, bev: torch.Tensor, data_samples: List) -> Dict[str, torch.Tensor]:
        logits, labels = self(bev), self.labels(data_samples)
        if labels.shape[-2:] != logits.shape[-2:]:
            raise ValueError(f'{type(self).__name__}: labels {tuple(labels.shape[-2:])} but the '
                             f'head predicts {tuple(logits.shape[-2:])}; give the head the '
                             'point_cloud_range and cell_size of the label transform')
        loss = F.binary_cross_entropy_with_logits(logits, labels, pos_weight=self.pos_weight)
        return {f'loss_{self.label_key}': loss * self.loss_weight}

    @torch.no_grad()
    def predict(self, bev: torch.Tensor, data_samples: List) -> None:
        probs = self(bev).sigmoid().float()
        for sample, prob in zip(data_samples, probs):
            shape = sample.get(self.label_key).shape if self.label_key in sample else prob.shape
            sample.set_field(prob.view(shape), f'pred_{self.label_key}')


@MODELS.register_module()
class MapSegmentationHead(BEVSegmentationHead):
    """Map layers (drivable area, lane dividers, pedestrian crossings) per BEV cell; labels
    ``map_raster`` (K, H, W) from :class:`MapRasterTargets`."""

    def __init__(self, num_classes: int = 3, label_key: str = 'map_raster', **kwargs):
        super().__init__(num_outputs=num_classes, label_key=label_key, **kwargs)


@MODELS.register_module()
class BEVSemanticForecastHead(BEVSegmentationHead):
    """Per-class BEV occupancy at T future times from the present BEV features; labels
    ``bev_semantics`` (T, C, H, W) from :class:`BEVSemanticTargets`."""

    def __init__(self,
                 num_times: int,
                 num_classes: int,
                 label_key: str = 'bev_semantics',
                 pos_weight: Optional[Sequence[float]] = None,
                 **kwargs):
        if pos_weight is not None and len(pos_weight) == num_classes:  # per class: every time
            pos_weight = list(pos_weight) * num_times
        super().__init__(
            pos_weight=pos_weight,
            num_outputs=num_times * num_classes,
            label_key=label_key,
            **kwargs)
        self.num_times, self.num_classes = num_times, num_classes
