"""DINOv2 ViT built on mmpretrain's ``VisionTransformer``, behaving like the official model.

Why mmpretrain: it is installed with the OpenMMLab stack (timm is not), it ships the DINOv2
architectures (``arch='dinov2-small'``, layer scale, SwiGLU for ViT-g) and is maintained.
Three things of the official ``DinoVisionTransformer`` are missing there and are added here:

- register tokens (the ``*_reg`` variants): inserted after the class token, after the
  position embedding is added;
- the official position-embedding interpolation (bicubic with ``scale_factor =
  (n + 0.1) / M``, kept as is when the patch grid is the square training grid), so that
  features match the official model at every input size;
- ``mask_token`` (a training-only parameter), kept so that official checkpoints load with
  no unexpected key.

The output is the final-norm patch tokens as a feature map (``x_norm_patchtokens``).
"""
import math
from typing import Dict

import torch
import torch.nn.functional as F
from mmpretrain.models import VisionTransformer
from torch import nn

#: name -> architecture of the official hub models (all trained at 518 px, patch 14).
DINOV2_ARCHS: Dict[str, dict] = {
    'dinov2_vits14': dict(arch='dinov2-small', num_register_tokens=0),
    'dinov2_vitb14': dict(arch='base', num_register_tokens=0),
    'dinov2_vitl14': dict(arch='large', num_register_tokens=0),
    'dinov2_vitg14': dict(arch='dinov2-giant', num_register_tokens=0, ffn_type='swiglu_fused'),
    'dinov2_vits14_reg': dict(arch='dinov2-small', num_register_tokens=4),
    'dinov2_vitb14_reg': dict(arch='base', num_register_tokens=4),
    'dinov2_vitl14_reg': dict(arch='large', num_register_tokens=4),
    'dinov2_vitg14_reg': dict(arch='dinov2-giant', num_register_tokens=4, ffn_type='swiglu_fused'),
}


class DINOv2ViT(VisionTransformer):
    """DINOv2 backbone that returns the normalised patch-token feature map.

    Args:
        arch: mmpretrain arch name or dict (``embed_dims``, ``num_layers``, ``num_heads``,
            ``feedforward_channels``).
        img_size: training image size; fixes the stored position-embedding grid (518 for
            the official checkpoints: a 37 x 37 grid).
        patch_size: 14 for DINOv2.
        num_register_tokens: 0, or 4 for the ``*_reg`` checkpoints.
        ffn_type: ``'origin'`` (MLP) or ``'swiglu_fused'`` (ViT-g).
        interpolate_offset: the official interpolation offset (0.1).
    """

    def __init__(self,
                 arch='dinov2-small',
                 img_size: int = 518,
                 patch_size: int = 14,
                 num_register_tokens: int = 0,
                 ffn_type: str = 'origin',
                 interpolate_offset: float = 0.1):
        super().__init__(
            arch=arch,
            img_size=img_size,
            patch_size=patch_size,
            out_type='featmap',
            final_norm=True,
            layer_scale_init_value=1e-5,
            layer_cfgs=dict(ffn_type=ffn_type))
        self.patch_size = patch_size
        self.interpolate_offset = interpolate_offset
        self.num_register_tokens = num_register_tokens
        self.register_tokens = (
            nn.Parameter(torch.zeros(1, num_register_tokens, self.embed_dims))
            if num_register_tokens else None)
        self.mask_token = nn.Parameter(torch.zeros(1, self.embed_dims))  # training only

    def interpolate_pos_embed(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """(1, 1 + grid_h * grid_w, C) position embedding for a patch grid (official rule)."""
        num_stored = self.pos_embed.shape[1] - 1
        if grid_h * grid_w == num_stored and grid_h == grid_w:
            return self.pos_embed
        side = int(math.sqrt(num_stored))
        pos = self.pos_embed.float()
        patch_pos = pos[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
        if self.interpolate_offset:
            size_kwargs = dict(
                scale_factor=((grid_h + self.interpolate_offset) / side,
                              (grid_w + self.interpolate_offset) / side))
        else:
            size_kwargs = dict(size=(grid_h, grid_w))
        patch_pos = F.interpolate(patch_pos, mode='bicubic', antialias=False, **size_kwargs)
        assert patch_pos.shape[-2:] == (grid_h, grid_w), patch_pos.shape
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, -1)
        return torch.cat([pos[:, :1], patch_pos], dim=1).to(self.pos_embed.dtype)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Patch features of normalised images.

        Args:
            images: (B, 3, H, W) normalised RGB, H and W multiples of the patch size.

        Returns:
            (B, C, H / patch, W / patch) final-norm patch tokens.
        """
        batch, _, height, width = images.shape
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(f'image size {height} x {width} is not a multiple of the patch '
                             f'size {self.patch_size}')
        tokens, (grid_h, grid_w) = self.patch_embed(images)
        tokens = torch.cat([self.cls_token.expand(batch, -1, -1), tokens], dim=1)
        tokens = tokens + self.interpolate_pos_embed(grid_h, grid_w)
        if self.register_tokens is not None:
            tokens = torch.cat(
                [tokens[:, :1],
                 self.register_tokens.expand(batch, -1, -1), tokens[:, 1:]], dim=1)
        for layer in self.layers:
            tokens = layer(tokens)
        tokens = self.ln1(tokens)
        patches = tokens[:, 1 + self.num_register_tokens:]
        return patches.reshape(batch, grid_h, grid_w, -1).permute(0, 3, 1, 2).contiguous()


def build_dinov2(name: str = 'dinov2_vits14', **overrides) -> DINOv2ViT:
    """Build an official DINOv2 architecture by hub name (see :data:`DINOV2_ARCHS`)."""
    if name not in DINOV2_ARCHS:
        raise KeyError(f'unknown DINOv2 backbone {name!r}; choose one of {sorted(DINOV2_ARCHS)}')
    return DINOv2ViT(**{**DINOV2_ARCHS[name], **overrides})
