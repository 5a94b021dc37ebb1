"""Triton fast path of :func:`gasp_ops.render_expected_depth` (dense density grid).

One program marches ``BLOCK`` rays, one segment per loop step, keeping the optical thickness,
the transmittance and the depth sum in registers; the grid is read once per segment (nearest
cell of the midpoint). The arithmetic follows :func:`gasp_ops.march_expected_depth` operation
by operation so that midpoints land in the same cells as the reference:

- segment starts are ``(near + fp32(base * step)) + fp32(k) * step`` with ``base`` the first
  step of the chunk of ``steps_per_chunk`` segments and ``k`` the step within it;
- the thickness is summed per chunk and added to the chunk's starting thickness (the
  reference's ``thickness + cumsum``), rays stop only at chunk ends (same early exit);
- the kernel is compiled without fused multiply-add and divides with round-to-nearest, like
  the separate PyTorch ops; ``exp`` runs in fp64 and is rounded to fp32.
"""
from typing import Optional, Sequence

import torch
import triton
import triton.language as tl

from .bev_voxelize import bev_grid_shape
from .fast_path import device_constant


@triton.jit
def _exp_neg(x):
    """exp(-x) in fp32 from an fp64 evaluation (correctly rounded, unlike ex2.approx)."""
    return tl.exp(-(x.to(tl.float64))).to(tl.float32)


@triton.jit
def _segment(chunk_start, k_float, step, far, active, ox, oy, oz, dx, dy, dz, x_lo, y_lo, z_lo,
             x_size, y_size, z_size, density_ptr, num_z, num_y, num_x):
    """Optical thickness, midpoint distance and validity of segment k of the chunk."""
    start = chunk_start + k_float * step
    end = tl.minimum(start + step, far)
    length = tl.maximum(end - start, 0.0)
    mid = 0.5 * (start + end)
    inside = active & (length > 0)
    ix = tl.floor(tl.math.div_rn(ox + mid * dx - x_lo, x_size)).to(tl.int32)
    iy = tl.floor(tl.math.div_rn(oy + mid * dy - y_lo, y_size)).to(tl.int32)
    iz = tl.floor(tl.math.div_rn(oz + mid * dz - z_lo, z_size)).to(tl.int32)
    ix = tl.minimum(tl.maximum(ix, 0), num_x - 1)
    iy = tl.minimum(tl.maximum(iy, 0), num_y - 1)
    iz = tl.minimum(tl.maximum(iz, 0), num_z - 1)
    cell = (iz.to(tl.int64) * num_y + iy) * num_x + ix
    sigma = tl.load(density_ptr + cell, mask=inside, other=0.0).to(tl.float32)
    return tl.where(inside, sigma * length, 0.0), mid, inside


@triton.jit
def _accumulate(s, mid, inside, thickness, chunk_sum, chunk_depth, survive_before):
    """Add one segment: S_i = S_chunk + cumsum, p_i = exp(-S_{i-1}) - exp(-S_i)."""
    chunk_sum += s
    survive = _exp_neg(thickness + chunk_sum)
    chunk_depth += tl.where(inside, (survive_before - survive) * mid, 0.0)
    return chunk_sum, chunk_depth, survive


@triton.jit
def _slab(o, d, lo, hi):
    """Entry and exit distance of a ray through one slab [lo, hi] of the box, as
    :func:`gasp_ops.ray_box_intersection` computes them (1 / d, then (bound - o) * inv)."""
    inv = tl.math.div_rn(1.0, d)
    t_lo = (lo - o) * inv
    t_hi = (hi - o) * inv
    t_in = tl.minimum(t_lo, t_hi)
    t_out = tl.maximum(t_lo, t_hi)
    # A ray parallel to the slab is inside it for all distances, or never.
    inside = (o >= lo) & (o <= hi)
    parallel = d == 0
    t_in = tl.where(parallel, tl.where(inside, -float('inf'), float('inf')), t_in)
    t_out = tl.where(parallel, tl.where(inside, float('inf'), -float('inf')), t_out)
    return t_in, t_out


@triton.jit
def _march_kernel(origins_ptr, directions_ptr, density_ptr, grid_ptr, step_ptr, depth_ptr, num_rays,
                  num_z, num_y, num_x, min_transmittance, max_depth, miss_depth,
                  STEPS_PER_CHUNK: tl.constexpr, GROUP: tl.constexpr, BLOCK: tl.constexpr):
    r = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = r < num_rays
    ox = tl.load(origins_ptr + r * 3, mask=mask, other=0.0)
    oy = tl.load(origins_ptr + r * 3 + 1, mask=mask, other=0.0)
    oz = tl.load(origins_ptr + r * 3 + 2, mask=mask, other=0.0)
    dx = tl.load(directions_ptr + r * 3, mask=mask, other=0.0)
    dy = tl.load(directions_ptr + r * 3 + 1, mask=mask, other=0.0)
    dz = tl.load(directions_ptr + r * 3 + 2, mask=mask, other=0.0)
    # grid: lower (3), cell size (3), step, upper (3) in fp32; step_ptr: step in fp64.
    x_lo = tl.load(grid_ptr + 0)
    y_lo = tl.load(grid_ptr + 1)
    z_lo = tl.load(grid_ptr + 2)
    x_size = tl.load(grid_ptr + 3)
    y_size = tl.load(grid_ptr + 4)
    z_size = tl.load(grid_ptr + 5)
    step = tl.load(grid_ptr + 6)
    step64 = tl.load(step_ptr)
    # [near, far]: where the ray is inside the grid's box, cut at max_depth.
    in_x, out_x = _slab(ox, dx, x_lo, tl.load(grid_ptr + 7))
    in_y, out_y = _slab(oy, dy, y_lo, tl.load(grid_ptr + 8))
    in_z, out_z = _slab(oz, dz, z_lo, tl.load(grid_ptr + 9))
    near = tl.maximum(tl.maximum(tl.maximum(in_x, in_y), in_z), 0.0)
    far = tl.minimum(tl.minimum(tl.minimum(out_x, out_y), out_z), max_depth)

    active = mask & (far > near)
    thickness = tl.zeros((BLOCK, ), dtype=tl.float32)
    depth = tl.zeros((BLOCK, ), dtype=tl.float32)
    base = 0
    while tl.max(active.to(tl.int32), axis=0) > 0:
        chunk_start = near + (base * step64).to(tl.float32)
        chunk_sum = tl.zeros((BLOCK, ), dtype=tl.float32)  # cumsum within the chunk
        chunk_depth = tl.zeros((BLOCK, ), dtype=tl.float32)
        survive = _exp_neg(thickness)  # exp(-S_{i-1})
        k_float = tl.zeros((BLOCK, ), dtype=tl.float32)  # k, exact as fp32
        # GROUP segments per iteration: their grid reads are independent and overlap.
        for _ in range(0, STEPS_PER_CHUNK // GROUP):
            s0, mid0, in0 = _segment(chunk_start, k_float, step, far, active, ox, oy, oz, dx, dy,
                                     dz, x_lo, y_lo, z_lo, x_size, y_size, z_size, density_ptr,
                                     num_z, num_y, num_x)
            if GROUP == 4:
                s1, mid1, in1 = _segment(chunk_start, k_float + 1.0, step, far, active, ox, oy, oz,
                                         dx, dy, dz, x_lo, y_lo, z_lo, x_size, y_size, z_size,
                                         density_ptr, num_z, num_y, num_x)
                s2, mid2, in2 = _segment(chunk_start, k_float + 2.0, step, far, active, ox, oy, oz,
                                         dx, dy, dz, x_lo, y_lo, z_lo, x_size, y_size, z_size,
                                         density_ptr, num_z, num_y, num_x)
                s3, mid3, in3 = _segment(chunk_start, k_float + 3.0, step, far, active, ox, oy, oz,
                                         dx, dy, dz, x_lo, y_lo, z_lo, x_size, y_size, z_size,
                                         density_ptr, num_z, num_y, num_x)
                chunk_sum, chunk_depth, survive = _accumulate(s0, mid0, in0, thickness, chunk_sum,
                                                              chunk_depth, survive)
                chunk_sum, chunk_depth, survive = _accumulate(s1, mid1, in1, thickness, chunk_sum,
                                                              chunk_depth, survive)
                chunk_sum, chunk_depth, survive = _accumulate(s2, mid2, in2, thickness, chunk_sum,
                                                              chunk_depth, survive)
                chunk_sum, chunk_depth, survive = _accumulate(s3, mid3, in3, thickness, chunk_sum,
                                                              chunk_depth, survive)
            else:
                chunk_sum, chunk_depth, survive = _accumulate(s0, mid0, in0, thickness, chunk_sum,
                                                              chunk_depth, survive)
            k_float += GROUP
        depth = tl.where(active, depth + chunk_depth, depth)
        thickness = tl.where(active, thickness + chunk_sum, thickness)
        base += STEPS_PER_CHUNK
        more = (near + (base * step64).to(tl.float32) < far) & (
            _exp_neg(thickness) > min_transmittance)
        active = active & more
    hit = far > near
    tl.store(depth_ptr + r, tl.where(hit, depth + _exp_neg(thickness) * far, miss_depth), mask=mask)


def march_grid_triton(origins: torch.Tensor,
                      directions: torch.Tensor,
                      density: torch.Tensor,
                      point_cloud_range: Sequence[float],
                      voxel_size: Sequence[float],
                      step: float,
                      max_depth: Optional[float] = None,
                      steps_per_chunk: int = 64,
                      min_transmittance: float = 0.0,
                      block: int = 64,
                      num_warps: int = 2) -> torch.Tensor:
    """Expected depth through a dense grid, one kernel: each ray's entry and exit of the grid's
    box (cut at ``max_depth``), then the march.

    Same result as :func:`gasp_ops.render_expected_depth_reference` for unit directions.

    Args:
        origins: (R, 3) fp32 ray origins (m).
        directions: (R, 3) fp32 unit directions.
        density: (Z, Y, X) density (1/m), ``inf`` for opaque cells.
        point_cloud_range, voxel_size: the grid's region and cell size (m).
        step: segment length (m).
        max_depth: stop marching here (m); None: at the grid exit.
        steps_per_chunk: segments between early-exit checks (as the reference's chunks).
        min_transmittance: rays stop at a chunk end once exp(-S) <= this.

    Returns:
        (R,) fp32 expected depth (m); ``max_depth`` (0 when None) for rays that miss the grid.
    """
    num_z, num_y, num_x = bev_grid_shape(point_cloud_range, voxel_size)
    num_rays = origins.shape[0]
    depth = torch.empty(num_rays, dtype=torch.float32, device=origins.device)
    if num_rays == 0:
        return depth
    grid = device_constant(
        tuple(point_cloud_range[:3]) + tuple(voxel_size) + (step, ) + tuple(point_cloud_range[3:]),
        torch.float32, origins.device)
    step64 = device_constant((step, ), torch.float64, origins.device)
    _march_kernel[(triton.cdiv(num_rays, block), )](
        origins.contiguous(),
        directions.contiguous(),
        density.contiguous(),
        grid,
        step64,
        depth,
        num_rays,
        num_z,
        num_y,
        num_x,
        float(min_transmittance),
        float('inf') if max_depth is None else float(max_depth),
        float(max_depth or 0.0),
        STEPS_PER_CHUNK=steps_per_chunk,
        GROUP=4 if steps_per_chunk % 4 == 0 else 1,
        BLOCK=block,
        num_warps=num_warps,
        enable_fp_fusion=False)
    return depth


def render_expected_depth_triton(origins: torch.Tensor,
                                 directions: torch.Tensor,
                                 density: torch.Tensor,
                                 point_cloud_range: Sequence[float],
                                 voxel_size: Sequence[float],
                                 step: float,
                                 max_depth: Optional[float] = None,
                                 steps_per_chunk: int = 64,
                                 min_transmittance: float = 0.0) -> torch.Tensor:
    """Triton expected-depth renderer; same arguments and result as
    :func:`gasp_ops.render_expected_depth_reference` for fp32 rays.

    Runs on CUDA tensors, and on CPU tensors under ``TRITON_INTERPRET=1``.
    """
    from .ray_marching import check_grid_rays
    if origins.dtype != torch.float32 or directions.dtype != torch.float32:
        raise TypeError('render_expected_depth_triton: origins and directions must be float32, '
                        f'got {origins.dtype} and {directions.dtype} (use the reference)')
    check_grid_rays(origins, directions, density, point_cloud_range, voxel_size)
    directions = directions / directions.norm(dim=1, keepdim=True)
    return march_grid_triton(origins, directions, density, point_cloud_range, voxel_size, step,
                             max_depth, steps_per_chunk, min_transmittance)
