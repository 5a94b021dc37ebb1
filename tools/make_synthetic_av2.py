"""Write a synthetic Argoverse 2 sensor dataset (procedural driving world, exact AV2 format).

Example::

    python tools/make_synthetic_av2.py --out-dir data/av2_synthetic --preset tiny --seed 0 \
        --workers 2 [--device cuda]
"""
import argparse
import os
import sys
import time
from pathlib import Path

try:
    from gasp.synthetic import PRESETS, generate_world
except ImportError:  # not installed yet: use the in-repo package
    sys.path.insert(
        0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'projects', 'GASP'))
    from gasp.synthetic import PRESETS, generate_world


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out-dir', required=True, help='dataset root (gets sensor/<split>/...)')
    parser.add_argument('--preset', default='tiny', choices=sorted(PRESETS))
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--workers', type=int, default=1, help='logs generated in parallel')
    parser.add_argument('--device', default='cpu', help="ray-casting device, e.g. 'cuda'")
    parser.add_argument('--overwrite', action='store_true', help='regenerate existing logs')
    parser.add_argument('--no-progress', action='store_true')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    logs = generate_world(
        args.out_dir,
        preset=args.preset,
        seed=args.seed,
        workers=args.workers,
        device=args.device,
        show_progress=not args.no_progress,
        overwrite=args.overwrite)
    size = sum(f.stat().st_size for log in logs for f in Path(log).rglob('*') if f.is_file())
    print(f'wrote {len(logs)} logs to {Path(args.out_dir) / "sensor"} in '
          f'{time.perf_counter() - start:.1f} s ({size / 2**20:.1f} MiB)')


if __name__ == '__main__':
    main()
