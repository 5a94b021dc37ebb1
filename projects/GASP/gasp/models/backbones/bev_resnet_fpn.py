"""UnO-style BEV encoder: a ResNet of 2-D BEV convolutions followed by an FPN that fuses all
stages into one feature map at the resolution of the first stage."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmdet3d.registry import MODELS
from mmengine.model import BaseModule
from torch import nn


class BasicResBlock(BaseModule):
    """ResNet basic block: two 3x3 conv + norm layers and a (projected) identity shortcut.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        stride: stride of the first convolution (and of the shortcut projection).
        norm_cfg: mmcv norm layer config.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, norm_cfg: dict):
        super().__init__()
        self.conv1 = ConvModule(
            in_channels,
            out_channels,
            3,
            stride=stride,
            padding=1,
            norm_cfg=norm_cfg,
            act_cfg=dict(type='ReLU'))
        self.conv2 = ConvModule(
            out_channels, out_channels, 3, padding=1, norm_cfg=norm_cfg, act_cfg=None)
        self.shortcut = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = ConvModule(
                in_channels, out_channels, 1, stride=stride, norm_cfg=norm_cfg, act_cfg=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x: (B, in_channels, H, W). Returns: (B, out_channels, H / stride, W / stride)."""
        identity = x if self.shortcut is None else self.shortcut(x)
        return F.relu(self.conv2(self.conv1(x)) + identity)


@MODELS.register_module()
class BEVResNetFPN(BaseModule):
    """ResNet BEV backbone + FPN (the GASP / UnO encoder).

    Layout: a stem of 3x3 conv layers (``stem_channels``, ``stem_strides``), then one ResNet
    stage per entry of ``stage_channels`` (``stage_blocks[i]`` basic blocks, the first with
    stride ``stage_strides[i]``), then an FPN: a 1x1 lateral conv per stage, top-down nearest
    upsampling and addition, and a 3x3 output conv on the finest level. The output stride is
    ``prod(stem_strides) * stage_strides[0]`` (4 with the defaults).

    Args:
        in_channels: C_in of the BEV input grid (height slices x time slots for
            :func:`gasp_ops.bev_voxelize`).
        stem_channels: output channels of each stem conv.
        stem_strides: stride of each stem conv.
        stage_channels: output channels of each ResNet stage.
        stage_blocks: number of basic blocks per stage.
        stage_strides: stride of the first block of each stage.
        out_channels: channels of the output BEV feature map.
        norm_cfg: mmcv norm layer config used throughout (e.g. ``dict(type='SyncBN')``).
        init_cfg: mmengine initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 stem_channels: Sequence[int] = (32, 64),
                 stem_strides: Sequence[int] = (1, 2),
                 stage_channels: Sequence[int] = (64, 128, 256),
                 stage_blocks: Sequence[int] = (2, 2, 2),
                 stage_strides: Sequence[int] = (2, 2, 2),
                 out_channels: int = 128,
                 norm_cfg: Optional[dict] = None,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if len(stem_channels) != len(stem_strides):
            raise ValueError('BEVResNetFPN: stem_channels and stem_strides need one entry per '
                             f'stem conv, got {tuple(stem_channels)} and {tuple(stem_strides)}')
        if not len(stage_channels) == len(stage_blocks) == len(stage_strides):
            raise ValueError('BEVResNetFPN: stage_channels, stage_blocks and stage_strides need '
                             f'one entry per stage, got {tuple(stage_channels)}, '
                             f'{tuple(stage_blocks)} and {tuple(stage_strides)}')
        norm_cfg = dict(type='BN') if norm_cfg is None else norm_cfg
        self.out_channels = out_channels
        self.out_stride = stage_strides[0]
        for stride in stem_strides:
            self.out_stride *= stride

        stem, channels = [], in_channels
        for width, stride in zip(stem_channels, stem_strides):
            stem.append(
                ConvModule(
                    channels,
                    width,
                    3,
                    stride=stride,
                    padding=1,
                    norm_cfg=norm_cfg,
                    act_cfg=dict(type='ReLU')))
            channels = width
        self.stem = nn.Sequential(*stem)

        self.stages = nn.ModuleList()
        for width, num_blocks, stride in zip(stage_channels, stage_blocks, stage_strides):
            blocks = [BasicResBlock(channels, width, stride, norm_cfg)]
            blocks += [BasicResBlock(width, width, 1, norm_cfg) for _ in range(num_blocks - 1)]
            self.stages.append(nn.Sequential(*blocks))
            channels = width

        self.laterals = nn.ModuleList(
            ConvModule(width, out_channels, 1, norm_cfg=norm_cfg, act_cfg=None)
            for width in stage_channels)
        self.output_conv = ConvModule(
            out_channels, out_channels, 3, padding=1, norm_cfg=norm_cfg, act_cfg=dict(type='ReLU'))

    def forward(self, bev: torch.Tensor) -> Tuple[torch.Tensor]:
        """Encode a BEV grid.

        Args:
            bev: (B, C_in, H, W) BEV input in the reference frame, rows along y, columns along x.

        Returns:
            A 1-tuple (as mmdet3d backbone + neck pairs return) holding the
            (B, out_channels, ceil(H / out_stride), ceil(W / out_stride)) BEV feature map,
            covering the same region as the input.
        """
        x = self.stem(bev)
        stage_outputs = []
        for stage in self.stages:
            x = stage(x)
            stage_outputs.append(x)
        fused = self.laterals[-1](stage_outputs[-1])
        for lateral, features in zip(self.laterals[-2::-1], stage_outputs[-2::-1]):
            fused = lateral(features) + F.interpolate(
                fused, size=features.shape[-2:], mode='nearest')
        return (self.output_conv(fused), )
