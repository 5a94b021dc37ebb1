"""Cache the missing lidar rays (firings without a return) of every sweep.

Example:
    python tools/extract_missing_points.py --data-dir data/av2 --output-dir data/av2/missing_rays

The beam pattern (elevation per laser, firing times, spin) is estimated per log from its own
returns; each sweep's missing rays are written as unit directions in its ego frame plus the
laser number. Resumable; every file is written atomically.
"""
import argparse

from gasp.targets import extract_missing_rays


def parse_args():
    parser = argparse.ArgumentParser(description='Extract missing lidar rays')
    parser.add_argument('--data-dir', required=True, help='folder that contains sensor/')
    parser.add_argument('--output-dir', help='cache folder (default <data-dir>/missing_rays)')
    parser.add_argument('--splits', nargs='+', default=['train', 'val', 'test'])
    parser.add_argument(
        '--fit-sweeps', type=int, default=30, help='sweeps per log used to fit the beam pattern')
    return parser.parse_args()


def main():
    args = parse_args()
    out = extract_missing_rays(
        args.data_dir, args.output_dir, splits=args.splits, fit_sweeps=args.fit_sweeps)
    print(f'[extract_missing_points] cache: {out}')


if __name__ == '__main__':
    main()
