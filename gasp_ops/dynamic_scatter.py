"""Point-to-voxel reduction (``dynamic_scatter``) with a plain PyTorch implementation.

mmcv 2.1.0 compiles ``dynamic_point_to_voxel_forward`` for CUDA only, so mmdet3d's dynamic
voxel encoders (``DynamicVFE``, ``DynamicPillarFeatureNet``, ``DynamicSimpleVFE``) fail on
CPU. :func:`dynamic_scatter_reference` reproduces the CUDA op exactly (same voxel order,
same gradients, including the tie rule of ``max``) and is the specification of the op;
:func:`dynamic_scatter` dispatches CUDA tensors to mmcv's kernel.
"""
from typing import Tuple

import torch
from torch.autograd import Function

REDUCE_TYPES = ('sum', 'mean', 'max')


def _group_points(coors: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Group points by voxel coordinate.

    Args:
        coors: (N, ndim) integer voxel coordinates; a row with any negative entry is
            outside the grid and belongs to no voxel.

    Returns:
        voxel_coors: (M, ndim) unique coordinates in lexicographic order.
        point2voxel: (N,) voxel index of each point, -1 for points outside the grid.
        counts: (M,) number of points in each voxel.
    """
    valid = (coors >= 0).all(dim=1)
    voxel_coors, inverse = torch.unique(coors[valid], dim=0, return_inverse=True)
    point2voxel = torch.full((coors.shape[0], ), -1, dtype=torch.long, device=coors.device)
    point2voxel[valid] = inverse
    counts = torch.bincount(inverse, minlength=voxel_coors.shape[0])
    return voxel_coors, point2voxel, counts


class _DynamicScatterReference(Function):

    @staticmethod
    def forward(ctx, feats: torch.Tensor, coors: torch.Tensor, reduce_type: str):
        voxel_coors, point2voxel, counts = _group_points(coors)
        valid = point2voxel >= 0
        index = point2voxel[valid]
        feats_valid = feats[valid]
        num_voxels, channels = voxel_coors.shape[0], feats.shape[1]
        voxel_feats = feats.new_zeros((num_voxels, channels))
        if reduce_type == 'max':
            voxel_feats.scatter_reduce_(
                0,
                index.unsqueeze(1).expand_as(feats_valid),
                feats_valid,
                'amax',
                include_self=False)
        else:
            voxel_feats.index_add_(0, index, feats_valid)
            if reduce_type == 'mean':
                voxel_feats /= counts.unsqueeze(1).to(feats.dtype)
        ctx.reduce_type = reduce_type
        ctx.save_for_backward(feats, voxel_feats, point2voxel, counts)
        ctx.mark_non_differentiable(voxel_coors)
        return voxel_feats, voxel_coors

    @staticmethod
    def backward(ctx, grad_voxel_feats: torch.Tensor, grad_voxel_coors=None):
        feats, voxel_feats, point2voxel, counts = ctx.saved_tensors
        grad_feats = torch.zeros_like(feats)
        valid = point2voxel >= 0
        index = point2voxel[valid]
        if ctx.reduce_type == 'max':
            # As mmcv's kernel: the gradient of a voxel channel goes to the lowest-index
            # point that attains the maximum.
            point_ids = torch.nonzero(valid).squeeze(1)
            is_max = feats[valid] == voxel_feats[index]
            candidate = torch.where(is_max, point_ids.unsqueeze(1), feats.shape[0])
            argmax = torch.full_like(voxel_feats, feats.shape[0], dtype=torch.long)
            argmax.scatter_reduce_(0, index.unsqueeze(1).expand_as(candidate), candidate, 'amin')
            channel = torch.arange(feats.shape[1], device=feats.device).expand_as(argmax)
            grad_feats[argmax.reshape(-1), channel.reshape(-1)] = grad_voxel_feats.reshape(-1)
        else:
            grad = grad_voxel_feats[index]
            if ctx.reduce_type == 'mean':
                grad = grad / counts[index].unsqueeze(1).to(grad.dtype)
            grad_feats[valid] = grad
        return grad_feats, None, None


def dynamic_scatter_reference(feats: torch.Tensor,
                              coors: torch.Tensor,
                              reduce_type: str = 'max') -> Tuple[torch.Tensor, torch.Tensor]:
    """Reduce point features that share a voxel (the specification of the op).

    Args:
        feats: (N, C) point features.
        coors: (N, ndim) integer voxel coordinates, e.g. (batch, z, y, x); rows with a
            negative entry are dropped.
        reduce_type: 'sum', 'mean' or 'max'.

    Returns:
        voxel_feats: (M, C) reduced features.
        voxel_coors: (M, ndim) unique voxel coordinates in lexicographic order.
    """
    if reduce_type not in REDUCE_TYPES:
        raise ValueError(f'dynamic_scatter: reduce_type must be one of {REDUCE_TYPES}, '
                         f'got {reduce_type!r}')
    if feats.dim() != 2 or coors.dim() != 2 or feats.shape[0] != coors.shape[0]:
        raise ValueError('dynamic_scatter: expected feats (N, C) and coors (N, ndim), got '
                         f'{tuple(feats.shape)} and {tuple(coors.shape)}')
    return _DynamicScatterReference.apply(feats, coors, reduce_type)


def dynamic_scatter(feats: torch.Tensor,
                    coors: torch.Tensor,
                    reduce_type: str = 'max') -> Tuple[torch.Tensor, torch.Tensor]:
    """Dispatch point-to-voxel reduction: mmcv's CUDA kernel on GPU, the reference on CPU.

    Same arguments and results as :func:`dynamic_scatter_reference`.
    """
    if feats.is_cuda:
        from mmcv.ops.scatter_points import _DynamicScatter
        return _DynamicScatter.apply(feats, coors, reduce_type)
    return dynamic_scatter_reference(feats, coors, reduce_type)
