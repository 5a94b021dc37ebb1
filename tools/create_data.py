"""Write GASP info files for an AV2-format root or a nuScenes root.

Example:
    python tools/create_data.py av2 --root-path data/av2 --out-dir data/av2/infos --workers 8
    python tools/create_data.py nuscenes --root-path data/nuscenes --version v1.0-trainval \
        --out-dir data/nuscenes/infos --splits train val
"""
import argparse
from dataclasses import replace

from gasp.datasets import SampleTiming, create_av2_infos
from gasp.datasets.nuscenes_infos import NUSCENES_TIMING, create_nuscenes_infos


def parse_args():
    parser = argparse.ArgumentParser(description='Create GASP info files')
    parser.add_argument('dataset', choices=['av2', 'nuscenes'], help='dataset format')
    parser.add_argument(
        '--root-path',
        required=True,
        help='folder that contains sensor/ (nuScenes: the root with <version>/, samples/)')
    parser.add_argument('--out-dir', required=True, help='where the info pkl files go')
    parser.add_argument('--splits', nargs='+', help='default: train val test (nuScenes: train val)')
    parser.add_argument('--workers', type=int, default=1, help='processes over logs (AV2)')
    parser.add_argument(
        '--version', default='v1.0-trainval', help='nuScenes tables folder (v1.0-mini, ...)')
    parser.add_argument('--num-past-sweeps', type=int, default=5)
    parser.add_argument('--past-interval', type=float, default=0.2, help='seconds')
    parser.add_argument('--future-horizon', type=float, default=3.0, help='seconds')
    parser.add_argument('--future-interval', type=float, default=0.2, help='seconds')
    parser.add_argument(
        '--sample-stride', type=int, default=1, help='use every n-th valid reference sweep')
    parser.add_argument('--prefix', help='info file name prefix (default: av2_occ / nus_occ)')
    return parser.parse_args()


def main():
    args = parse_args()
    fields = dict(
        num_past_sweeps=args.num_past_sweeps,
        past_interval_s=args.past_interval,
        future_horizon_s=args.future_horizon,
        future_interval_s=args.future_interval,
        sample_stride=args.sample_stride)
    if args.dataset == 'nuscenes':
        # Sweep and camera matching tolerances of the 20 Hz lidar and 12 Hz cameras.
        create_nuscenes_infos(
            args.root_path,
            args.out_dir,
            version=args.version,
            splits=args.splits or ['train', 'val'],
            timing=replace(NUSCENES_TIMING, **fields),
            prefix=args.prefix or 'nus_occ')
        return
    create_av2_infos(
        args.root_path,
        args.out_dir,
        splits=args.splits or ['train', 'val', 'test'],
        timing=SampleTiming(**fields),
        workers=args.workers,
        prefix=args.prefix or 'av2_occ')


if __name__ == '__main__':
    main()
