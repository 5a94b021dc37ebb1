"""Triton fast path of :func:`gasp_ops.bev_voxelize`.

One program handles ``BLOCK`` points: it computes each point's cell in fp64 (the reference's
precision, so points on a cell boundary land in the same cell), drops points outside the region
or with a bad batch / time index, and stores 1 into the zeroed grid. Several points of one cell
store the same value, so no atomics are needed.
"""
from typing import Sequence

import torch
import triton
import triton.language as tl

from .bev_voxelize import _check_points, bev_grid_shape
from .fast_path import device_constant


@triton.jit
def _bev_voxelize_kernel(points_ptr, batch_ptr, time_ptr, box_ptr, out_ptr, num_points, stride_n,
                         stride_c, batch_size, num_slots, num_z, num_y, num_x, BLOCK: tl.constexpr):
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < num_points
    x = tl.load(points_ptr + i * stride_n, mask=mask, other=0.0).to(tl.float64)
    y = tl.load(points_ptr + i * stride_n + stride_c, mask=mask, other=0.0).to(tl.float64)
    z = tl.load(points_ptr + i * stride_n + 2 * stride_c, mask=mask, other=0.0).to(tl.float64)
    # box: lower (3), upper (3), size (3) in fp64.
    x_lo = tl.load(box_ptr + 0)
    y_lo = tl.load(box_ptr + 1)
    z_lo = tl.load(box_ptr + 2)
    x_hi = tl.load(box_ptr + 3)
    y_hi = tl.load(box_ptr + 4)
    z_hi = tl.load(box_ptr + 5)
    valid = mask & (x >= x_lo) & (x < x_hi) & (y >= y_lo) & (y < y_hi) & (z >= z_lo) & (z < z_hi)
    # Out-of-region points are parked at 0 before the integer cast (they are masked anyway).
    fx = tl.where(valid, tl.floor((x - x_lo) / tl.load(box_ptr + 6)), 0.0)
    fy = tl.where(valid, tl.floor((y - y_lo) / tl.load(box_ptr + 7)), 0.0)
    fz = tl.where(valid, tl.floor((z - z_lo) / tl.load(box_ptr + 8)), 0.0)
    ix = fx.to(tl.int64)
    iy = fy.to(tl.int64)
    iz = fz.to(tl.int64)
    # Rounding at the upper face can give cell == size for a point just below max.
    valid &= (ix >= 0) & (ix < num_x) & (iy >= 0) & (iy < num_y) & (iz >= 0) & (iz < num_z)
    b = tl.load(batch_ptr + i, mask=mask, other=-1).to(tl.int64)
    t = tl.load(time_ptr + i, mask=mask, other=-1).to(tl.int64)
    valid &= (b >= 0) & (b < batch_size) & (t >= 0) & (t < num_slots)
    channel = t * num_z + iz
    flat = ((b * (num_slots * num_z) + channel) * num_y + iy) * num_x + ix
    tl.store(out_ptr + flat, tl.full((BLOCK, ), 1.0, tl.float32), mask=valid)


def bev_voxelize_triton(points: torch.Tensor,
                        batch_idx: torch.Tensor,
                        time_idx: torch.Tensor,
                        batch_size: int,
                        num_time_slots: int,
                        point_cloud_range: Sequence[float],
                        voxel_size: Sequence[float],
                        dtype: torch.dtype = torch.float32,
                        block: int = 1024) -> torch.Tensor:
    """Triton point-to-BEV occupancy scatter; same arguments and result as
    :func:`gasp_ops.bev_voxelize_reference`.

    Runs on CUDA tensors, and on CPU tensors under ``TRITON_INTERPRET=1``.
    """
    _check_points(points, batch_idx, time_idx)
    num_z, num_y, num_x = bev_grid_shape(point_cloud_range, voxel_size)
    bev = torch.zeros((batch_size, num_time_slots * num_z, num_y, num_x),
                      dtype=dtype,
                      device=points.device)
    num_points = points.shape[0]
    if num_points == 0:
        return bev
    # The region and cell size in fp64 (the kernel's exact cell arithmetic).
    box = device_constant(
        tuple(point_cloud_range) + tuple(voxel_size), torch.float64, points.device)
    _bev_voxelize_kernel[(triton.cdiv(num_points, block), )](
        points,
        batch_idx.contiguous(),
        time_idx.contiguous(),
        box,
        bev,
        num_points,
        points.stride(0),
        points.stride(1),
        batch_size,
        num_time_slots,
        num_z,
        num_y,
        num_x,
        BLOCK=block)
    return bev
