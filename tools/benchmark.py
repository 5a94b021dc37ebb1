"""GASP performance benchmarks on one GPU.

    python tools/benchmark.py op [--batch-size 8 --queries 65536 --rays 100000]
    python tools/benchmark.py step [--config configs/gasp_av2.py --step-batch-sizes 1 2 4 8]
    python tools/benchmark.py data [--config configs/gasp_av2.py --workers 4 15]

``op`` mode: each ``gasp_ops`` fast path against its PyTorch reference and the peer a user
would pick (mmcv's ``MultiScaleDeformableAttention`` CUDA kernel for the gather, mmcv's CUDA
dynamic voxelization for the scatter; the reference is the vectorized PyTorch ray marcher):
time, achieved bandwidth against the measured copy bandwidth, and the error against the fp64
reference. The measured ceilings (copy bandwidth, bf16 / fp32 matmul, pinned host-to-device
copy) are part of every mode's result.

``step`` mode: one training step of the config (bf16 autocast, as ``tools/train.py --amp``) on
batches built in memory at AV2 counts (``--points-per-sweep`` points per past sweep, the
pipeline's rays, missing rays and feature targets per future sweep): samples/s, peak memory,
the share of the step GPU kernels run, the split between host-to-device copy, preprocessing,
encoder, decoder, losses, backward and optimizer (CUDA events), and the step's floor from the
config (FLOPs and bytes of every conv / linear layer and gather, see :func:`step_floor`).

``data`` mode: one dataloader worker's time per transform (the config's pipeline in this
process), then the config's training through the real mmengine Runner as ``tools/train.py
--amp`` builds it (loop, optimizer wrapper, hooks) fed by its dataloader with N workers: time
between iterations (fetching data) and the share of the wall time GPU kernels run, against
the same iterations on a batch already in memory. Needs the config's data on disk
(``--data-root``, ``--ann-file``).

Prints a table at the end and writes ``<out-dir>/benchmark_<mode>.json`` (and, in op mode, a
PNG of the speed-ups) through :mod:`gasp.fileio`.
"""
import argparse
import contextlib
import copy
import io
import json
import math
import os
import resource
import sys
import tempfile
import time
from collections import defaultdict
from functools import partial
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from mmengine.config import DictAction
from torch import nn

from gasp.fileio import atomic_write_bytes, dump_json_atomic


def parse_args():
    parser = argparse.ArgumentParser(description='GASP GPU benchmarks')
    parser.add_argument('mode', choices=('op', 'step', 'data'))
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
    parser.add_argument(
        '--ops',
        nargs='+',
        choices=('gather', 'voxelize', 'render'),
        default=['gather', 'voxelize', 'render'],
        help='op mode: which ops to measure')
    # step and data modes
    parser.add_argument('--config', default='configs/gasp_av2.py')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='override config settings')
    parser.add_argument('--step-batch-sizes', type=int, nargs='+', default=[1, 2, 4, 8])
    parser.add_argument('--step-reps', type=int, default=5, help='timed training steps')
    parser.add_argument('--no-amp', action='store_true', help='fp32 instead of bf16 autocast')
    parser.add_argument('--data-root', help='data mode: override the dataset data_root')
    parser.add_argument('--ann-file', help='data mode: override the dataset ann_file')
    parser.add_argument(
        '--drop', nargs='*', default=[], help='data mode: transform types to leave out')
    parser.add_argument(
        '--num-samples', type=int, default=10, help='data mode: samples of the one-worker run')
    parser.add_argument(
        '--workers',
        type=int,
        nargs='+',
        help='data mode: dataloader workers to try (default: the config\'s and CPUs - 1)')
    parser.add_argument(
        '--data-steps', type=int, default=40, help='data mode: measured steps per run')
    parser.add_argument(
        '--data-warmup',
        type=int,
        default=10,
        help='data mode: steps before measuring (workers start, queues fill)')
    parser.add_argument(
        '--profile-host-steps',
        type=int,
        default=0,
        help='data mode: profile this many more fed steps (CPU + CUDA) and report what the '
        'host threads ran while the GPU idled; the chrome trace is saved in --out-dir')
    parser.add_argument(
        '--gil-switch-interval',
        type=float,
        help='data mode: sys.setswitchinterval in seconds (default: the config\'s '
        'env_cfg.gil_switch_interval_s, else Python\'s 0.005)')
    parser.add_argument(
        '--data-batch-sizes',
        type=int,
        nargs='+',
        help='data mode: batch sizes (default: the config\'s)')
    return parser.parse_args()


# ----------------------------------------------------------------------------------- timing


def cuda_time_ms(fn, reps: int, warmup: int = 3) -> float:
    """Median GPU time of ``fn()`` over ``reps`` runs (CUDA events)."""
    return cuda_times_ms_interleaved([fn], reps, warmup)[0]


def cuda_times_ms_interleaved(fns, reps: int, warmup: int = 3) -> list:
    """Median GPU time of each of ``fns`` over ``reps`` rounds, each round running every
    function once in turn, so clock or load drift during the measurement reaches all of them
    alike and their ratios stay put."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    torch.cuda.synchronize()
    times = [[] for _ in fns]
    for _ in range(reps):
        for fn, found in zip(fns, times):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            found.append(start.elapsed_time(end))
    return [float(np.median(found)) for found in times]


def measure_ceilings(reps: int) -> dict:
    """Measured H100 ceilings: copy bandwidth (GB/s) and dense matmul rates (TFLOP/s)."""
    copy_ms = _copy_ms(reps)
    n = 8192
    a = torch.randn(n, n, device='cuda', dtype=torch.bfloat16)
    b = torch.randn(n, n, device='cuda', dtype=torch.bfloat16)
    bf16_ms = cuda_time_ms(lambda: a @ b, reps)
    a, b = a.float(), b.float()
    fp32_ms = cuda_time_ms(lambda: a @ b, max(3, reps // 4))
    host = torch.empty(2**26, dtype=torch.float32).pin_memory()  # 256 MiB
    device = torch.empty_like(host, device='cuda')
    h2d_ms = cuda_time_ms(lambda: device.copy_(host, non_blocking=True), max(3, reps // 4))
    return dict(
        copy_gb_s=2 * 2**29 * 4 / copy_ms / 1e6,
        bf16_matmul_tflop_s=2 * n**3 / bf16_ms / 1e9,
        fp32_matmul_tflop_s=2 * n**3 / fp32_ms / 1e9,
        h2d_pinned_gb_s=2**26 * 4 / h2d_ms / 1e6)


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
        impls = dict(triton=render_expected_depth_triton, reference=render_expected_depth_reference)
        times = cuda_times_ms_interleaved(
            [partial(fn, origins, directions, density, **kwargs) for fn in impls.values()],
            args.reps)
        for (name, fn), ms in zip(impls.items(), times):
            depth = fn(origins, directions, density, **kwargs)
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
    benches = dict(gather=bench_gather, voxelize=bench_voxelize, render=bench_render)
    for bench in [benches[name] for name in args.ops]:
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


# ---------------------------------------------------------------------------------- step mode


def load_config(path: str, cfg_options=None):
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def _pipeline_arg(cfg, transform: str, key: str, default):
    for step in cfg.train_dataloader.dataset.pipeline:
        if step['type'] == transform:
            return step.get(key, default)
    return None


def sample_counts(cfg, points_per_sweep: int) -> dict:
    """What one packed training sample of ``cfg`` holds at AV2 density: past points, future
    rays, missing rays and feature targets (per-sweep caps of the pipeline, 10 Hz lidar with
    every 2nd sweep over the decoder's horizon)."""
    pre = cfg.model.data_preprocessor
    horizon_s = cfg.model.decoder.time_range[1]
    future_sweeps = int(round(horizon_s / 0.2))
    return dict(
        past_sweeps=pre.num_past_sweeps,
        past_interval_s=pre.past_interval_s,
        points_per_sweep=points_per_sweep,
        future_sweeps=future_sweeps,
        rays_per_sweep=_pipeline_arg(cfg, 'LoadFutureRays', 'max_rays_per_sweep', 8192) or 0,
        missing_rays_per_sweep=_pipeline_arg(cfg, 'LoadMissingRays', 'max_rays_per_sweep', 4096)
        or 0,
        feature_points_per_sweep=_pipeline_arg(cfg, 'LoadFeatureTargets', 'max_points_per_sweep',
                                               4096) or 0,
        feature_dim=cfg.model.decoder.heads.get('feature', 0),
        horizon_s=horizon_s)


def synthetic_batch(counts: dict, batch_size: int, generator: torch.Generator) -> dict:
    """A batch as ``PackGASPInputs`` + ``gasp_collate`` + the dataloader's pin-memory thread
    give it, built in memory (CPU) at ``counts``: lidar-like past sweeps (ring pattern, ranges
    2-80 m, a ground plane), future rays from a lidar moving at 10 m/s, missing rays, an ego
    path and feature targets; tensors in pinned memory (as ``pin_memory=True`` configs) when
    there is a GPU."""
    from gasp.datasets.collate import gasp_collate
    from gasp.structures import PinnableDataElement as BaseDataElement
    pin = torch.cuda.is_available()

    def rand(*shape):
        return torch.rand(*shape, generator=generator)

    def lidar_directions(n):
        azimuth = rand(n) * 2 * math.pi
        elevation = (rand(n) * 40 - 25) * math.pi / 180
        return torch.stack(
            [elevation.cos() * azimuth.cos(),
             elevation.cos() * azimuth.sin(),
             elevation.sin()],
            dim=1)

    def ranges(directions):
        ground = (1.8 / (-directions[:, 2]).clamp(min=1e-3)).clamp(max=80.0)  # lidar at 1.8 m
        return torch.minimum(ground, 2.0 + 78.0 * rand(len(directions))**2)

    inputs, samples = [], []
    for _ in range(batch_size):
        sweeps = []
        for s in range(counts['past_sweeps']):
            t_rel = -counts['past_interval_s'] * (counts['past_sweeps'] - 1 - s)
            n = counts['points_per_sweep']
            d = lidar_directions(n)
            xyz = torch.tensor([1.3 + 10.0 * t_rel, 0.0, 1.8]) + d * ranges(d)[:, None]
            sweeps.append(torch.cat([xyz, rand(n, 1), torch.full((n, 1), t_rel)], dim=1))
        inputs.append(torch.cat(sweeps).float())
        times = torch.arange(1, counts['future_sweeps'] + 1).float() * 0.2

        def per_sweep(n):
            t = times.repeat_interleave(n)
            origins = torch.stack(
                [1.3 + 10.0 * t, torch.zeros_like(t),
                 torch.full_like(t, 1.8)], dim=1)
            return origins, lidar_directions(len(t)), t

        origins, directions, t = per_sweep(counts['rays_per_sweep'])
        sample = BaseDataElement()
        sample.rays = BaseDataElement(
            origins=origins, directions=directions, depths=ranges(directions), times_s=t)
        if counts['missing_rays_per_sweep']:
            origins, directions, t = per_sweep(counts['missing_rays_per_sweep'])
            sample.missing_rays = BaseDataElement(origins=origins, directions=directions, times_s=t)
        path_t = torch.arange(0, int(counts['horizon_s'] * 10) + 1).float() * 0.1
        sample.ego_path = BaseDataElement(
            times_s=path_t,
            xy=torch.stack([10.0 * path_t, torch.zeros_like(path_t)], dim=1),
            yaw=torch.zeros_like(path_t))
        sample.ego_footprint = torch.tensor([-1.0, -0.95, 3.87, 0.95])
        if counts['feature_points_per_sweep'] and counts['feature_dim']:
            origins, directions, t = per_sweep(counts['feature_points_per_sweep'])
            sample.feature_targets = BaseDataElement(
                points=origins + directions * ranges(directions)[:, None],
                times_s=t,
                features=torch.randn(len(t), counts['feature_dim'], generator=generator).half())
        samples.append(sample)
    batch = gasp_collate([
        dict(inputs=dict(points=points), data_samples=sample)
        for points, sample in zip(inputs, samples)
    ])
    if pin:
        batch['packed'] = batch['packed'].pin_memory()
    return batch


def build_training(cfg, device: str, amp: bool):
    """The config's model and optimizer wrapper (bf16 autocast as ``tools/train.py --amp``)."""
    from mmdet3d.registry import MODELS
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope

    from gasp.engine.runner_setup import enable_amp
    init_default_scope('mmdet3d')  # the GASP wrapper is in mmdet3d's registry, as a Runner's
    model = MODELS.build(cfg.model).to(device)
    model.init_weights()
    model.train()
    cfg = copy.deepcopy(cfg)
    if amp:
        enable_amp(cfg)
    return model, build_optim_wrapper(model, cfg.optim_wrapper)


class PhaseTimer:
    """GPU time per named phase (CUDA events; no host synchronisation inside a step)."""

    def __init__(self):
        self.spans = []

    @contextlib.contextmanager
    def __call__(self, name: str):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        yield
        end.record()
        self.spans.append((name, start, end))

    def totals_ms(self) -> dict:
        torch.cuda.synchronize()
        totals = {}
        for name, start, end in self.spans:
            totals[name] = totals.get(name, 0.0) + start.elapsed_time(end)
        return totals


def instrumented_step(model, optim_wrapper, data, timer):
    """One training step split into phases; the same work as ``model.train_step`` (data
    preprocessor, ``GASP.loss``, ``parse_losses``, ``update_params``)."""
    with timer('h2d'):
        data = model.data_preprocessor.cast_data(data)
    with timer('preprocess'):
        data = model.data_preprocessor(data, training=True)
    inputs = data['inputs']
    with optim_wrapper.optim_context(model):
        with timer('encoder'):
            bev = model.extract_bev(inputs)
        with timer('decoder'):
            preds = {
                head: model.query(bev, inputs['targets'][head]['queries'], head)
                for head in model.losses
            }
        with timer('losses'):
            losses = {
                f'loss_{head}': loss_fn(preds[head].float(), inputs['targets'][head]['labels'])
                for head, loss_fn in model.losses.items()
            }
            loss, _ = model.parse_losses(losses)
    with timer('backward'):
        optim_wrapper.backward(loss)
    with timer('optimizer'):
        optim_wrapper.step()
        optim_wrapper.zero_grad()


def step_ms(model, optim_wrapper, data, reps: int) -> float:
    """Wall time of ``model.train_step`` per step (CUDA events around ``reps`` steps, so host
    stalls inside a step count)."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        model.train_step(data, optim_wrapper)
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / reps


def _union_us(intervals) -> float:
    """Total length of the union of (start, end) intervals."""
    total, reach = 0.0, -math.inf
    for begin, finish in sorted(intervals):
        if finish > reach:
            total += finish - max(begin, reach)
            reach = finish
    return total


def _holes(intervals, longer_than: float = 0.0) -> list:
    """(start, end) of the holes longer than ``longer_than`` between the union of (start,
    end) intervals."""
    holes, reach = [], math.inf
    for begin, finish in sorted(intervals):
        if begin - reach > longer_than:
            holes.append((reach, begin))
        reach = finish if reach == math.inf else max(reach, finish)
    return holes


def _gaps_us(intervals) -> list:
    """Lengths of the holes between the union of (start, end) intervals."""
    return [end - start for start, end in _holes(intervals)]


def _kernel_intervals(events: list) -> list:
    """(start, end) us of the GPU kernels of a chrome trace."""
    return [(e['ts'], e['ts'] + e['dur']) for e in events if e.get('cat') == 'kernel']


def _trace_events(prof, keep: Optional[Path] = None) -> list:
    """The events of a finished torch.profiler run, through its chrome trace (kept at
    ``keep`` when given)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = keep or Path(tmp) / 'trace.json'
        prof.export_chrome_trace(str(path))
        with open(path) as f:
            return json.load(f)['traceEvents']


class KernelWindow:
    """The share of a wall-time window during which a GPU kernel ran: the union of the CUPTI
    kernel intervals of all streams from torch.profiler's trace, so overlapping kernels count
    once and copies (host-to-device DMA) do not count; the profiler's own start and stop are
    outside the window. :meth:`start` and :meth:`stop` may be called from anywhere (a runner
    hook, a loop), so the window can span real training iterations.
    """

    def __init__(self):
        self.pauses, self._started = [], []

    def _on_gc(self, phase, info):  # the garbage collector stops this thread while it runs
        if phase == 'start':
            self._started.append(time.perf_counter())
        elif self._started:
            self.pauses.append(time.perf_counter() - self._started.pop())

    @staticmethod
    def _host_counters() -> np.ndarray:
        """This thread's CPU seconds, voluntary (blocking: GIL, locks, queues) and involuntary
        (preempted) context switches; the process's CPU seconds; pinned host allocations."""
        thread = resource.getrusage(resource.RUSAGE_THREAD)
        process = resource.getrusage(resource.RUSAGE_SELF)
        return np.array([
            thread.ru_utime + thread.ru_stime, thread.ru_nvcsw, thread.ru_nivcsw,
            process.ru_utime + process.ru_stime,
            _host_allocations()
        ])

    def start(self) -> None:
        import gc

        from torch.profiler import ProfilerActivity, profile
        torch.cuda.synchronize()
        gc.callbacks.append(self._on_gc)
        self.prof = profile(activities=[ProfilerActivity.CUDA])
        self.prof.start()
        self.counters = self._host_counters()
        self.t0 = time.perf_counter()

    def stop(self, calls: int, details: bool = False):
        """(busy share, wall seconds) of the window, and with ``details`` a third item per
        call: copy time (ms), the idle gaps longer than 1 ms (count and ms), the longest gap
        and the host's garbage-collection pauses, for the account of where an under-busy
        step waits."""
        import gc
        torch.cuda.synchronize()
        wall_us = (time.perf_counter() - self.t0) * 1e6
        counters = (self._host_counters() - self.counters) / calls
        self.prof.stop()
        gc.callbacks.remove(self._on_gc)
        events = _trace_events(self.prof)
        kernels = _kernel_intervals(events)
        busy = float(_union_us(kernels) / wall_us)
        if not details:
            return busy, wall_us / 1e6
        copies = [(e['ts'], e['ts'] + e['dur']) for e in events if e.get('cat') == 'gpu_memcpy']
        all_gaps = _gaps_us(kernels)
        gaps = [gap for gap in all_gaps if gap > 1e3]
        return busy, wall_us / 1e6, dict(
            kernels_per_call=len(kernels) / calls,
            copy_ms_per_call=_union_us(copies) / 1e3 / calls,
            gap_ms_under_1ms_per_call=sum(g for g in all_gaps if g <= 1e3) / 1e3 / calls,
            gaps_over_1ms_per_call=len(gaps) / calls,
            gap_ms_over_1ms_per_call=sum(gaps) / 1e3 / calls,
            longest_gap_ms=max(gaps, default=0.0) / 1e3,
            gc_ms_per_call=1e3 * sum(self.pauses) / calls,
            longest_gc_ms=1e3 * max(self.pauses, default=0.0),
            main_thread_cpu_ms_per_call=1e3 * counters[0],
            main_thread_blocking_waits_per_call=counters[1],
            main_thread_preemptions_per_call=counters[2],
            process_cpu_ms_per_call=1e3 * counters[3],
            pinned_allocations_per_call=counters[4])


def kernel_busy(fn, steps: int, details: bool = False):
    """(share of the wall time of ``steps`` calls of ``fn`` during which a GPU kernel ran,
    that wall time in seconds), and with ``details`` the idle account of
    :meth:`KernelWindow.stop`."""
    window = KernelWindow()
    window.start()
    for _ in range(steps):
        fn()
    return window.stop(steps, details)


def host_syncs(fn) -> list:
    """Where one call of ``fn`` makes the host wait for the GPU: torch's sync debug mode warns
    at every synchronizing call. Each sync drains the GPU's queue, so the host's work after it
    is GPU idle time. A sync is named by the innermost caller outside torch itself, followed
    by the torch line that made it (``caller <- torch line``)."""
    import traceback
    import warnings
    found = []

    def record(message, category, filename, lineno, file=None, line=None):
        if 'called a synchronizing' not in str(message):
            return  # e.g. the notice that the debug mode is a prototype

        def name(path, line):
            return f'{"/".join(Path(path).parts[-2:])}:{line}'

        stack = traceback.extract_stack()[:-1]
        while stack and Path(stack[-1].filename).name == 'warnings.py':
            stack.pop()  # the warnings machinery that called record
        inside = 0  # the torch frames between the caller and the sync, innermost last
        while inside < len(stack) and f'{os.sep}torch{os.sep}' in stack[-1 - inside].filename:
            inside += 1
        chain = [name(f.filename, f.lineno) for f in stack[len(stack) - inside - 1:]][-4:]
        if name(filename, lineno) not in chain:
            chain.append(name(filename, lineno))
        found.append(' <- '.join(chain))

    torch.cuda.synchronize()
    with warnings.catch_warnings():
        warnings.simplefilter('always')
        warnings.showwarning = record
        torch.cuda.set_sync_debug_mode('warn')
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode('default')
    return found


# The floor of a step: every conv / linear layer at the better of its matmul or HBM roofline,
# the gathers and the voxel grid at HBM bandwidth, AdamW over the parameters; elementwise
# layers (norm, activation, residual adds) are taken as fused into their producers.

_ENCODER_PREFIXES = ('voxel_encoder', 'middle_encoder', 'backbone', 'neck')


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def count_step_work(model, inputs: dict, autocast_dtype=None) -> list:
    """FLOPs and minimal HBM bytes of each conv / linear layer and each deformable gather of
    one training step (forward and backward), from one forward pass with hooks.

    Args:
        model: a GASP model (train mode).
        inputs: the data preprocessor's ``inputs`` (with ``targets``), on the model's device.
        autocast_dtype: run the forward under autocast to this dtype (bf16 on the GPU), so that
            the layers' tensors have the element sizes of training.

    Returns:
        One dict per call: ``phase`` ('encoder' or 'decoder'), ``kind``, ``name``,
        ``fwd_flops``, ``bwd_flops``, ``fwd_bytes``, ``bwd_bytes``. Backward FLOPs are twice the
        forward's (input and weight gradients), once where the input needs no gradient; its
        bytes read the output gradient and the input and write the input and weight gradients.
    """
    from gasp.models.decoders import implicit_occupancy_decoder as decoder_module
    records = []

    def layer_hook(name, module):
        phase = 'encoder' if name.startswith(_ENCODER_PREFIXES) else 'decoder'

        def hook(mod, args, out):
            x = args[0]
            if isinstance(mod, nn.Linear):
                flops = 2 * out.numel() * mod.in_features
            else:
                kernel = mod.kernel_size[0] * mod.kernel_size[1]
                flops = 2 * out.numel() * (mod.in_channels // mod.groups) * kernel
            weight = mod.weight.numel() * out.element_size()
            grad_in = _nbytes(x) if x.requires_grad else 0
            records.append(
                dict(
                    phase=phase,
                    kind=type(mod).__name__,
                    name=name,
                    fwd_flops=flops,
                    bwd_flops=flops * (2 if x.requires_grad else 1),
                    fwd_bytes=_nbytes(x) + _nbytes(out) + weight,
                    bwd_bytes=_nbytes(out) + _nbytes(x) + grad_in + weight))

        return module.register_forward_hook(hook)

    real_gather = decoder_module.deformable_bev_gather

    def counted_gather(bev, loc, weights):
        out = real_gather(bev, loc, weights)
        small = _nbytes(loc) + _nbytes(weights)
        records.append(
            dict(
                phase='decoder',
                kind='deformable_bev_gather',
                name=f'gather {loc.shape[2]}x{loc.shape[3]} points',
                fwd_flops=2 * out.numel() * loc.shape[3] * 4,
                bwd_flops=6 * out.numel() * loc.shape[3] * 4,
                # Forward: map, locations, weights, output. Backward: output gradient, map,
                # locations, weights, location and weight gradients, the fp32 map gradient
                # (written once) and its cast to the map's dtype.
                fwd_bytes=_nbytes(bev) + small + _nbytes(out),
                bwd_bytes=_nbytes(out) + _nbytes(bev) + 2 * small + bev.numel() * 4 + bev.numel() *
                (4 + bev.element_size())))
        return out

    hooks = [
        layer_hook(name, module) for name, module in model.named_modules()
        if isinstance(module, (nn.Conv2d, nn.Linear))
    ]
    decoder_module.deformable_bev_gather = counted_gather
    device_type = 'cuda' if inputs['points'][0].is_cuda else 'cpu'
    try:
        with torch.autocast(
                device_type, dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype
                is not None):
            bev = model.extract_bev(inputs)
            for head in model.losses:
                model.query(bev, inputs['targets'][head]['queries'], head)
    finally:
        decoder_module.deformable_bev_gather = real_gather
        for hook in hooks:
            hook.remove()
    return records


def batch_bytes(value) -> int:
    """Bytes of every tensor in a (nested) batch: what the step copies to the GPU."""
    from mmengine.structures import BaseDataElement
    if isinstance(value, torch.Tensor):
        return _nbytes(value)
    if isinstance(value, BaseDataElement):
        return sum(batch_bytes(v) for v in value.values())
    if isinstance(value, dict):
        return sum(batch_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(batch_bytes(v) for v in value)
    return 0


def step_floor(records: list, inputs: dict, model, ceilings: dict, h2d_bytes: int = 0) -> dict:
    """Floor (ms) of each phase of a step against the measured ceilings.

    Each conv / linear / gather call costs ``max(FLOPs / matmul rate, bytes / copy bandwidth)``
    (forward in its phase, backward in ``backward``); ``h2d`` copies the batch at the pinned
    host-to-device bandwidth; ``preprocess`` writes the voxel grid and reads the points;
    ``losses`` read predictions and labels; ``optimizer`` is AdamW plus the gradient-norm clip
    over fp32 parameters (8 passes of 4 bytes per parameter).

    Returns:
        ``phases``: phase -> dict(flops, bytes, ms); ``total_ms``; ``total_flops``,
        ``total_bytes``.
    """
    flop_rate = ceilings['bf16_matmul_tflop_s'] * 1e9  # FLOP per ms
    byte_rate = ceilings['copy_gb_s'] * 1e6  # bytes per ms
    phases = {}

    def add(phase, flops, nbytes):
        entry = phases.setdefault(phase, dict(flops=0, bytes=0, ms=0.0))
        entry['flops'] += flops
        entry['bytes'] += nbytes
        entry['ms'] += max(flops / flop_rate, nbytes / byte_rate)

    if h2d_bytes:
        phases['h2d'] = dict(
            flops=0, bytes=h2d_bytes, ms=h2d_bytes / (ceilings['h2d_pinned_gb_s'] * 1e6))
    for rec in records:
        add(rec['phase'], rec['fwd_flops'], rec['fwd_bytes'])
        add('backward', rec['bwd_flops'], rec['bwd_bytes'])
    grid = inputs.get('bev')
    add('preprocess', 0,
        (_nbytes(grid) if grid is not None else 0) + sum(_nbytes(p) for p in inputs['points']))
    add(
        'losses', 0,
        sum(
            _nbytes(t['labels']) + t['queries'].shape[0] * t['queries'].shape[1] *
            (t['labels'].shape[2] if t['labels'].dim() == 3 else 1) * 4
            for t in inputs['targets'].values()))
    num_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    add('optimizer', 0, 8 * 4 * num_params)
    return dict(
        phases=phases,
        total_ms=sum(v['ms'] for v in phases.values()),
        total_flops=sum(v['flops'] for v in phases.values()),
        total_bytes=sum(v['bytes'] for v in phases.values()))


STEP_PHASES = ('h2d', 'preprocess', 'encoder', 'decoder', 'losses', 'backward', 'optimizer')


def run_step(args):
    """Training step of ``args.config`` at AV2 density for each batch size."""
    cfg = load_config(args.config, args.cfg_options)
    counts = sample_counts(cfg, args.points_per_sweep)
    ceilings = measure_ceilings(args.reps)
    generator = torch.Generator().manual_seed(0)
    rows = []
    for batch_size in args.step_batch_sizes:
        torch.cuda.empty_cache()
        model, optim_wrapper = build_training(cfg, 'cuda', amp=not args.no_amp)
        data = synthetic_batch(counts, batch_size, generator)
        row = dict(batch_size=batch_size)
        try:
            torch.cuda.reset_peak_memory_stats()
            for _ in range(2):  # compiles the Triton kernels, warms the allocator
                model.train_step(data, optim_wrapper)
            ms = step_ms(model, optim_wrapper, data, args.step_reps)
            row.update(
                step_ms=ms,
                samples_per_s=1e3 * batch_size / ms,
                peak_memory_gib=torch.cuda.max_memory_allocated() / 2**30,
            )
            busy, _, idle = kernel_busy(
                lambda: model.train_step(data, optim_wrapper), args.step_reps, details=True)
            row.update(
                kernel_busy_fraction=busy,
                idle=idle,
                host_syncs=host_syncs(lambda: model.train_step(data, optim_wrapper)))
            timer = PhaseTimer()
            for _ in range(args.step_reps):
                instrumented_step(model, optim_wrapper, data, timer)
            row['phases_ms'] = {k: v / args.step_reps for k, v in timer.totals_ms().items()}
            prepared = model.data_preprocessor(
                model.data_preprocessor.cast_data(data), training=True)['inputs']
            records = count_step_work(model, prepared, None if args.no_amp else torch.bfloat16)
            floor = step_floor(records, prepared, model, ceilings, batch_bytes(data))
            row.update(
                floor_ms=floor['total_ms'],
                floor_phases=floor['phases'],
                floor_flops=floor['total_flops'],
                floor_bytes=floor['total_bytes'],
                achieved_over_floor=ms / floor['total_ms'])
        except torch.cuda.OutOfMemoryError as error:
            row.update(note=f'out of memory: {str(error).splitlines()[0][:80]}')
        rows.append(row)
        print(f'step batch {batch_size}: {row.get("step_ms", float("nan")):.1f} ms', flush=True)
        model = optim_wrapper = data = None  # free the GPU memory before the next size
    table = [('batch', 'step ms', 'samples/s', 'peak GiB', 'kernel busy', 'host syncs', 'floor ms',
              'achieved/floor') + tuple(f'{p} ms (floor)' for p in STEP_PHASES)]
    for row in rows:
        if 'step_ms' not in row:
            table.append((row['batch_size'], row['note']) + ('-', ) * (len(table[0]) - 2))
            continue
        phases = tuple(f'{row["phases_ms"].get(p, 0.0):.1f} '
                       f'({row["floor_phases"].get(p, {}).get("ms", 0.0):.1f})'
                       for p in STEP_PHASES)
        table.append((row['batch_size'], f'{row["step_ms"]:.1f}', f'{row["samples_per_s"]:.1f}',
                      f'{row["peak_memory_gib"]:.1f}', f'{100 * row["kernel_busy_fraction"]:.0f}%',
                      len(row['host_syncs']), f'{row["floor_ms"]:.1f}',
                      f'{row["achieved_over_floor"]:.1f}x') + phases)
    return dict(
        ceilings=ceilings,
        sample_counts=counts,
        inputs_note=('batches built in memory at AV2 counts (synthetic lidar-like sweeps, rays, '
                     'missing rays, ego path and feature targets), not read from disk'),
        rows=rows), table


# ---------------------------------------------------------------------------------- data mode


def dataset_config(cfg, args):
    dataset_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    if args.data_root:
        dataset_cfg.data_root = args.data_root
    if args.ann_file:
        dataset_cfg.ann_file = args.ann_file
    if args.drop:
        dataset_cfg.pipeline = [t for t in dataset_cfg.pipeline if t['type'] not in args.drop]
    return dataset_cfg


def worker_breakdown(dataset_cfg, num_samples: int) -> dict:
    """What one dataloader worker does per sample: the config's pipeline run in this process
    after one warm-up sample, on one torch thread as in a dataloader worker; time per
    transform, time reading sweep files, peak memory."""
    from mmdet3d.registry import DATASETS, TRANSFORMS

    from gasp.datasets import av2_io
    pipeline_cfg = dataset_cfg.pipeline
    dataset_cfg = copy.deepcopy(dataset_cfg)
    dataset_cfg.pipeline = []
    dataset = DATASETS.build(dataset_cfg)
    transforms = [(t['type'], TRANSFORMS.build(t)) for t in pipeline_cfg]

    reading = dict(seconds=0.0, files=0, points=0)
    original = av2_io.read_sweep

    def timed_read_sweep(*args, **kwargs):
        start = time.perf_counter()
        out = original(*args, **kwargs)
        reading['seconds'] += time.perf_counter() - start
        reading['files'] += 1
        reading['points'] += len(out['xyz_ego'])
        return out

    per_transform = defaultdict(float)
    totals = []
    count = min(num_samples, len(dataset) - 1)
    order = np.random.default_rng(0).permutation(len(dataset))[:count + 1]
    av2_io.read_sweep = timed_read_sweep  # every AV2 sweep read goes through it
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as torch's dataloader workers run
    try:
        for i, index in enumerate(order):
            if i == 1:  # the first sample warms caches and imports
                per_transform.clear()
                reading.update(seconds=0.0, files=0, points=0)
            start = time.perf_counter()
            results = dataset.get_data_info(int(index))
            for name, transform in transforms:
                t0 = time.perf_counter()
                results = transform(results)
                per_transform[name] += time.perf_counter() - t0
            if i >= 1:
                totals.append(time.perf_counter() - start)
    finally:
        av2_io.read_sweep = original
        torch.set_num_threads(threads)
    total = float(np.sum(totals))
    return dict(
        samples=count,
        dataset_size=len(dataset),
        samples_per_s=count / total,
        seconds_per_sample=total / count,
        read_seconds_per_sample=reading['seconds'] / count,
        sweep_files_per_sample=reading['files'] / count,
        points_per_sweep=reading['points'] / max(reading['files'], 1),
        transform_seconds_per_sample={
            k: v / count
            for k, v in per_transform.items()
        },
        peak_memory_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


STEP_LABEL = 'benchmark.fed_step'


def host_activity_in_gaps(events: list,
                          main_tid: Optional[int] = None,
                          min_gap_us: float = 1e3) -> dict:
    """What the host threads ran while no GPU kernel did: chrome-trace ``events`` of
    torch.profiler with CPU and CUDA activities, GPU gaps longer than ``min_gap_us``. The
    main thread is ``main_tid``, or (None) the thread of the :data:`STEP_LABEL` annotations.

    Returns the gaps' total (ms), the share of it during which the main thread ran no
    operator (blocked: GIL, scheduler, Python outside torch), and per thread ('main' or
    'other') the operators overlapping the gaps, by overlapped ms (inclusive of nested ones).
    """
    if main_tid is None:
        main_tid = next((e.get('tid') for e in events if e.get('name') == STEP_LABEL), None)
    gaps = _holes(_kernel_intervals(events), longer_than=min_gap_us)
    ops = [e for e in events if e.get('cat') == 'cpu_op' and e.get('dur', 0) > 0]
    overlap = defaultdict(float)
    main_spans = []
    for e in ops:
        start, end = e['ts'], e['ts'] + e['dur']
        thread = 'main' if e.get('tid') == main_tid else 'other'
        for gap_start, gap_end in gaps:
            shared = min(end, gap_end) - max(start, gap_start)
            if shared > 0:
                overlap[(thread, e['name'])] += shared
                if thread == 'main':
                    main_spans.append((max(start, gap_start), min(end, gap_end)))
    gap_us = sum(b - a for a, b in gaps)
    top = sorted(overlap.items(), key=lambda item: -item[1])[:20]
    return dict(
        gaps=len(gaps),
        gap_ms=gap_us / 1e3,
        main_thread_without_op_share=(1 - _union_us(main_spans) / gap_us) if gap_us else 0.0,
        ops_in_gaps_ms=[dict(thread=t, op=name, ms=us / 1e3) for (t, name), us in top])


class HostWindow:
    """torch.profiler with CPU and CUDA activity over a window of steps, each step marked
    with :data:`STEP_LABEL` on the main thread; :meth:`stop` analyses the GPU gaps
    (:func:`host_activity_in_gaps`) and keeps the chrome trace at ``trace_path``."""

    def __init__(self, trace_path: Optional[Path]):
        self.trace_path, self.steps, self._step = trace_path, 0, None

    def start(self) -> None:
        from torch.profiler import ProfilerActivity, profile
        torch.cuda.synchronize()
        self.prof = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
        self.prof.start()

    def begin_step(self) -> None:
        from torch.profiler import record_function
        self._step = record_function(STEP_LABEL)  # marks the main thread in the trace
        self._step.__enter__()

    def end_step(self) -> None:
        self._step.__exit__(None, None, None)
        self.steps += 1

    def stop(self) -> dict:
        torch.cuda.synchronize()
        self.prof.stop()
        found = host_activity_in_gaps(_trace_events(self.prof, keep=self.trace_path))
        found.update(steps=self.steps, trace=str(self.trace_path) if self.trace_path else None)
        return found


def _host_allocations() -> int:
    """Pinned host blocks torch allocated so far (each a ``cudaHostAlloc``, which takes the
    driver's lock and so can stall kernel launches); 0 on builds without the statistic."""
    stats = getattr(torch.cuda, 'host_memory_stats', None)
    return int(stats().get('num_host_alloc', 0)) if stats is not None else 0


class FedStepProbe:
    """A runner hook (lowest priority) that measures real training iterations: the kernel
    busy share (:class:`KernelWindow`) over iterations ``[warmup, warmup + steps)``, each
    window covering the dataloader's ``next()`` of its iterations; then, with
    ``profile_steps``, a :class:`HostWindow` over as many more; and the host time between
    iterations (the loop fetching the next batch)."""

    def __init__(self, warmup: int, steps: int, profile_steps: int, trace_path: Optional[Path]):
        self.warmup, self.steps, self.profile_steps = warmup, steps, profile_steps
        self.kernels, self.host = KernelWindow(), HostWindow(trace_path)
        self.waits, self.first_batch, self.result, self.host_profile = [], None, None, None
        self.slot_batches = 0  # measured batches that came in a worker's batch slot
        self._last_end = None

    def hook(self):
        from mmengine.hooks import Hook
        probe = self

        class _Probe(Hook):
            priority = 'LOWEST'

            def before_train_iter(self, runner, batch_idx, data_batch=None):
                probe.before(runner.iter, data_batch)

            def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
                probe.after(runner.iter)

        return _Probe()

    def _measured(self, iteration: int) -> bool:
        return self.warmup <= iteration < self.warmup + self.steps

    def before(self, iteration: int, data_batch) -> None:
        from gasp.datasets.collate import PACKED_KEY, SLOT_KEY, detach_batch
        if iteration == self.warmup - 1:  # replayed later: out of its batch slot (copied
            self.first_batch = detach_batch(data_batch)  # before the window opens)
        if self._measured(iteration):
            self.waits.append(time.perf_counter() - self._last_end)
            packed = data_batch.get(PACKED_KEY) if isinstance(data_batch, dict) else None
            self.slot_batches += int(packed is not None and SLOT_KEY in packed.metainfo)
        if iteration >= self.warmup + self.steps and self.profile_steps:
            self.host.begin_step()

    def after(self, iteration: int) -> None:
        end = self.warmup + self.steps
        if iteration >= end and self.profile_steps:
            self.host.end_step()
        if iteration == self.warmup - 1:
            self.kernels.start()
        elif iteration == end - 1:
            self.result = self.kernels.stop(self.steps, details=True)
            if self.profile_steps:
                self.host.start()
        elif self.profile_steps and iteration == end + self.profile_steps - 1:
            self.host_profile = self.host.stop()
        self._last_end = time.perf_counter()


def training_runner(cfg, dataset_cfg, batch_size: int, num_workers: int, iters: int, work_dir):
    """An mmengine Runner for ``iters`` iterations of the config's training as
    ``tools/train.py --amp`` sets it up (same optimizer wrapper, default and reliability
    hooks), fed by its real dataloader with ``num_workers`` workers; no validation,
    checkpoints or remote logging.

    The loader samples with mmengine's ``InfiniteSampler``: the benchmark's dataset is a few
    logs, and with the config's epoch sampler an epoch of 22 samples is 3 batches of 8, so
    only 3 workers have work and the prefetch queue drains at every epoch end. A real AV2
    epoch is ~100k samples (thousands of batches per worker), which the infinite sampler
    reproduces: every worker busy, no epoch boundary.
    """
    from gasp.engine.runner_setup import add_reliability_hooks, build_runner, enable_amp
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = str(work_dir)
    loader = cfg.train_dataloader
    loader.dataset = dataset_cfg
    loader.batch_size = batch_size
    loader.num_workers = num_workers
    loader.persistent_workers = num_workers > 0
    loader.pin_memory = True
    loader.sampler = dict(type='InfiniteSampler', shuffle=True)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=10**9)
    for key in ('val_dataloader', 'val_cfg', 'val_evaluator', 'test_dataloader', 'test_cfg',
                'test_evaluator', 'load_from'):
        cfg[key] = None
    cfg.resume = False
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=10**9, save_last=False)
    cfg.visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
    enable_amp(cfg)
    add_reliability_hooks(cfg)
    cfg.custom_hooks = [h for h in cfg.custom_hooks if h.get('type') != 'ValidateAtStartHook']
    return build_runner(cfg)


def fed_training(cfg,
                 dataset_cfg,
                 batch_size: int,
                 num_workers: int,
                 steps: int,
                 warmup: int,
                 profile_steps: int = 0,
                 trace_path: Optional[Path] = None) -> dict:
    """Train through the config's real mmengine Runner (:func:`training_runner`: its loop,
    optimizer wrapper, hooks and dataloader with ``num_workers`` workers) and measure
    ``steps`` iterations after ``warmup`` (:class:`FedStepProbe`): how long the loop spent
    between iterations (fetching data) and the share of the wall time GPU kernels ran; then
    the same number of iterations of the loop on one batch already in memory (the runner's
    ``run_iter``: same hooks, no dataloader).

    With ``profile_steps``, that many more fed iterations run under torch.profiler with CPU
    activity: the trace goes to ``trace_path`` and :func:`host_activity_in_gaps` says what
    the host ran while the GPU idled.
    """
    probe = FedStepProbe(max(warmup, 1), steps, profile_steps, trace_path)
    with tempfile.TemporaryDirectory() as work_dir:
        runner = training_runner(cfg, dataset_cfg, batch_size, num_workers,
                                 probe.warmup + steps + profile_steps, work_dir)
        runner.register_hook(probe.hook())
        runner.train()
        fed_busy, fed_wall_s, fed_idle = probe.result
        in_memory_busy, in_memory_wall_s, in_memory_idle = kernel_busy(
            lambda: runner.train_loop.run_iter(probe.first_batch), steps, details=True)
        optim_wrapper = type(runner.optim_wrapper).__name__
        runner = None
    return dict(
        batch_size=batch_size,
        num_workers=num_workers,
        steps=steps,
        optim_wrapper=optim_wrapper,
        fed_step_ms=1e3 * fed_wall_s / steps,
        fed_samples_per_s=steps * batch_size / fed_wall_s,
        data_wait_ms_per_step=1e3 * float(np.mean(probe.waits)),
        slot_batches=probe.slot_batches,
        gpu_busy_fraction=fed_busy,
        fed_idle=fed_idle,
        in_memory_step_ms=1e3 * in_memory_wall_s / steps,
        in_memory_gpu_busy_fraction=in_memory_busy,
        in_memory_idle=in_memory_idle,
        busy_vs_in_memory=fed_busy / in_memory_busy,
        host_in_gaps=probe.host_profile,
        host_memory_stats={
            k: v
            for k, v in getattr(torch.cuda, 'host_memory_stats', dict)().items()
            if isinstance(v, (int, float))
        })


def run_data(args):
    from mmengine.registry import init_default_scope

    from gasp.engine.runner_setup import set_gil_switch_interval
    init_default_scope('mmdet3d')
    cfg = load_config(args.config, args.cfg_options)
    if args.gil_switch_interval:
        cfg.env_cfg['gil_switch_interval_s'] = args.gil_switch_interval
    set_gil_switch_interval(cfg)  # as tools/train.py
    dataset_cfg = dataset_config(cfg, args)
    breakdown = worker_breakdown(dataset_cfg, args.num_samples)
    print(f'one worker: {breakdown["samples_per_s"]:.2f} samples/s', flush=True)
    cpus = len(os.sched_getaffinity(0))
    workers = args.workers or sorted({cfg.train_dataloader.num_workers, max(1, cpus - 1)})
    batch_sizes = args.data_batch_sizes or [cfg.train_dataloader.batch_size]
    runs = []
    for batch_size in batch_sizes:
        for num_workers in workers:
            runs.append(
                fed_training(
                    cfg,
                    dataset_cfg,
                    batch_size,
                    num_workers,
                    args.data_steps,
                    args.data_warmup,
                    profile_steps=args.profile_host_steps,
                    trace_path=(Path(args.out_dir) /
                                f'fed_trace_b{batch_size}_w{num_workers}.json')))
            print(
                f'data batch {batch_size} workers {num_workers}: '
                f'GPU busy {100 * runs[-1]["gpu_busy_fraction"]:.0f}%',
                flush=True)
    table = [('batch', 'workers', 'fed step ms', 'samples/s', 'data wait ms/step', 'GPU busy',
              'gaps > 1 ms, ms/step', 'in-memory step ms', 'in-memory GPU busy')]
    for run in runs:
        table.append(
            (run['batch_size'], run['num_workers'], f'{run["fed_step_ms"]:.1f}',
             f'{run["fed_samples_per_s"]:.1f}', f'{run["data_wait_ms_per_step"]:.1f}',
             f'{100 * run["gpu_busy_fraction"]:.0f}%',
             f'{run["fed_idle"]["gap_ms_over_1ms_per_call"]:.1f}',
             f'{run["in_memory_step_ms"]:.1f}', f'{100 * run["in_memory_gpu_busy_fraction"]:.0f}%'))
    blank = ('', ) * (len(table[0]) - 5)
    table.append(('one worker', '', f'{1e3 * breakdown["seconds_per_sample"]:.0f} ms/sample',
                  f'{breakdown["samples_per_s"]:.2f}',
                  f'reading {1e3 * breakdown["read_seconds_per_sample"]:.0f} ms') + blank)
    for name, seconds in breakdown['transform_seconds_per_sample'].items():
        table.append(('', name, f'{1e3 * seconds:.1f} ms', '', '') + blank)
    return dict(
        cpus=cpus,
        gil_switch_interval_s=sys.getswitchinterval(),
        worker_breakdown=breakdown,
        fed=runs), table


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
    result, table = dict(op=run_op, step=run_step, data=run_data)[args.mode](args)
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
