"""Write GASP info files for an AV2-format root.

Example:
    python tools/create_data.py av2 --root-path data/av2 --out-dir data/av2/infos --workers 8
"""
import argparse

from gasp.datasets import SampleTiming, create_av2_infos


def parse_args():
    parser = argparse.ArgumentParser(description='Create GASP info files')
    parser.add_argument('dataset', choices=['av2'], help='dataset format')
    parser.add_argument('--root-path', required=True, help='folder that contains sensor/')
    parser.add_argument('--out-dir', required=True, help='where the info pkl files go')
    parser.add_argument('--splits', nargs='+', default=['train', 'val', 'test'])
    parser.add_argument('--workers', type=int, default=1, help='processes over logs')
    parser.add_argument('--num-past-sweeps', type=int, default=5)
    parser.add_argument('--past-interval', type=float, default=0.2, help='seconds')
    parser.add_argument('--future-horizon', type=float, default=3.0, help='seconds')
    parser.add_argument('--future-interval', type=float, default=0.2, help='seconds')
    parser.add_argument(
        '--sample-stride', type=int, default=1, help='use every n-th valid reference sweep')
    parser.add_argument('--prefix', default='av2_occ', help='info file name prefix')
    return parser.parse_args()


def main():
    args = parse_args()
    timing = SampleTiming(
        num_past_sweeps=args.num_past_sweeps,
        past_interval_s=args.past_interval,
        future_horizon_s=args.future_horizon,
        future_interval_s=args.future_interval,
        sample_stride=args.sample_stride)
    create_av2_infos(
        args.root_path,
        args.out_dir,
        splits=args.splits,
        timing=timing,
        workers=args.workers,
        prefix=args.prefix)


if __name__ == '__main__':
    main()
