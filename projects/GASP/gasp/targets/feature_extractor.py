"""Images -> ViT patch feature maps: resize, normalise, backbone, optional denoiser."""
from pathlib import Path
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .dinov2_checkpoint import file_sha256, load_dinov2_checkpoint, unwrap_state_dict
from .dinov2_vit import DINOV2_ARCHS, build_dinov2
from .dinov3_vit import DINOV3_ARCHS, build_dinov3

#: ImageNet statistics on 0-255 RGB (both DINOv2 and the LVD DINOv3 models use them).
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
RANDOM_WEIGHTS = 'random-init'


def build_backbone(name: str, weights: Optional[str], **overrides) -> Tuple[nn.Module, str]:
    """A DINOv2 or DINOv3 ViT by hub name, loaded from a local official checkpoint.

    Args:
        name: ``dinov2_vits14`` ... (:data:`DINOV2_ARCHS`) or ``dinov3_vits16`` ...
            (:data:`DINOV3_ARCHS`).
        weights: local ``.pth`` file; None keeps the random initialisation (tests only).
        **overrides: architecture overrides (small random networks in tests).

    Returns:
        The model (eval mode) and the SHA-256 of the weights file (or ``'random-init'``).
    """
    if name in DINOV2_ARCHS:
        model = build_dinov2(name, **overrides)
        sha = load_dinov2_checkpoint(model, weights) if weights else RANDOM_WEIGHTS
    elif name in DINOV3_ARCHS:
        model = build_dinov3(name, **overrides)
        sha = RANDOM_WEIGHTS
        if weights:
            from ..datasets.errors import AV2DataError
            if not Path(weights).is_file():
                raise AV2DataError(
                    'DINOv3 weights file not found',
                    path=str(weights),
                    fix='pass the local official checkpoint with --weights.')
            state = unwrap_state_dict(torch.load(weights, map_location='cpu', weights_only=True))
            result = model.load_state_dict(state, strict=False)
            if result.missing_keys or result.unexpected_keys:
                raise AV2DataError(
                    f'checkpoint does not fit {name}: missing {result.missing_keys[:5]}, '
                    f'unexpected {result.unexpected_keys[:5]}',
                    path=str(weights),
                    fix='choose the --backbone that matches the file.')
            sha = file_sha256(weights)
    else:
        raise KeyError(f'unknown backbone {name!r}; choose one of '
                       f'{sorted(DINOV2_ARCHS) + sorted(DINOV3_ARCHS)}')
    model.eval()
    return model, sha


def network_input_size(height: int, width: int, short_side: int, patch: int) -> Tuple[int, int]:
    """Image size fed to the ViT: the short side scaled to ``short_side`` and both sides
    rounded to multiples of the patch size (aspect ratio kept within half a patch)."""
    scale = short_side / min(height, width)
    return (max(patch,
                int(round(height * scale / patch)) * patch),
            max(patch,
                int(round(width * scale / patch)) * patch))


class DINOFeatureExtractor(nn.Module):
    """RGB images -> patch feature maps.

    Args:
        backbone: a ViT returning (B, C, h, w) patch features (``patch_size`` attribute).
        image_short_side: the short image side fed to the ViT (default 448 px: AV2's
            1550 x 2048 images become 448 x 588, a 32 x 42 patch grid for patch 14).
        denoiser: optional module applied to the feature maps.
    """

    def __init__(self,
                 backbone: nn.Module,
                 image_short_side: int = 448,
                 denoiser: Optional[nn.Module] = None):
        super().__init__()
        self.backbone = backbone
        self.denoiser = denoiser
        self.image_short_side = image_short_side
        self.register_buffer('mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer('std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    @property
    def patch_size(self) -> int:
        return int(self.backbone.patch_size)

    def input_size(self, height: int, width: int) -> Tuple[int, int]:
        return network_input_size(height, width, self.image_short_side, self.patch_size)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Feature maps of same-size images.

        Args:
            images: (B, 3, H, W) RGB, uint8 or float in 0-255.

        Returns:
            (B, C, h, w) float32 features covering the whole image.
        """
        x = images.float()
        size = self.input_size(x.shape[-2], x.shape[-1])
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode='bilinear', align_corners=False, antialias=True)
        x = (x - self.mean) / self.std
        features = self.backbone(x)
        if self.denoiser is not None:
            features = self.denoiser(features)
        return features.float()
