"""Triton fast path of :func:`gasp_ops.deformable_bev_gather` (forward and backward).

One program handles ``BLOCK_Q`` queries of one (sample, head) pair and all ``C / num_heads``
channels of that head: for each of the ``K`` points it reads the four bilinear corners as
``(BLOCK_Q, Cg)`` tiles and accumulates them with the attention weights in fp32. With a
channels-last BEV map (``bev.contiguous(memory_format=torch.channels_last)``) a corner is one
contiguous run of ``Cg`` values; other layouts are converted first.

The backward recomputes the corners: per point, ``grad_w = <g, sample>``, the location gradient
from the bilinear weights' derivatives, and the map gradient scattered with fp32 atomics into a
channels-last buffer (cast to the map's dtype at the end).

Locations are read in their own precision (fp32 normally) and never rounded to a low-precision
map dtype; the pixel coordinates and bilinear fractions are computed in fp64, everything else
in fp32, and the output has the promoted dtype of map and locations, like the reference.
"""
import torch
import triton
import triton.language as tl

from .deformable_bev_gather import _check_shapes
from .fast_path import FAST_DTYPES


@triton.jit
def _bilinear_setup(loc_ptr, w_ptr, idx, mask, H, W):
    """Corner indices, validity and fractional weights of one point per query."""
    lx = tl.load(loc_ptr + idx * 2, mask=mask, other=0.0).to(tl.float64)
    ly = tl.load(loc_ptr + idx * 2 + 1, mask=mask, other=0.0).to(tl.float64)
    wk = tl.load(w_ptr + idx, mask=mask, other=0.0).to(tl.float32)
    # grid_sample(align_corners=False): pixel = ((loc + 1) * size - 1) / 2, in fp64: in fp32
    # the pixel coordinate alone is off by up to 1e-5 cells on a 175-cell map (2e-5 relative
    # error of the output). Clamping to [-2, size + 1] keeps the integer cast defined; every
    # corner there is outside anyway.
    px = ((lx + 1.0) * W - 1.0) * 0.5
    py = ((ly + 1.0) * H - 1.0) * 0.5
    px = tl.minimum(tl.maximum(px, -2.0), W + 1.0)
    py = tl.minimum(tl.maximum(py, -2.0), H + 1.0)
    x0f = tl.floor(px)
    y0f = tl.floor(py)
    fx = (px - x0f).to(tl.float32)
    fy = (py - y0f).to(tl.float32)
    x0 = x0f.to(tl.int32)
    y0 = y0f.to(tl.int32)
    x1 = x0 + 1
    y1 = y0 + 1
    in_x0 = (x0 >= 0) & (x0 < W)
    in_x1 = (x1 >= 0) & (x1 < W)
    in_y0 = (y0 >= 0) & (y0 < H)
    in_y1 = (y1 >= 0) & (y1 < H)
    return wk, fx, fy, x0, y0, x1, y1, in_x0, in_x1, in_y0, in_y1


@triton.jit
def _gather_fwd_kernel(bev_ptr, loc_ptr, w_ptr, out_ptr, num_queries, H, W, stride_b, stride_c,
                       stride_h, stride_w, NUM_HEADS: tl.constexpr, NUM_POINTS: tl.constexpr,
                       GROUP: tl.constexpr, BLOCK_Q: tl.constexpr, BLOCK_C: tl.constexpr):
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
            loc_ptr, w_ptr, qhk + k, q_mask, H, W)
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
        gx = 1.0 - fx
        gy = 1.0 - fy
        acc += (wk * gy * gx)[:, None] * v00 + (wk * gy * fx)[:, None] * v01 + (
            wk * fy * gx)[:, None] * v10 + (wk * fy * fx)[:, None] * v11
    channels = NUM_HEADS * GROUP
    out_offs = (b.to(tl.int64) * num_queries + q)[:, None] * channels + (h * GROUP + c)[None, :]
    tl.store(
        out_ptr + out_offs,
        acc.to(out_ptr.dtype.element_ty),
        mask=q_mask[:, None] & c_mask[None, :])


@triton.jit
def _gather_bwd_kernel(bev_ptr, loc_ptr, w_ptr, grad_out_ptr, grad_bev_ptr, grad_loc_ptr,
                       grad_w_ptr, num_queries, H, W, stride_b, stride_c, stride_h, stride_w,
                       gstride_b, gstride_c, gstride_h, gstride_w, NUM_HEADS: tl.constexpr,
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
    g_offs = (b.to(tl.int64) * num_queries + q)[:, None] * channels + (h * GROUP + c)[None, :]
    g = tl.load(grad_out_ptr + g_offs, mask=qc_mask, other=0.0).to(tl.float32)
    base = bev_ptr + b.to(tl.int64) * stride_b + ((h * GROUP + c) * stride_c)[None, :]
    gbase = grad_bev_ptr + b.to(tl.int64) * gstride_b + ((h * GROUP + c) * gstride_c)[None, :]
    for k in tl.static_range(NUM_POINTS):
        wk, fx, fy, x0, y0, x1, y1, in_x0, in_x1, in_y0, in_y1 = _bilinear_setup(
            loc_ptr, w_ptr, qhk + k, q_mask, H, W)
        m00 = (q_mask & in_y0 & in_x0)[:, None] & c_mask[None, :]
        m01 = (q_mask & in_y0 & in_x1)[:, None] & c_mask[None, :]
        m10 = (q_mask & in_y1 & in_x0)[:, None] & c_mask[None, :]
        m11 = (q_mask & in_y1 & in_x1)[:, None] & c_mask[None, :]
        o00 = (y0.to(tl.int64) * stride_h + x0.to(tl.int64) * stride_w)[:, None]
        o01 = (y0.to(tl.int64) * stride_h + x1.to(tl.int64) * stride_w)[:, None]
        o10 = (y1.to(tl.int64) * stride_h + x0.to(tl.int64) * stride_w)[:, None]
        o11 = (y1.to(tl.int64) * stride_h + x1.to(tl.int64) * stride_w)[:, None]
        d00 = tl.sum(g * tl.load(base + o00, mask=m00, other=0.0).to(tl.float32), axis=1)
        d01 = tl.sum(g * tl.load(base + o01, mask=m01, other=0.0).to(tl.float32), axis=1)
        d10 = tl.sum(g * tl.load(base + o10, mask=m10, other=0.0).to(tl.float32), axis=1)
        d11 = tl.sum(g * tl.load(base + o11, mask=m11, other=0.0).to(tl.float32), axis=1)
        gx = 1.0 - fx
        gy = 1.0 - fy
        grad_w = gy * gx * d00 + gy * fx * d01 + fy * gx * d10 + fy * fx * d11
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
            g00 = (y0.to(tl.int64) * gstride_h + x0.to(tl.int64) * gstride_w)[:, None]
            g01 = (y0.to(tl.int64) * gstride_h + x1.to(tl.int64) * gstride_w)[:, None]
            g10 = (y1.to(tl.int64) * gstride_h + x0.to(tl.int64) * gstride_w)[:, None]
            g11 = (y1.to(tl.int64) * gstride_h + x1.to(tl.int64) * gstride_w)[:, None]
            tl.atomic_add(gbase + g00, (wk * gy * gx)[:, None] * g, mask=m00, sem='relaxed')
            tl.atomic_add(gbase + g01, (wk * gy * fx)[:, None] * g, mask=m01, sem='relaxed')
            tl.atomic_add(gbase + g10, (wk * fy * gx)[:, None] * g, mask=m10, sem='relaxed')
            tl.atomic_add(gbase + g11, (wk * fy * fx)[:, None] * g, mask=m11, sem='relaxed')


def _launch_config(group: int):
    """(BLOCK_Q, BLOCK_C, num_warps) for a head of ``group`` channels: ~2k values a tile."""
    block_c = triton.next_power_of_2(group)
    block_q = max(16, min(128, 2048 // block_c))
    return block_q, block_c, 4


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
        block_q, block_c, num_warps = _launch_config(group)
        grid = (triton.cdiv(num_queries, block_q), batch * num_heads)
        if num_queries > 0:
            _gather_fwd_kernel[grid](
                bev,
                loc,
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
                num_warps=num_warps)
        ctx.save_for_backward(bev, loc, weights)
        ctx.bev_dtype = bev_feats.dtype
        return out

    @staticmethod
    def backward(ctx, grad_out):
        bev, loc, weights = ctx.saved_tensors
        batch, channels, height, width = bev.shape
        _, num_queries, num_heads, num_points, _ = loc.shape
        group = channels // num_heads
        need_bev = ctx.needs_input_grad[0]
        grad_out = grad_out.contiguous()
        grad_loc = torch.empty_like(loc)
        grad_w = torch.empty_like(weights)
        # fp32 accumulator for the atomics, channels-last like the map.
        grad_bev = torch.zeros(
            bev.shape if need_bev else (1, 1, 1, 1), dtype=torch.float32,
            device=bev.device).contiguous(memory_format=torch.channels_last)
        block_q, block_c, num_warps = _launch_config(group)
        grid = (triton.cdiv(num_queries, block_q), batch * num_heads)
        if num_queries > 0:
            _gather_bwd_kernel[grid](
                bev,
                loc,
                weights,
                grad_out,
                grad_bev,
                grad_loc,
                grad_w,
                num_queries,
                height,
                width,
                *bev.stride(),
                *grad_bev.stride(),
                NUM_HEADS=num_heads,
                NUM_POINTS=num_points,
                GROUP=group,
                BLOCK_Q=block_q,
                BLOCK_C=block_c,
                NEED_BEV_GRAD=need_bev,
                num_warps=num_warps)
        else:
            grad_loc.zero_()
            grad_w.zero_()
        grad_bev = grad_bev.to(ctx.bev_dtype) if need_bev else None
        return (grad_bev, grad_loc if ctx.needs_input_grad[1] else None,
                grad_w if ctx.needs_input_grad[2] else None)


def deformable_bev_gather_triton(bev_feats: torch.Tensor, sampling_locations: torch.Tensor,
                                 attention_weights: torch.Tensor) -> torch.Tensor:
    """Triton deformable BEV gather; same arguments and result as
    :func:`gasp_ops.deformable_bev_gather_reference` (fp32 / bf16 / fp16 inputs).

    Runs on CUDA tensors, and on CPU tensors under ``TRITON_INTERPRET=1``.
    """
    _check_shapes(bev_feats, sampling_locations, attention_weights)
    for name, tensor in (('bev_feats', bev_feats), ('sampling_locations', sampling_locations),
                         ('attention_weights', attention_weights)):
        if tensor.dtype not in FAST_DTYPES:
            raise TypeError(f'deformable_bev_gather_triton: {name} has dtype {tensor.dtype}; '
                            f'the kernel takes {FAST_DTYPES} (use the reference for fp64)')
    return _DeformableBEVGatherTriton.apply(bev_feats, sampling_locations, attention_weights)
