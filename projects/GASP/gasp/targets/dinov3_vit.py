"""A small, faithful DINOv3 ViT (facebookresearch/dinov3 ``DinoVisionTransformer``, inference).

Neither timm nor mmpretrain 1.2.0 has DINOv3 (axial RoPE, storage tokens, masked K bias), so it
is written here with the official parameter names, so that an official checkpoint (e.g.
``dinov3_vits16_pretrain_lvd1689m-08c60483.pth``) loads with ``strict=True`` and no renaming.

What the official model computes (evaluation mode):

- patch embedding (conv, patch 16) -> tokens ``[cls, storage_0..3, patches]`` (no absolute
  position embedding);
- each block: ``x = x + ls1(attn(norm1(x)))``, ``x = x + ls2(mlp(norm2(x)))``; attention
  applies RoPE to q and k of the patch tokens only; the qkv bias of K is masked to 0;
- RoPE: patch centre coordinates ``(i + 0.5) / H`` and ``(j + 0.5) / W`` mapped to [-1, 1]
  (``normalize_coords='separate'``), angles ``2 pi coord / period`` with
  ``period_k = base ** (4 k / D_head)``, ``k < D_head / 4``, for y then x, tiled twice;
  ``rope(x) = x cos + rotate_half(x) sin``;
- final LayerNorm; the patch features are ``norm(x)[:, 1 + n_storage:]``.

Training-only behaviour (coordinate jitter, drop path, untied local-crop norms) is left out.
Supported: the ViT-S/S+/B/L/H+ hub models (``mlp`` and ``swiglu`` FFNs).
"""
import math
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

#: hub name -> architecture (all: patch 16, 4 storage tokens, LayerNorm eps 1e-5, rope base 100).
DINOV3_ARCHS: Dict[str, dict] = {
    'dinov3_vits16':
    dict(embed_dim=384, depth=12, num_heads=6, ffn_ratio=4.0, ffn_layer='mlp'),
    'dinov3_vits16plus':
    dict(embed_dim=384, depth=12, num_heads=6, ffn_ratio=6.0, ffn_layer='swiglu'),
    'dinov3_vitb16':
    dict(embed_dim=768, depth=12, num_heads=12, ffn_ratio=4.0, ffn_layer='mlp'),
    'dinov3_vitl16':
    dict(embed_dim=1024, depth=24, num_heads=16, ffn_ratio=4.0, ffn_layer='mlp'),
    'dinov3_vith16plus':
    dict(embed_dim=1280, depth=32, num_heads=20, ffn_ratio=6.0, ffn_layer='swiglu'),
}


class PatchEmbed(nn.Module):
    """Conv patch embedding; returns (B, H', W', C)."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.proj(images).permute(0, 2, 3, 1)


class LayerScale(nn.Module):

    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim, ), 1e-5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Mlp(nn.Module):

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwiGLUFFN(nn.Module):
    """``w3(silu(w1 x) * w2 x)`` with the hidden width rounded up to a multiple of 8."""

    def __init__(self, dim: int, hidden: int, align_to: int = 8):
        super().__init__()
        width = int(hidden * 2 / 3)
        width += -width % align_to
        self.w1 = nn.Linear(dim, width)
        self.w2 = nn.Linear(dim, width)
        self.w3 = nn.Linear(width, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w3(F.silu(self.w1(x)) * self.w2(x))


class LinearKMaskedBias(nn.Linear):
    """qkv projection whose K bias is multiplied by the stored ``bias_mask`` (zeros on K)."""

    def __init__(self, dim: int):
        super().__init__(dim, 3 * dim)
        mask = torch.ones(3 * dim)
        mask[dim:2 * dim] = 0
        self.register_buffer('bias_mask', mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias * self.bias_mask)


def rope_rotate_half(x: torch.Tensor) -> torch.Tensor:
    """[x0 .. x_{D/2-1}, x_{D/2} ..] -> [-x_{D/2} .., x0 ..]."""
    first, second = x.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)


def rope_apply(x: torch.Tensor, sin: torch.Tensor, cos: torch.Tensor) -> torch.Tensor:
    return x * cos + rope_rotate_half(x) * sin


class RopePositionEmbedding(nn.Module):
    """Axial RoPE tables for an H x W patch grid (``base`` parametrisation, 'separate')."""

    def __init__(self, embed_dim: int, num_heads: int, base: float = 100.0):
        super().__init__()
        head_dim = embed_dim // num_heads
        assert head_dim % 4 == 0, 'RoPE needs a head dimension divisible by 4'
        periods = base**(2 * torch.arange(head_dim // 4, dtype=torch.float32) / (head_dim // 2))
        self.register_buffer('periods', periods)

    def forward(self, grid_h: int, grid_w: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """(sin, cos), each (H * W, D_head) float32."""
        kw = dict(device=self.periods.device, dtype=torch.float32)
        coords_h = torch.arange(0.5, grid_h, **kw) / grid_h
        coords_w = torch.arange(0.5, grid_w, **kw) / grid_w
        coords = torch.stack(torch.meshgrid(coords_h, coords_w, indexing='ij'), -1).flatten(0, 1)
        coords = 2.0 * coords - 1.0
        angles = 2 * math.pi * coords[:, :, None] / self.periods.float()[None, None, :]
        angles = angles.flatten(1, 2).tile(2)
        return torch.sin(angles), torch.cos(angles)


class SelfAttention(nn.Module):

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = LinearKMaskedBias(dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, rope: Tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, dim // self.num_heads)
        q, k, v = qkv.unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, heads, N, D_head)
        sin, cos = rope
        prefix = tokens - sin.shape[0]
        dtype = q.dtype
        q = torch.cat([q[:, :, :prefix],
                       rope_apply(q[:, :, prefix:].float(), sin, cos).to(dtype)],
                      dim=2)
        k = torch.cat([k[:, :, :prefix],
                       rope_apply(k[:, :, prefix:].float(), sin, cos).to(dtype)],
                      dim=2)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class SelfAttentionBlock(nn.Module):

    def __init__(self, dim: int, num_heads: int, ffn_ratio: float, ffn_layer: str):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn = SelfAttention(dim, num_heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        hidden = int(dim * ffn_ratio)
        self.mlp = Mlp(dim, hidden) if ffn_layer == 'mlp' else SwiGLUFFN(dim, hidden)
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor, rope) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x), rope))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DINOv3ViT(nn.Module):
    """DINOv3 ViT that returns the normalised patch-token feature map.

    Args:
        embed_dim, depth, num_heads, ffn_ratio, ffn_layer: architecture
            (:data:`DINOV3_ARCHS`).
        patch_size: 16 for the hub models.
        n_storage_tokens: 4 for the hub models.
        rope_base: RoPE period base (100).
    """

    def __init__(self,
                 embed_dim: int = 384,
                 depth: int = 12,
                 num_heads: int = 6,
                 ffn_ratio: float = 4.0,
                 ffn_layer: str = 'mlp',
                 patch_size: int = 16,
                 n_storage_tokens: int = 4,
                 rope_base: float = 100.0):
        super().__init__()
        self.patch_size = patch_size
        self.embed_dims = embed_dim
        self.n_storage_tokens = n_storage_tokens
        self.patch_embed = PatchEmbed(patch_size, 3, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        if n_storage_tokens:
            self.storage_tokens = nn.Parameter(torch.zeros(1, n_storage_tokens, embed_dim))
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))  # training only
        self.rope_embed = RopePositionEmbedding(embed_dim, num_heads, rope_base)
        self.blocks = nn.ModuleList(
            SelfAttentionBlock(embed_dim, num_heads, ffn_ratio, ffn_layer) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-5)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Patch features of normalised images.

        Args:
            images: (B, 3, H, W) normalised RGB, H and W multiples of the patch size.

        Returns:
            (B, C, H / patch, W / patch) final-norm patch tokens.
        """
        patches = self.patch_embed(images)
        batch, grid_h, grid_w, _ = patches.shape
        prefix = [self.cls_token.expand(batch, -1, -1)]
        if self.n_storage_tokens:
            prefix.append(self.storage_tokens.expand(batch, -1, -1))
        x = torch.cat(prefix + [patches.flatten(1, 2)], dim=1)
        rope = self.rope_embed(grid_h, grid_w)
        for block in self.blocks:
            x = block(x, rope)
        x = self.norm(x)[:, 1 + self.n_storage_tokens:]
        return x.reshape(batch, grid_h, grid_w, -1).permute(0, 3, 1, 2).contiguous()


def build_dinov3(name: str = 'dinov3_vits16', **overrides) -> DINOv3ViT:
    """Build a DINOv3 hub architecture by name (see :data:`DINOV3_ARCHS`)."""
    if name not in DINOV3_ARCHS:
        raise KeyError(f'unknown DINOv3 backbone {name!r}; choose one of {sorted(DINOV3_ARCHS)}')
    return DINOv3ViT(**{**DINOV3_ARCHS[name], **overrides})
