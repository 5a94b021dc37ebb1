"""Deformable BEV gather: the implicit decoder's attention read of the BEV feature map.

Each query has ``num_heads`` heads; head ``h`` reads its own channel group
``[h * C / num_heads, (h + 1) * C / num_heads)`` of the BEV map at ``K`` sampling locations by
bilinear interpolation (zero outside the map) and sums the samples with its attention weights.
This is single-level ``MultiScaleDeformableAttention`` without the value/output projections.

:func:`deformable_bev_gather_reference` is the plain PyTorch specification of the op (with
autograd); :func:`deformable_bev_gather` is the one dispatch point: CUDA tensors in fp32 / bf16 /
fp16 run the Triton kernels of :mod:`gasp_ops.deformable_bev_gather_triton` (forward and
backward; fastest with a channels-last map; maps below 4096 cells a side), everything else the
reference.

Sampling locations are **normalized** ``[-1, 1]`` coordinates in the convention of
``torch.nn.functional.grid_sample(align_corners=False)``: ``(-1, -1)`` is the outer corner of
cell ``[0, 0]`` and ``(1, 1)`` the outer corner of cell ``[H - 1, W - 1]``; the first component
runs along W (x, columns), the second along H (y, rows). The centre of cell ``(iy, ix)`` is at
``((2 * ix + 1) / W - 1, (2 * iy + 1) / H - 1)``. For a BEV map over
``point_cloud_range`` this is ``2 * (x - x_min) / (x_max - x_min) - 1`` (see
:func:`metric_to_normalized`).
"""
import functools
from typing import Sequence

import torch
import torch.nn.functional as F

from .fast_path import FAST_DTYPES, device_constant, use_fast_path


@functools.lru_cache(maxsize=64)
def _range_bounds(bounds: tuple, dtype: torch.dtype, device: torch.device):
    """(lower, span) of (x_min, y_min, x_max, y_max) as (2,) tensors of ``dtype``, the span
    subtracted on the device once, not on every call."""
    lower = device_constant(bounds[:2], dtype, device)
    return lower, device_constant(bounds[2:], dtype, device) - lower


def metric_to_normalized(xy: torch.Tensor, point_cloud_range: Sequence[float]) -> torch.Tensor:
    """Convert metric (x, y) in the reference frame to the gather's normalized coordinates.

    Args:
        xy: (..., 2) metric x, y in the frame of the BEV map.
        point_cloud_range: (x_min, y_min, z_min, x_max, y_max, z_max) covered by the map.

    Returns:
        (..., 2) normalized coordinates, -1 / 1 at the region's edges.
    """
    bounds = tuple(float(point_cloud_range[i]) for i in (0, 1, 3, 4))
    lower, span = _range_bounds(bounds, xy.dtype, xy.device)
    return 2.0 * (xy - lower) / span - 1.0


def _check_shapes(bev_feats: torch.Tensor, sampling_locations: torch.Tensor,
                  attention_weights: torch.Tensor) -> None:
    if bev_feats.dim() != 4:
        raise ValueError('deformable_bev_gather: bev_feats must be (B, C, H, W), got '
                         f'{tuple(bev_feats.shape)}')
    if sampling_locations.dim() != 5 or sampling_locations.shape[-1] != 2:
        raise ValueError('deformable_bev_gather: sampling_locations must be '
                         f'(B, Q, num_heads, K, 2), got {tuple(sampling_locations.shape)}')
    if attention_weights.shape != sampling_locations.shape[:-1]:
        raise ValueError('deformable_bev_gather: attention_weights must be (B, Q, num_heads, K) '
                         f'matching sampling_locations {tuple(sampling_locations.shape)}, got '
                         f'{tuple(attention_weights.shape)}')
    batch, channels = bev_feats.shape[:2]
    num_heads = sampling_locations.shape[2]
    if sampling_locations.shape[0] != batch or channels % num_heads != 0:
        raise ValueError(f'deformable_bev_gather: bev_feats {tuple(bev_feats.shape)} does not '
                         f'fit sampling_locations {tuple(sampling_locations.shape)}: batch sizes '
                         'must match and C must be divisible by num_heads')


def deformable_bev_gather_reference(bev_feats: torch.Tensor, sampling_locations: torch.Tensor,
                                    attention_weights: torch.Tensor) -> torch.Tensor:
    """Attention-weighted bilinear gather per head (the specification of the op).

    ``out[b, q, h * Cg + c] = sum_k w[b, q, h, k] * bilinear(bev[b, h * Cg + c], loc[b, q, h, k])``
    with ``Cg = C / num_heads`` and zero padding outside the map. Differentiable w.r.t. all three
    inputs.

    Args:
        bev_feats: (B, C, H, W) BEV feature map.
        sampling_locations: (B, Q, num_heads, K, 2) normalized (x, y) in [-1, 1] (see the module
            docstring); values outside sample zeros.
        attention_weights: (B, Q, num_heads, K) weight of each sample (usually a softmax over K).

    Returns:
        (B, Q, C) gathered features in the promoted dtype of ``bev_feats`` and
        ``sampling_locations``; channel group h comes from head h.
    """
    _check_shapes(bev_feats, sampling_locations, attention_weights)
    batch, channels, height, width = bev_feats.shape
    _, num_queries, num_heads, num_points, _ = sampling_locations.shape
    group = channels // num_heads
    # Never round the locations to a low-precision map dtype: in bf16 a normalized coordinate
    # is off by up to half a metre on a 140 m map. Compute in the promoted dtype instead.
    dtype = torch.promote_types(bev_feats.dtype, sampling_locations.dtype)
    # Heads become extra batch entries: (B * nh, Cg, H, W) read at (B * nh, Q, K, 2).
    value = bev_feats.reshape(batch * num_heads, group, height, width).to(dtype)
    grid = sampling_locations.transpose(1, 2).reshape(batch * num_heads, num_queries, num_points,
                                                      2).to(dtype)
    sampled = F.grid_sample(
        value, grid, mode='bilinear', padding_mode='zeros',
        align_corners=False)  # (B * nh, Cg, Q, K)
    weights = attention_weights.transpose(1, 2).reshape(batch * num_heads, 1, num_queries,
                                                        num_points)
    out = (sampled * weights.to(dtype)).sum(dim=-1)  # (B * nh, Cg, Q)
    return out.reshape(batch, channels, num_queries).transpose(1, 2)


def deformable_bev_gather(bev_feats: torch.Tensor, sampling_locations: torch.Tensor,
                          attention_weights: torch.Tensor) -> torch.Tensor:
    """Dispatch the deformable BEV gather: the Triton kernels for CUDA tensors in fp32 / bf16 /
    fp16 (see :mod:`gasp_ops.fast_path`), the PyTorch reference otherwise.

    Same arguments and result as :func:`deformable_bev_gather_reference`.
    """
    tensors = (bev_feats, sampling_locations, attention_weights)
    if use_fast_path(*tensors) and all(t.dtype in FAST_DTYPES for t in tensors):
        from .deformable_bev_gather_triton import deformable_bev_gather_triton, gather_supported
        if gather_supported(bev_feats):
            return deformable_bev_gather_triton(bev_feats, sampling_locations, attention_weights)
    return deformable_bev_gather_reference(bev_feats, sampling_locations, attention_weights)
