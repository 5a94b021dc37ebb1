"""Optional feature denoiser in the style of Denoising-ViT (Yang et al., ECCV 2024).

DVT removes the position-dependent artefacts of ViT features with a light transformer block
trained per backbone: ``denoised = block(features + pos_embed)``, with a learned position
embedding over the patch grid (resized bicubically to the input grid). This module has that
form; its weights come from a local file with the keys ``pos_embed`` (1, C, h0, w0) and
``block.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*`` (a DVT release checkpoint needs
its keys mapped to these names once).
"""
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..datasets.errors import AV2DataError


class _Block(nn.Module):

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = nn.Module()
        self.attn.qkv = nn.Linear(dim, 3 * dim)
        self.attn.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential()
        self.mlp.fc1 = nn.Linear(dim, int(dim * mlp_ratio))
        self.mlp.act = nn.GELU()
        self.mlp.fc2 = nn.Linear(int(dim * mlp_ratio), dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        qkv = self.attn.qkv(self.norm1(x)).reshape(batch, tokens, 3, self.num_heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, tokens, dim)
        x = x + self.attn.proj(attn)
        return x + self.mlp(self.norm2(x))


class FeatureDenoiser(nn.Module):
    """Denoise (B, C, h, w) ViT feature maps.

    Args:
        dim: feature channels C.
        num_heads: attention heads of the block.
        pos_grid: (h0, w0) of the stored position embedding.
    """

    def __init__(self, dim: int, num_heads: int = 6, pos_grid=(37, 37)):
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, dim, *pos_grid))
        self.block = _Block(dim, num_heads)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch, dim, grid_h, grid_w = features.shape
        pos = F.interpolate(
            self.pos_embed, size=(grid_h, grid_w), mode='bicubic', align_corners=False)
        tokens = (features + pos).flatten(2).transpose(1, 2)
        tokens = self.block(tokens)
        return tokens.transpose(1, 2).reshape(batch, dim, grid_h, grid_w)

    @classmethod
    def from_file(cls, path, num_heads: int = 6) -> 'FeatureDenoiser':
        """Build from a local state dict (sizes read from ``pos_embed``)."""
        path = Path(path)
        if not path.is_file():
            raise AV2DataError(
                'denoiser weights file not found',
                path=str(path),
                fix='pass a local denoiser checkpoint, or drop --denoiser.')
        state = torch.load(path, map_location='cpu', weights_only=True)
        state = state.get('state_dict', state)
        if 'pos_embed' not in state:
            raise AV2DataError(
                'denoiser checkpoint has no pos_embed',
                path=str(path),
                fix='map the checkpoint keys to FeatureDenoiser names.')
        _, dim, grid_h, grid_w = state['pos_embed'].shape
        model = cls(dim, num_heads, (grid_h, grid_w))
        model.load_state_dict(state, strict=True)
        return model
