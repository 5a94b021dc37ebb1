"""Fit a PCA reduction of DINOv3 (or DINOv2) features at lidar points across the data.

Example:
    python tools/generate_dinov3_reduction.py --data-dir data/av2 --output-dir data/av2/dinov3 \
        --weights checkpoints/dinov3_vits16_pretrain_lvd1689m-08c60483.pth --dim 64

Writes ``<output-dir>/<backbone>_pca<dim>.npz`` (``matrix`` (C, D), ``mean`` (C,)). Training
can then compute DINOv3 targets on the fly with ``OnlineFeatureTargets(reduction=...)``;
without a matrix it keeps a fixed subset of ``feature_dim`` channels.
"""
import argparse
from pathlib import Path

from gasp.targets import DINOV2_ARCHS, DINOV3_ARCHS, fit_feature_reduction


def parse_args():
    parser = argparse.ArgumentParser(description='Fit a DINOv3 feature reduction (PCA)')
    parser.add_argument('--data-dir', required=True, help='folder that contains sensor/')
    parser.add_argument('--output-dir', required=True)
    parser.add_argument('--weights', help='local official checkpoint (.pth)')
    parser.add_argument(
        '--backbone', default='dinov3_vits16', choices=sorted(DINOV3_ARCHS) + sorted(DINOV2_ARCHS))
    parser.add_argument('--dim', type=int, default=64, help='reduced dimension')
    parser.add_argument('--info-files', nargs='*', default=[])
    parser.add_argument('--splits', nargs='+', default=['train'])
    parser.add_argument('--num-sweeps', type=int, default=64)
    parser.add_argument('--points-per-sweep', type=int, default=2048)
    parser.add_argument('--image-short-side', type=int, default=448)
    parser.add_argument('--device')
    parser.add_argument('--allow-random-weights', action='store_true')
    return parser.parse_args()


def main():
    args = parse_args()
    if not args.weights and not args.allow_random_weights:
        raise SystemExit('--weights is required (a local official checkpoint).')
    out = Path(args.output_dir) / f'{args.backbone}_pca{args.dim}.npz'
    reduction = fit_feature_reduction(
        args.data_dir,
        out,
        args.weights,
        backbone=args.backbone,
        dim=args.dim,
        info_files=args.info_files,
        splits=args.splits,
        num_sweeps=args.num_sweeps,
        points_per_sweep=args.points_per_sweep,
        image_short_side=args.image_short_side,
        device=args.device)
    var = reduction.explained_variance
    print(f'[generate_dinov3_reduction] wrote {out} ({reduction.matrix.shape[0]} -> '
          f'{reduction.out_dim}; largest variances {var[:3].round(3).tolist()})')


if __name__ == '__main__':
    main()
