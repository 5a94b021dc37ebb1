"""GASP performance benchmarks on one GPU.

    python tools/benchmark.py op [--batch-size 8 --queries 65536 --rays 100000]

``op`` mode: each ``gasp_ops`` fast path against its PyTorch reference and the peer a user
would pick (mmcv's ``MultiScaleDeformableAttention`` CUDA kernel for the gather, mmcv's CUDA
dynamic voxelization for the scatter; the reference is the vectorized PyTorch ray marcher):
time, achieved bandwidth against the measured copy bandwidth, and the error against the fp64
reference. The measured ceilings (copy bandwidth, bf16 / fp32 matmul) are part of the result.

Prints a table at the end and writes ``<out-dir>/benchmark_<mode>.json`` and a PNG of the
speed-ups through :mod:`gasp.fileio`.
"""
import argparse
import io
import math
import time
from pathlib import Path

import numpy as np
import torch

from gasp.fileio import atomic_write_bytes, dump_json_atomic


def parse_args():
    parser = argparse.ArgumentParser(description='GASP GPU benchmarks')
    parser.add_argument('mode', choices=('op', ))
    parser.add_argument('--out-dir', default='work_dirs/benchmark')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--reps', type=int, default=20, help='timed repetitions per op')
    # op mode: decoder shapes (decoder_chunk queries per sample, 4 heads x 8 points, C = 128
    # on the stride-4 map of a 140 m region at 0.2 m) and the benchmark's rays.
    parser.add_argument('--queries', type=int, default=2**16)
    parser.add_argument('--heads', type=int, default=4)
    parser.add_argument('--points', type=int, default=8)
    parser.add_argument('--channels', type=int, default=128)
    parser.add_argument('--bev-size', type=int, default=175)
    parser.add_argument('--points-per-sweep', type=int, default=100_000)
    parser.add_argument('--rays', type=int, default=100_000)
    return parser.parse_args()


# ----------------------------------------------------------------------------------- timing


def cuda_time_ms(fn, reps: int, warmup: int = 3) -> float:
    """Median GPU time of ``fn()`` over ``reps`` runs (CUDA events)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return float(np.median(times))


def measure_ceilings(reps: int) -> dict:
    """Measured H100 ceilings: copy bandwidth (GB/s) and dense matmul rates (TFLOP/s)."""
    copy_ms = _copy_ms(reps)
    n = 8192
    a = torch.randn(n, n, device='cuda', dtype=torch.bfloat16)
    b = torch.randn(n, n, device='cuda', dtype=torch.bfloat16)
    bf16_ms = cuda_time_ms(lambda: a @ b, reps)
    a, b = a.float(), b.float()
    fp32_ms = cuda_time_ms(lambda: a @ b, max(3, reps // 4))
    return dict(
        copy_gb_s=2 * 2**29 * 4 / copy_ms / 1e6,
        bf16_matmul_tflop_s=2 * n**3 / bf16_ms / 1e9,
        fp32_matmul_tflop_s=2 * n**3 / fp32_ms / 1e9)


def _copy_ms(reps: int) -> float:
    src = torch.empty(2**29, dtype=torch.float32, device='cuda')  # 2 GiB
    dst = torch.empty_like(src)
    return cuda_time_ms(lambda: dst.copy_(src), reps)


def rel_err(value: torch.Tensor, reference: torch.Tensor) -> float:
    """max |value - reference| / max |reference|."""
    scale = reference.abs().max().clamp(min=1e-30)
    return float((value.detach().double() - reference.double()).abs().max() / scale)


# ------------------------------------------------------------------------------------ op mode


def gather_inputs(args, dtype, generator):
    """BEV map (channels-last), locations a few cells around uniform query centres, softmax
    weights: the decoder's access pattern."""
    b, q, nh, k, c, s = (args.batch_size, args.queries, args.heads, args.points, args.channels,
                         args.bev_size)
    dev = 'cuda'
    bev = torch.randn(b, c, s, s, device=dev, generator=generator).to(dtype)
    bev = bev.contiguous(memory_format=torch.channels_last)
    centre = torch.rand(b, q, 1, 1, 2, device=dev, generator=generator) * 2.2 - 1.1
    offsets = torch.randn(b, q, nh, k, 2, device=dev, generator=generator) * (4.0 / s)
    weights = torch.randn(b, q, nh, k, device=dev, generator=generator).softmax(dim=-1)
    return bev, centre + offsets, weights


def bench_gather(args, ceilings, rows):
    from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttnFunction

    from gasp_ops import deformable_bev_gather_reference
    from gasp_ops.deformable_bev_gather_triton import deformable_bev_gather_triton
    generator = torch.Generator(device='cuda').manual_seed(0)
    b, q, nh, k, c, s = (args.batch_size, args.queries, args.heads, args.points, args.channels,
                         args.bev_size)
    group = c // nh
    shapes = torch.tensor([[s, s]], device='cuda', dtype=torch.long)
    level_start = torch.zeros(1, device='cuda', dtype=torch.long)

    def mmcv_gather(bev, loc, w):
        value = bev.permute(0, 2, 3, 1).reshape(b, s * s, nh, group)  # a view when NHWC
        return MultiScaleDeformableAttnFunction.apply(value, shapes,
                                                      level_start, ((loc + 1) * 0.5).unsqueeze(3),
                                                      w.unsqueeze(3), b)

    impls = dict(
        triton=deformable_bev_gather_triton,
        reference=deformable_bev_gather_reference,
        mmcv_msda=mmcv_gather)
    for dtype in (torch.float32, torch.bfloat16):
        bev, loc, w = gather_inputs(args, dtype, generator)
        grad_out = torch.randn(b, q, c, device='cuda', generator=generator)
        ref_in = [t.detach().double().requires_grad_() for t in (bev, loc, w)]
        ref_out = deformable_bev_gather_reference(*ref_in)
        ref_grads = torch.autograd.grad(ref_out, ref_in, grad_out.double())
        ref_out = ref_out.detach()
        del ref_in
        # Unique HBM traffic of the forward: map, locations, weights, output.
        fwd_bytes = (
            bev.numel() * bev.element_size() + loc.numel() * 4 + w.numel() * 4 + b * q * c * 4)
        samples = b * q * nh * k  # bilinear samples of Cg channels each
        for name, fn in impls.items():
            row = _gather_row(fn, (bev, loc, w), grad_out, ref_out, ref_grads, args.reps)
            row.update(op='deformable_bev_gather', impl=name, dtype=str(dtype).split('.')[-1])
            if 'fwd_ms' in row:
                row.update(
                    fwd_gb_s=fwd_bytes / row['fwd_ms'] / 1e6,
                    fwd_pct_copy_bw=100 * fwd_bytes / row['fwd_ms'] / 1e6 / ceilings['copy_gb_s'],
                    gsamples_s=samples / row['fwd_ms'] / 1e6)
            rows.append(row)
        del bev, loc, w, grad_out, ref_out, ref_grads
        torch.cuda.empty_cache()


def _gather_row(fn, tensors, grad_out, ref_out, ref_grads, reps) -> dict:
    """Time one gather implementation forward and forward + backward; errors vs fp64."""
    inputs = [
        t.detach().clone(memory_format=torch.preserve_format).requires_grad_() for t in tensors
    ]
    try:
        out = fn(*inputs)
        grads = torch.autograd.grad(out, inputs, grad_out.to(out.dtype))
    except Exception as error:  # mmcv's kernel has no bf16 instantiation
        return dict(note=f'unsupported: {str(error).splitlines()[0][:60]}')
    errors = dict(
        out=rel_err(out, ref_out),
        grad_bev=rel_err(grads[0], ref_grads[0]),
        grad_loc=rel_err(grads[1], ref_grads[1]),
        grad_w=rel_err(grads[2], ref_grads[2]))
    grad = grad_out.to(out.dtype)
    return dict(
        fwd_ms=cuda_time_ms(lambda: fn(*inputs), reps),
        fwd_bwd_ms=cuda_time_ms(lambda: torch.autograd.grad(fn(*inputs), inputs, grad), reps),
        max_rel_err=max(errors.values()),
        errors=errors)


def voxelize_inputs(args, generator):
    """B samples x 5 sweeps x ``points_per_sweep`` points, some outside the region."""
    n = args.batch_size * 5 * args.points_per_sweep
    dev = 'cuda'
    xy = (torch.rand(n, 2, device=dev, generator=generator) * 2 - 1) * 75.0
    z = torch.randn(n, 1, device=dev, generator=generator) * 1.5
    extra = torch.rand(n, 2, device=dev, generator=generator)
    points = torch.cat([xy, z, extra], dim=1)
    batch_idx = torch.randint(0, args.batch_size, (n, ), device=dev, generator=generator)
    time_idx = torch.randint(0, 5, (n, ), device=dev, generator=generator)
    return points, batch_idx, time_idx


def bench_voxelize(args, ceilings, rows):
    from mmcv.ops import Voxelization

    from gasp_ops import bev_grid_shape, bev_voxelize_reference
    from gasp_ops.bev_voxelize_triton import bev_voxelize_triton
    pcr, voxel = (-70.0, -70.0, -4.5, 70.0, 70.0, 4.5), (0.2, 0.2, 0.5)  # configs/_base_
    num_z, num_y, num_x = bev_grid_shape(pcr, voxel)
    generator = torch.Generator(device='cuda').manual_seed(1)
    points, batch_idx, time_idx = voxelize_inputs(args, generator)
    batch = args.batch_size
    dynamic = Voxelization(voxel, pcr, max_num_points=-1, max_voxels=-1)

    def mmcv_voxelize(points, batch_idx, time_idx, batch_size, slots, pcr, voxel):
        coors = dynamic(points[:, :3])  # (N, 3) z, y, x; -1 outside
        keep = coors[:, 0] >= 0
        zyx = coors[keep].long()
        flat = (((batch_idx[keep] * slots + time_idx[keep]) * num_z + zyx[:, 0]) * num_y +
                zyx[:, 1]) * num_x + zyx[:, 2]
        bev = torch.zeros(batch_size, slots * num_z, num_y, num_x, device=points.device)
        bev.view(-1).index_fill_(0, flat, 1)
        return bev

    reference = bev_voxelize_reference(points, batch_idx, time_idx, batch, 5, pcr, voxel)
    out_bytes = reference.numel() * 4
    in_bytes = points.numel() * 4 + batch_idx.numel() * 8 * 2
    for name, fn in dict(
            triton=bev_voxelize_triton,
            reference=bev_voxelize_reference,
            mmcv_dynamic_voxelization=mmcv_voxelize).items():
        out = fn(points, batch_idx, time_idx, batch, 5, pcr, voxel)
        ms = cuda_time_ms(lambda: fn(points, batch_idx, time_idx, batch, 5, pcr, voxel), args.reps)
        rows.append(
            dict(
                op='bev_voxelize',
                impl=name,
                dtype='float32',
                fwd_ms=ms,
                fwd_gb_s=(out_bytes + in_bytes) / ms / 1e6,
                fwd_pct_copy_bw=100 * (out_bytes + in_bytes) / ms / 1e6 / ceilings['copy_gb_s'],
                mismatched_cells=int((out != reference).sum())))
        del out
    del reference
    torch.cuda.empty_cache()


def render_inputs(args, generator):
    """Density grid of a street (ground, building walls, boxes, haze) and lidar-like rays."""
    pcr, voxel = (-70.0, -70.0, -4.5, 70.0, 70.0, 4.5), (0.2, 0.2, 0.2)
    dev = 'cuda'
    density = torch.zeros(45, 700, 700, device=dev)
    density[:9] = 20.0  # ground below z = -2.7 m
    density[:, :, 100:110] = 5.0  # building fronts at x = -50 m and x = +50 m
    density[:, :, 590:600] = 5.0
    boxes = torch.rand(45, 700, 700, device=dev, generator=generator) < 0.003
    density[boxes] = 30.0
    haze = torch.rand(45, 700, 700, device=dev, generator=generator) < 0.05
    density[haze] += 0.05
    n = args.rays
    azimuth = torch.rand(n, device=dev, generator=generator) * 2 * math.pi
    elevation = (torch.rand(n, device=dev, generator=generator) * 40 - 25) * math.pi / 180
    directions = torch.stack(
        [elevation.cos() * azimuth.cos(),
         elevation.cos() * azimuth.sin(),
         elevation.sin()], dim=1)
    origins = torch.tensor([1.3, 0.0, 1.8], device=dev) + 0.1 * torch.randn(
        n, 3, device=dev, generator=generator)
    return origins, directions, density, pcr, voxel


def bench_render(args, ceilings, rows):
    from gasp_ops import render_expected_depth_reference
    from gasp_ops.ray_marching_triton import render_expected_depth_triton
    generator = torch.Generator(device='cuda').manual_seed(2)
    origins, directions, density, pcr, voxel = render_inputs(args, generator)
    for min_transmittance in (0.0, 1e-4):
        kwargs = dict(
            point_cloud_range=pcr,
            voxel_size=voxel,
            step=0.2,
            max_depth=None,
            steps_per_chunk=64,
            min_transmittance=min_transmittance)
        ref32 = render_expected_depth_reference(origins, directions, density, **kwargs)
        ref64 = render_expected_depth_reference(origins.double(), directions.double(), density,
                                                **kwargs)
        for name, fn in dict(
                triton=render_expected_depth_triton,
                reference=render_expected_depth_reference).items():
            depth = fn(origins, directions, density, **kwargs)
            ms = cuda_time_ms(lambda: fn(origins, directions, density, **kwargs),
                              max(3, args.reps // 4))
            rows.append(
                dict(
                    op=f'render_expected_depth (min_T={min_transmittance:g})',
                    impl=name,
                    dtype='float32',
                    fwd_ms=ms,
                    mrays_s=args.rays / ms / 1e3,
                    max_abs_err_vs_fp32_ref_m=float((depth - ref32).abs().max()),
                    max_abs_err_vs_fp64_ref_m=float((depth.double() - ref64).abs().max()),
                    pct_rays_within_0_1mm_of_fp64_ref=float(
                        100 * ((depth.double() - ref64).abs() <= 1e-4).double().mean())))


def add_speedups(rows):
    """speedup_vs_<impl> for each row of an (op, dtype) against the reference and peers."""
    for row in rows:
        for other in rows:
            if (other['op'] == row['op'] and other['dtype'] == row['dtype'] and other is not row
                    and 'fwd_ms' in row and 'fwd_ms' in other):
                row[f'fwd_speedup_vs_{other["impl"]}'] = other['fwd_ms'] / row['fwd_ms']
                if 'fwd_bwd_ms' in row and 'fwd_bwd_ms' in other:
                    row[f'fwd_bwd_speedup_vs_{other["impl"]}'] = (
                        other['fwd_bwd_ms'] / row['fwd_bwd_ms'])


def op_figure(rows, path):
    """Bar chart of the fast paths' speed-ups (log scale), written as PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    labels, values = [], []
    for row in rows:
        if row['impl'] != 'triton':
            continue
        for key, value in row.items():
            if key.startswith('fwd_') and '_speedup_vs_' in key:
                labels.append(f'{row["op"].split(" ")[0]} {row["dtype"]}\n'
                              f'{key.replace("_speedup_vs_", " vs ")}')
                values.append(value)
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(values)), 4.5))
    ax.bar(range(len(values)), values, color='tab:green')
    ax.axhline(1.0, color='k', lw=0.8)
    ax.set_yscale('log')
    ax.set_xticks(range(len(values)), labels, rotation=60, ha='right', fontsize=7)
    ax.set_ylabel('speed-up of the Triton path (x)')
    ax.set_title(f'gasp_ops on {torch.cuda.get_device_name()}')
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def run_op(args):
    ceilings = measure_ceilings(args.reps)
    rows = []
    for bench in (bench_gather, bench_voxelize, bench_render):
        start = time.perf_counter()
        bench(args, ceilings, rows)
        print(f'{bench.__name__}: {time.perf_counter() - start:.1f} s', flush=True)
    add_speedups(rows)
    op_figure(rows, Path(args.out_dir) / 'benchmark_op.png')
    table = [('op', 'impl', 'dtype', 'fwd ms', 'fwd+bwd ms', 'GB/s (%copy)', 'speed-ups', 'error')]
    for row in rows:
        ups = ' '.join(f'{k.split("_vs_")[1]}:{v:.1f}x' for k, v in row.items()
                       if k.startswith('fwd_speedup_vs_'))
        ups += ''.join(f' [f+b {k.split("_vs_")[1]}:{v:.1f}x]' for k, v in row.items()
                       if k.startswith('fwd_bwd_speedup_vs_'))
        table.append(
            (row['op'], row['impl'], row['dtype'], _fmt(row.get('fwd_ms')),
             _fmt(row.get('fwd_bwd_ms')), (f'{row["fwd_gb_s"]:.0f} ({row["fwd_pct_copy_bw"]:.0f}%)'
                                           if 'fwd_gb_s' in row else row.get('note', '-')), ups
             or '-', _error_text(row)))
    return dict(ceilings=ceilings, rows=rows), table


def _error_text(row) -> str:
    if 'max_rel_err' in row:
        return f'{row["max_rel_err"]:.1e} rel. vs fp64'
    if 'mismatched_cells' in row:
        return f'{row["mismatched_cells"]} cells differ from reference'
    if 'max_abs_err_vs_fp32_ref_m' in row:
        return (f'{row["max_abs_err_vs_fp32_ref_m"]:.1e} m vs fp32 ref; '
                f'{row["pct_rays_within_0_1mm_of_fp64_ref"]:.2f}% rays within 1e-4 m of fp64')
    return '-'


def _fmt(value, spec='.3f'):
    return '-' if value is None else format(value, spec)


def print_table(table):
    widths = [max(len(str(r[i])) for r in table) for i in range(len(table[0]))]
    for i, row in enumerate(table):
        print('  '.join(str(v).ljust(w) for v, w in zip(row, widths)))
        if i == 0:
            print('  '.join('-' * w for w in widths))


def main():
    args = parse_args()
    if not torch.cuda.is_available():
        raise SystemExit('tools/benchmark.py measures GPU paths: run it on a machine with CUDA')
    import gasp  # noqa: F401  (registers modules, applies compat fixes)
    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    result, table = run_op(args)
    result.update(
        mode=args.mode,
        device=torch.cuda.get_device_name(),
        torch=torch.__version__,
        args=vars(args))
    path = dump_json_atomic(result, Path(args.out_dir) / f'benchmark_{args.mode}.json', indent=1)
    print_table(table)
    print(f'written: {path}')


if __name__ == '__main__':
    main()
