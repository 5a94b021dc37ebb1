"""Write a synthetic nuScenes-format dataset (the procedural world, v1.0-mini tables and files).

Example::

    python tools/make_synthetic_nuscenes.py --out-dir data/nuscenes_synthetic --preset tiny
    python tools/make_synthetic_nuscenes.py --out-dir data/nuscenes_synthetic_8s --preset demo \
        --duration 8 --train-scenes 2 --val-scenes 2
"""
import argparse
import os
import sys
import time
from pathlib import Path

try:
    from gasp.synthetic import PRESETS
except ImportError:  # not installed yet: use the in-repo package
    sys.path.insert(
        0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'projects', 'GASP'))
    from gasp.synthetic import PRESETS
from gasp.synthetic.nuscenes_writer import VERSION, generate_nuscenes_world
from gasp.synthetic.presets import get_preset, with_overrides


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out-dir', required=True, help='nuScenes data root to write')
    parser.add_argument('--preset', default='tiny', choices=sorted(PRESETS))
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--duration', type=float, help='seconds per scene (default: the preset)')
    parser.add_argument('--train-scenes', type=int, help='default: the preset (at most 8)')
    parser.add_argument('--val-scenes', type=int, help='default: the preset (at most 2)')
    parser.add_argument('--device', default='cpu', help="ray-casting device, e.g. 'cuda'")
    parser.add_argument('--no-progress', action='store_true')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    preset = get_preset(args.preset)
    logs = dict(preset.logs_per_split)
    if args.train_scenes is not None:
        logs['train'] = args.train_scenes
    if args.val_scenes is not None:
        logs['val'] = args.val_scenes
    overrides = dict(logs_per_split=logs)
    if args.duration is not None:
        overrides['duration_s'] = args.duration
    preset = with_overrides(preset, **overrides)
    start = time.perf_counter()
    names = generate_nuscenes_world(
        args.out_dir,
        preset=preset,
        seed=args.seed,
        device=args.device,
        show_progress=not args.no_progress)
    size = sum(f.stat().st_size for f in Path(args.out_dir).rglob('*') if f.is_file())
    print(f'wrote {len(names)} scenes ({", ".join(names)}) to {args.out_dir} ({VERSION}) in '
          f'{time.perf_counter() - start:.1f} s ({size / 2**20:.1f} MiB)')


if __name__ == '__main__':
    main()
