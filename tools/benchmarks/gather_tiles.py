"""Launch-configuration sweep of the Triton deformable BEV gather beside mmcv's
MultiScaleDeformableAttention kernel, on one GPU, in one run.

    python tools/benchmarks/gather_tiles.py [--block-q 32 64 128 --warps 2 4 8]

For each (BLOCK_Q, num_warps) tile, forward and forward + backward times (median of
``--reps``, CUDA events) at the shapes of ``tools/benchmark.py op`` (B = 8, 65 536 queries,
4 heads x 8 points, 128 channels, 175 x 175 channels-last map, fp32), the speed-up over mmcv
measured before and after the sweep, and the largest difference from the shipped
configuration's output and gradients. The table picked ``_launch_config`` in
``gasp_ops/deformable_bev_gather_triton.py``; the JSON goes to ``--out``.
"""
import argparse
import importlib.util
from pathlib import Path
from unittest import mock

import torch

import gasp_ops.deformable_bev_gather_triton as gather_triton
from gasp.fileio import dump_json_atomic

_TOOL = Path(__file__).resolve().parents[1] / 'benchmark.py'
_spec = importlib.util.spec_from_file_location('gasp_benchmark_tool', _TOOL)
benchmark = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(benchmark)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--block-q', type=int, nargs='+', default=[32, 64, 128])
    parser.add_argument('--warps', type=int, nargs='+', default=[2, 4, 8])
    parser.add_argument('--reps', type=int, default=30)
    parser.add_argument('--out', default='work_dirs/benchmark/gather_tiles.json')
    return parser.parse_args()


def main():
    args = parse_args()
    if not torch.cuda.is_available():
        raise SystemExit('gather_tiles.py times GPU kernels: run it on a machine with CUDA')
    from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttnFunction
    shapes_args = argparse.Namespace(
        batch_size=8, queries=2**16, heads=4, points=8, channels=128, bev_size=175)
    b, nh, c, s = (shapes_args.batch_size, shapes_args.heads, shapes_args.channels,
                   shapes_args.bev_size)
    generator = torch.Generator(device='cuda').manual_seed(0)
    bev, loc, weights = benchmark.gather_inputs(shapes_args, torch.float32, generator)
    grad_out = torch.randn(b, shapes_args.queries, c, device='cuda', generator=generator)
    inputs = [
        t.detach().clone(memory_format=torch.preserve_format).requires_grad_()
        for t in (bev, loc, weights)
    ]
    spatial = torch.tensor([[s, s]], device='cuda', dtype=torch.long)
    level_start = torch.zeros(1, device='cuda', dtype=torch.long)

    def mmcv_gather(bev, loc, w):
        value = bev.permute(0, 2, 3, 1).reshape(b, s * s, nh, c // nh)  # a view when NHWC
        return MultiScaleDeformableAttnFunction.apply(value, spatial, level_start,
                                                      ((loc + 1) * 0.5).unsqueeze(3),
                                                      w.unsqueeze(3), b)

    def times(fn):
        return (benchmark.cuda_time_ms(lambda: fn(*inputs), args.reps),
                benchmark.cuda_time_ms(lambda: torch.autograd.grad(fn(*inputs), inputs, grad_out),
                                       args.reps))

    def outputs(fn):
        out = fn(*inputs)
        return [out.detach()] + list(torch.autograd.grad(out, inputs, grad_out))

    mmcv_before = times(mmcv_gather)
    shipped = outputs(gather_triton.deformable_bev_gather_triton)
    rows = []
    for block_q in args.block_q:
        for warps in args.warps:
            with mock.patch.object(gather_triton, '_launch_config',
                                   lambda group, q=block_q, w=warps: (q, 32, w)):
                fwd, fwd_bwd = times(gather_triton.deformable_bev_gather_triton)
                got = outputs(gather_triton.deformable_bev_gather_triton)
            rows.append(
                dict(
                    block_q=block_q,
                    warps=warps,
                    fwd_ms=fwd,
                    fwd_bwd_ms=fwd_bwd,
                    max_abs_diff_vs_shipped=max(
                        float((a - r).abs().max()) for a, r in zip(got, shipped))))
            print(f'BLOCK_Q {block_q:4d} warps {warps}: fwd {fwd:.3f} ms '
                  f'({mmcv_before[0] / fwd:.2f}x mmcv), fwd+bwd {fwd_bwd:.3f} ms '
                  f'({mmcv_before[1] / fwd_bwd:.2f}x mmcv)', flush=True)
    mmcv_after = times(mmcv_gather)
    print(f'mmcv MSDA before / after the sweep: fwd {mmcv_before[0]:.3f} / {mmcv_after[0]:.3f} '
          f'ms, fwd+bwd {mmcv_before[1]:.3f} / {mmcv_after[1]:.3f} ms')
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    dump_json_atomic(
        dict(
            device=torch.cuda.get_device_name(),
            mmcv_ms=dict(before=mmcv_before, after=mmcv_after),
            tiles=rows),
        Path(args.out),
        indent=1)
    print(f'written: {args.out}')


if __name__ == '__main__':
    main()
