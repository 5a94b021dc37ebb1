"""Triton fast path of :func:`gasp_ops.deformable_bev_gather` (forward and backward).

One program handles ``BLOCK_Q`` queries of one (sample, head) pair and all ``C / num_heads``
channels of that head: for each of the ``K`` points it reads the four bilinear corners as
``(BLOCK_Q, Cg)`` tiles and accumulates them with the attention weights in fp32. With a
channels-last BEV map (``bev.contiguous(memory_format=torch.channels_last)``) a corner is one
contiguous run of ``Cg`` values; other layouts are converted first.

Pixel coordinates are exact without fp64: ``px = loc * W / 2 + (W - 1) / 2`` is formed as an
unevaluated sum of fp32 terms (a Veltkamp split of ``loc`` makes both products exact for maps
narrower than :data:`MAX_EXACT_SIZE` cells, a two-sum adds the offset), so the cell index is
the one an exact computation picks and the bilinear fraction is off by at most one fp32
rounding. fp32 arithmetic as in ``grid_sample`` is off by up to 1e-5 cells on a 175-cell map
(2e-5 relative error of the output and location gradients from the wrong side of a cell line).
The kernels are compiled without fused multiply-add contraction so that the split stays exact;
the accumulations use explicit ``tl.fma``. A small kernel computes each sample's cell and
fractions once (12 bytes a sample, kept for the backward); the gather kernels would otherwise
repeat that set-up on every thread that holds channels of the query.

The backward recomputes the corners: per point, ``grad_w = <g, sample>``, the location gradient
from the bilinear weights' derivatives, and the map gradient scattered with fp32 atomics into a
channels-last buffer (cast to the map's dtype at the end), one fp32 atomic per channel.

Locations are read in their own precision (fp32 normally) and never rounded to a low-precision
map dtype; the output has the promoted dtype of map and locations, like the reference.
"""
import torch
import triton
import triton.language as tl

from .deformable_bev_gather import _check_shapes
from .fast_path import FAST_DTYPES

#: Map sides (cells) up to which the pixel coordinates are exact (12 significant bits).
MAX_EXACT_SIZE = 4096


@triton.jit
def _two_sum(a, b):
    """a + b = s + e exactly (Knuth's two-sum; needs round-to-nearest, no reassociation)."""
    s = a + b
    b_virtual = s - a
    e = (a - (s - b_virtual)) + (b - b_virtual)
    return s, e


@triton.jit
def _pixel(loc, size):
    """Cell index and fraction of the grid_sample pixel ``((loc + 1) * size - 1) / 2``.

    ``loc`` is fp32, ``size`` the map side (< MAX_EXACT_SIZE). The pixel is the exact sum
    ``s + e1 + e2``; the cell is its exact floor and the fraction is rounded once. Returns the
    int32 cell and the fp32 fraction in [0, 1], clamped to [-3, size + 2] where every corner is
    outside anyway.
    """
    half = size * 0.5  # at most 12 significant bits
    # Veltkamp split: loc = hi + lo, 12 significant bits each, so both products are exact.
    c = loc * 4097.0
    hi = c - (c - loc)
    lo = loc - hi
    s1, e1 = _two_sum(hi * half, lo * half)  # loc * size / 2
    s, e2 = _two_sum(s1, half - 0.5)  # + (size - 1) / 2, an exact constant
    rest = e1 + e2  # tiny against s: its rounding does not move the floor
    limit = size + 1.0
    inside = (s >= -2.0) & (s <= limit)
    s = tl.minimum(tl.maximum(s, -2.0), limit)
    rest = tl.where(inside, rest, 0.0)
    cell = tl.floor(s)
    f0 = s - cell  # exact, in [0, 1)
    frac = f0 + rest
    # The exact pixel may sit on the other side of a cell line than s; a rounded sum keeps the
    # sign of the exact one, so these tests are exact.
    below = frac < 0.0
    above = (f0 - 1.0) + rest >= 0.0
    cell = tl.where(below, cell - 1.0, tl.where(above, cell + 1.0, cell))
    frac = tl.where(below, (f0 + 1.0) + rest, tl.where(above, (f0 - 1.0) + rest, frac))
    return cell.to(tl.int32), frac


@triton.jit
def _pixels_kernel(loc_ptr, cell_ptr, frac_ptr, num_samples, H, W, BLOCK: tl.constexpr):
    """Per sample: the packed cell ``(y0 << 16) | (x0 & 0xffff)`` and the fractions (fx, fy).

    Computed once per sample here (the gather kernels would repeat it on every thread that
    holds channels of the query)."""
    i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = i < num_samples
    lx = tl.load(loc_ptr + i * 2, mask=mask, other=0.0).to(tl.float32)
    ly = tl.load(loc_ptr + i * 2 + 1, mask=mask, other=0.0).to(tl.float32)
    x0, fx = _pixel(lx, W)
    y0, fy = _pixel(ly, H)
    tl.store(cell_ptr + i, (y0 << 16) | (x0 & 0xFFFF), mask=mask)
    tl.store(frac_ptr + i * 2, fx, mask=mask)
    tl.store(frac_ptr + i * 2 + 1, fy, mask=mask)


@triton.jit
def _bilinear_setup(cell_ptr, frac_ptr, w_ptr, idx, mask, H, W):
    """Corner indices, validity and fractional weights of one point per query."""
    cell = tl.load(cell_ptr + idx, mask=mask, other=0)
    fx = tl.load(frac_ptr + idx * 2, mask=mask, other=0.0)
    fy = tl.load(frac_ptr + idx * 2 + 1, mask=mask, other=0.0)
    wk = tl.load(w_ptr + idx, mask=mask, other=0.0).to(tl.float32)
    x0 = (cell << 16) >> 16  # sign-extends the low half
    y0 = cell >> 16
    x1 = x0 + 1
    y1 = y0 + 1
    in_x0 = (x0 >= 0) & (x0 < W)
    in_x1 = (x1 >= 0) & (x1 < W)
    in_y0 = (y0 >= 0) & (y0 < H)
    in_y1 = (y1 >= 0) & (y1 < H)
    return wk, fx, fy, x0, y0, x1, y1, in_x0, in_x1, in_y0, in_y1


@triton.jit
def _gather_fwd_kernel(bev_ptr, cell_ptr, frac_ptr, w_ptr, out_ptr, num_queries, H, W, stride_b,
                       stride_c, stride_h, stride_w, NUM_HEADS: tl.constexpr,
                       NUM_POINTS: tl.constexpr, GROUP: tl.constexpr, BLOCK_Q: tl.constexpr,
                       BLOCK_C: tl.constexpr):
    pid_q = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // NUM_HEADS
    h = pid_bh % NUM_HEADS
    q = pid_q * BLOCK_Q + tl.arange(0, BLOCK_Q)
    c = tl.arange(0, BLOCK_C)
    q_mask = q < num_queries
    c_mask = c < GROUP
    # Index of (b, q, h, 0) in the contiguous (B, Q, nh, K) layout of the weights.
    qhk = ((b.to(tl.int64) * num_queries + q) * NUM_HEADS + h) * NUM_POINTS
    base = bev_ptr + b.to(tl.int64) * stride_b + ((h * GROUP + c) * stride_c)[None, :]
    acc = tl.zeros((BLOCK_Q, BLOCK_C), dtype=tl.float32)
    for k in tl.static_range(NUM_POINTS):
        wk, fx, fy, x0, y0, x1, y1, in_x0, in_x1, in_y0, in_y1 = _bilinear_setup(
            cell_ptr, frac_ptr, w_ptr, qhk + k, q_mask, H, W)
        row0 = y0.to(tl.int64) * stride_h
        row1 = y1.to(tl.int64) * stride_h
        col0 = x0.to(tl.int64) * stride_w
        col1 = x1.to(tl.int64) * stride_w
        m00 = (q_mask & in_y0 & in_x0)[:, None] & c_mask[None, :]
        m01 = (q_mask & in_y0 & in_x1)[:, None] & c_mask[None, :]
        m10 = (q_mask & in_y1 & in_x0)[:, None] & c_mask[None, :]
        m11 = (q_mask & in_y1 & in_x1)[:, None] & c_mask[None, :]
        v00 = tl.load(base + (row0 + col0)[:, None], mask=m00, other=0.0).to(tl.float32)
        v01 = tl.load(base + (row0 + col1)[:, None], mask=m01, other=0.0).to(tl.float32)
        v10 = tl.load(base + (row1 + col0)[:, None], mask=m10, other=0.0).to(tl.float32)
        v11 = tl.load(base + (row1 + col1)[:, None], mask=m11, other=0.0).to(tl.float32)
        wy0 = wk * (1.0 - fy)
        wy1 = wk * fy
        acc = tl.fma((wy0 * (1.0 - fx))[:, None], v00, acc)
        acc = tl.fma((wy0 * fx)[:, None], v01, acc)
        acc = tl.fma((wy1 * (1.0 - fx))[:, None], v10, acc)
        acc = tl.fma((wy1 * fx)[:, None], v11, acc)
    channels = NUM_HEADS * GROUP
    out_offs = (b.to(tl.int64) * num_queries + q)[:, None] * channels + (h * GROUP + c)[None, :]
    tl.store(
        out_ptr + out_offs,
        acc.to(out_ptr.dtype.element_ty),
        mask=q_mask[:, None] & c_mask[None, :])


@triton.jit
def _gather_bwd_kernel(bev_ptr, cell_ptr, frac_ptr, w_ptr, grad_out_ptr, grad_bev_ptr, grad_loc_ptr,
                       grad_w_ptr, num_queries, H, W, stride_b, stride_c, stride_h, stride_w,
                       gstride_b, gstride_h, gstride_w, NUM_HEADS: tl.constexpr,
                       NUM_POINTS: tl.constexpr, GROUP: tl.constexpr, BLOCK_Q: tl.constexpr,
                       BLOCK_C: tl.constexpr, NEED_BEV_GRAD: tl.constexpr):
    pid_q = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // NUM_HEADS
    h = pid_bh % NUM_HEADS
    q = pid_q * BLOCK_Q + tl.arange(0, BLOCK_Q)
    c = tl.arange(0, BLOCK_C)
    q_mask = q < num_queries
    c_mask = c < GROUP
    qc_mask = q_mask[:, None] & c_mask[None, :]
    qhk = ((b.to(tl.int64) * num_queries + q) * NUM_HEADS + h) * NUM_POINTS
    channels = NUM_HEADS * GROUP
    row_offs = (b.to(tl.int64) * num_queries + q)[:, None] * channels + h * GROUP
    g = tl.load(grad_out_ptr + row_offs + c[None, :], mask=qc_mask, other=0.0).to(tl.float32)
    base = bev_ptr + b.to(tl.int64) * stride_b + ((h * GROUP + c) * stride_c)[None, :]
    gbase = grad_bev_ptr + b.to(tl.int64) * gstride_b + (h * GROUP + c)[None, :]
    for k in tl.static_range(NUM_POINTS):
        wk, fx, fy, x0, y0, x1, y1, in_x0, in_x1, in_y0, in_y1 = _bilinear_setup(
            cell_ptr, frac_ptr, w_ptr, qhk + k, q_mask, H, W)
        v00 = q_mask & in_y0 & in_x0
        v01 = q_mask & in_y0 & in_x1
        v10 = q_mask & in_y1 & in_x0
        v11 = q_mask & in_y1 & in_x1
        o00 = (y0.to(tl.int64) * stride_h + x0.to(tl.int64) * stride_w)[:, None]
        o01 = (y0.to(tl.int64) * stride_h + x1.to(tl.int64) * stride_w)[:, None]
        o10 = (y1.to(tl.int64) * stride_h + x0.to(tl.int64) * stride_w)[:, None]
        o11 = (y1.to(tl.int64) * stride_h + x1.to(tl.int64) * stride_w)[:, None]
        d00 = tl.sum(
            g * tl.load(base + o00, mask=v00[:, None] & c_mask[None, :], other=0.0).to(tl.float32),
            axis=1)
        d01 = tl.sum(
            g * tl.load(base + o01, mask=v01[:, None] & c_mask[None, :], other=0.0).to(tl.float32),
            axis=1)
        d10 = tl.sum(
            g * tl.load(base + o10, mask=v10[:, None] & c_mask[None, :], other=0.0).to(tl.float32),
            axis=1)
        d11 = tl.sum(
            g * tl.load(base + o11, mask=v11[:, None] & c_mask[None, :], other=0.0).to(tl.float32),
            axis=1)
        gx = 1.0 - fx
        gy = 1.0 - fy
        grad_w = gy * (gx * d00 + fx * d01) + fy * (gx * d10 + fx * d11)
        # d(pixel)/d(loc) = size / 2 on each axis.
        grad_px = wk * (gy * (d01 - d00) + fy * (d11 - d10))
        grad_py = wk * (gx * (d10 - d00) + fx * (d11 - d01))
        idx = qhk + k
        tl.store(grad_w_ptr + idx, grad_w.to(grad_w_ptr.dtype.element_ty), mask=q_mask)
        tl.store(
            grad_loc_ptr + idx * 2, (grad_px * (W * 0.5)).to(grad_loc_ptr.dtype.element_ty),
            mask=q_mask)
        tl.store(
            grad_loc_ptr + idx * 2 + 1, (grad_py * (H * 0.5)).to(grad_loc_ptr.dtype.element_ty),
            mask=q_mask)
        if NEED_BEV_GRAD:
            wy0 = wk * gy
            wy1 = wk * fy
            r0 = y0.to(tl.int64) * gstride_h
            r1 = y1.to(tl.int64) * gstride_h
            c0 = x0.to(tl.int64) * gstride_w
            c1 = x1.to(tl.int64) * gstride_w
            # One atomic per channel; a warp's adds cover whole runs of channels.
            tl.atomic_add(
                gbase + (r0 + c0)[:, None], (wy0 * gx)[:, None] * g,
                mask=v00[:, None] & c_mask[None, :],
                sem='relaxed')
            tl.atomic_add(
                gbase + (r0 + c1)[:, None], (wy0 * fx)[:, None] * g,
                mask=v01[:, None] & c_mask[None, :],
                sem='relaxed')
            tl.atomic_add(
                gbase + (r1 + c0)[:, None], (wy1 * gx)[:, None] * g,
                mask=v10[:, None] & c_mask[None, :],
                sem='relaxed')
            tl.atomic_add(
                gbase + (r1 + c1)[:, None], (wy1 * fx)[:, None] * g,
                mask=v11[:, None] & c_mask[None, :],
                sem='relaxed')


def _launch_config(group: int):
    """(BLOCK_Q, BLOCK_C, num_warps) for a head of ``group`` channels.

    Heads of up to 32 channels (the configs' 128 channels / 4 heads): 1k-value tiles on 8
    warps. A sweep on the H100 at the benchmark's shapes (BLOCK_Q 32 / 64 / 128 x 2 / 4 / 8
    warps, side by side with mmcv) put 32 x 32 on 8 warps first for both the forward
    (1.02 ms, against 1.24 for the earlier 64 x 32 on 4 warps) and forward + backward
    (4.62 ms, against 4.99). Wider heads keep ~2k-value tiles on 4 warps.
    """
    block_c = max(4, triton.next_power_of_2(group))
    if block_c <= 32:
        return max(16, 1024 // block_c), block_c, 8
    return max(16, min(128, 2048 // block_c)), block_c, 4


class _DeformableBEVGatherTriton(torch.autograd.Function):

    @staticmethod
    def forward(ctx, bev_feats, sampling_locations, attention_weights):
        batch, channels, height, width = bev_feats.shape
        _, num_queries, num_heads, num_points, _ = sampling_locations.shape
        group = channels // num_heads
        bev = bev_feats.contiguous(memory_format=torch.channels_last)
        loc = sampling_locations.contiguous()
        weights = attention_weights.contiguous()
        out_dtype = torch.promote_types(bev_feats.dtype, sampling_locations.dtype)
        out = torch.empty((batch, num_queries, channels), dtype=out_dtype, device=bev.device)
        num_samples = loc.numel() // 2
        cell = torch.empty(loc.shape[:-1], dtype=torch.int32, device=bev.device)
        frac = torch.empty(loc.shape, dtype=torch.float32, device=bev.device)
        block_q, block_c, num_warps = _launch_config(group)
        grid = (triton.cdiv(num_queries, block_q), batch * num_heads)
        if num_queries > 0:
            _pixels_kernel[(triton.cdiv(num_samples, 1024), )](
                loc, cell, frac, num_samples, height, width, BLOCK=1024, enable_fp_fusion=False)
            _gather_fwd_kernel[grid](
                bev,
                cell,
                frac,
                weights,
                out,
                num_queries,
                height,
                width,
                *bev.stride(),
                NUM_HEADS=num_heads,
                NUM_POINTS=num_points,
                GROUP=group,
                BLOCK_Q=block_q,
                BLOCK_C=block_c,
                num_warps=num_warps,
                enable_fp_fusion=False)
        ctx.save_for_backward(bev, loc, weights, cell, frac)
        ctx.bev_dtype = bev_feats.dtype
        return out

    @staticmethod
    def backward(ctx, grad_out):
        bev, loc, weights, cell, frac = ctx.saved_tensors
        batch, channels, height, width = bev.shape
        _, num_queries, num_heads, num_points, _ = loc.shape
        group = channels // num_heads
        need_bev = ctx.needs_input_grad[0]
        grad_out = grad_out.contiguous()
        grad_loc = torch.empty_like(loc)
        grad_w = torch.empty_like(weights)
        # fp32 accumulator for the atomics, channels-last like the map (channel stride 1).
        grad_bev = torch.zeros(
            bev.shape if need_bev else (1, 1, 1, 1), dtype=torch.float32,
            device=bev.device).contiguous(memory_format=torch.channels_last)
        block_q, block_c, num_warps = _launch_config(group)
        grid = (triton.cdiv(num_queries, block_q), batch * num_heads)
        if num_queries > 0:
            _gather_bwd_kernel[grid](
                bev,
                cell,
                frac,
                weights,
                grad_out,
                grad_bev,
                grad_loc,
                grad_w,
                num_queries,
                height,
                width,
                *bev.stride(),
                grad_bev.stride(0),
                grad_bev.stride(2),
                grad_bev.stride(3),
                NUM_HEADS=num_heads,
                NUM_POINTS=num_points,
                GROUP=group,
                BLOCK_Q=block_q,
                BLOCK_C=block_c,
                NEED_BEV_GRAD=need_bev,
                num_warps=num_warps,
                enable_fp_fusion=False)
        else:
            grad_loc.zero_()
            grad_w.zero_()
        grad_bev = grad_bev.to(ctx.bev_dtype) if need_bev else None
        return (grad_bev, grad_loc if ctx.needs_input_grad[1] else None,
                grad_w if ctx.needs_input_grad[2] else None)


def gather_supported(bev_feats: torch.Tensor) -> bool:
    """Whether the kernels take this map: fp32 / bf16 / fp16, both sides below
    :data:`MAX_EXACT_SIZE` cells (exact pixel coordinates)."""
    return bev_feats.dtype in FAST_DTYPES and max(bev_feats.shape[-2:]) < MAX_EXACT_SIZE


def deformable_bev_gather_triton(bev_feats: torch.Tensor, sampling_locations: torch.Tensor,
                                 attention_weights: torch.Tensor) -> torch.Tensor:
    """Triton deformable BEV gather; same arguments and result as
    :func:`gasp_ops.deformable_bev_gather_reference` (fp32 / bf16 / fp16 inputs, map sides
    below :data:`MAX_EXACT_SIZE`).

    Runs on CUDA tensors, and on CPU tensors under ``TRITON_INTERPRET=1``.
    """
    _check_shapes(bev_feats, sampling_locations, attention_weights)
    for name, tensor in (('bev_feats', bev_feats), ('sampling_locations', sampling_locations),
                         ('attention_weights', attention_weights)):
        if tensor.dtype not in FAST_DTYPES:
            raise TypeError(f'deformable_bev_gather_triton: {name} has dtype {tensor.dtype}; '
                            f'the kernel takes {FAST_DTYPES} (use the reference for fp64)')
    if max(bev_feats.shape[-2:]) >= MAX_EXACT_SIZE:
        raise ValueError(f'deformable_bev_gather_triton: the map is {tuple(bev_feats.shape[-2:])} '
                         f'cells; the kernel keeps pixel coordinates exact below {MAX_EXACT_SIZE} '
                         'cells a side (use deformable_bev_gather, which falls back to the '
                         'reference)')
    return _DeformableBEVGatherTriton.apply(bev_feats, sampling_locations, attention_weights)
