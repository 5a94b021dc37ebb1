"""Cache DINOv2 (or DINOv3) feature targets on the future lidar points of every sample.

Example:
    python tools/extract_dino_features.py --data-dir data/av2 --output-dir data/av2/dino_vits14 \
        --weights checkpoints/dinov2_vits14_pretrain.pth \
        --info-files data/av2/infos/av2_occ_infos_train.pkl data/av2/infos/av2_occ_infos_val.pkl

The run is resumable (done sweeps are skipped); ``manifest.json`` in the output folder records
the backbone, weights hash, resolution and reduction, and the loader refuses a cache whose
settings differ from the config.
"""
import argparse
import json

from gasp.targets import DINOV2_ARCHS, DINOV3_ARCHS, extract_dino_features


def parse_args():
    parser = argparse.ArgumentParser(description='Extract DINO feature targets')
    parser.add_argument('--data-dir', required=True, help='folder that contains sensor/')
    parser.add_argument('--output-dir', required=True, help='cache folder')
    parser.add_argument('--weights', help='local official checkpoint (.pth)')
    parser.add_argument(
        '--backbone', default='dinov2_vits14', choices=sorted(DINOV2_ARCHS) + sorted(DINOV3_ARCHS))
    parser.add_argument(
        '--info-files',
        nargs='*',
        default=[],
        help='info pkl files; default: every sweep under --data-dir')
    parser.add_argument(
        '--splits',
        nargs='+',
        default=['train', 'val', 'test'],
        help='splits used without --info-files')
    parser.add_argument(
        '--image-short-side', type=int, default=448, help='short image side fed to the ViT (px)')
    parser.add_argument('--reduction', help='.npz feature reduction (e.g. PCA to 64-d)')
    parser.add_argument('--denoiser', help='local feature-denoiser checkpoint')
    parser.add_argument('--device', help='cuda / cpu (default: cuda when available)')
    parser.add_argument('--batch-size', type=int, default=8, help='images per forward')
    parser.add_argument('--sweeps-per-step', type=int, default=4)
    parser.add_argument('--max-sweeps', type=int, help='stop after this many new sweeps')
    parser.add_argument(
        '--threads', type=int, default=4, help='CPU threads decoding images and projecting points')
    parser.add_argument(
        '--allow-random-weights',
        action='store_true',
        help='run without --weights (timing and tests only)')
    return parser.parse_args()


def main():
    args = parse_args()
    if not args.weights and not args.allow_random_weights:
        raise SystemExit('--weights is required (a local official checkpoint; nothing is '
                         'downloaded). Use --allow-random-weights only for timing runs.')
    stats = extract_dino_features(
        args.data_dir,
        args.output_dir,
        args.weights,
        backbone=args.backbone,
        info_files=args.info_files,
        splits=args.splits,
        image_short_side=args.image_short_side,
        reduction=args.reduction,
        denoiser=args.denoiser,
        device=args.device,
        batch_size=args.batch_size,
        sweeps_per_step=args.sweeps_per_step,
        max_sweeps=args.max_sweeps,
        num_threads=args.threads)
    print(json.dumps(stats, indent=1))


if __name__ == '__main__':
    main()
