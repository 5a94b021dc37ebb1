"""Bilinear sampling of a feature map at image pixels."""
import torch
import torch.nn.functional as F


def sample_feature_map(feature_map: torch.Tensor, uv: torch.Tensor, image_height: int,
                       image_width: int) -> torch.Tensor:
    """Features at pixels of the original image.

    The feature map covers the whole image (it comes from the image resized to a multiple of
    the patch size), so image edge coordinates map linearly to feature-map edge coordinates:
    pixel centre ``u`` (centres at integers, as av2 projects) is at
    ``x = (2 u + 1) / W - 1`` in ``grid_sample``'s ``align_corners=False`` convention.

    Args:
        feature_map: (C, h, w).
        uv: (N, 2) pixel coordinates (column, row) in the original image.
        image_height: H of the original image.
        image_width: W of the original image.

    Returns:
        (N, C) bilinearly interpolated features (border values outside the outermost cell
        centres).
    """
    grid = torch.stack([(2 * uv[:, 0] + 1) / image_width - 1,
                        (2 * uv[:, 1] + 1) / image_height - 1],
                       dim=-1)
    grid = grid.to(feature_map.dtype).view(1, 1, -1, 2)
    sampled = F.grid_sample(
        feature_map[None], grid, mode='bilinear', padding_mode='border', align_corners=False)
    return sampled[0, :, 0].transpose(0, 1)
