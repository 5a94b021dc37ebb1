"""Data-loading throughput of one CPU worker: samples/s, time per transform, file reading,
peak memory.

    python tools/benchmark_data.py configs/gasp_av2.py --data-root data/av2_synthetic_full/ \
        --ann-file infos/av2_occ_infos_train.pkl --num-samples 40

Runs the config's training pipeline in this process (one dataloader worker does exactly
this), after one warm-up sample. Prints a table and writes JSON next to --out.
"""
import argparse
import resource
import time
from collections import defaultdict

import numpy as np
from mmengine.config import Config, DictAction

from gasp.fileio import dump_json_atomic


def parse_args():
    parser = argparse.ArgumentParser(description='Benchmark one data-loading worker')
    parser.add_argument('config')
    parser.add_argument('--data-root', help='override the dataset data_root')
    parser.add_argument('--ann-file', help='override the dataset ann_file')
    parser.add_argument('--num-samples', type=int, default=40)
    parser.add_argument(
        '--drop',
        nargs='*',
        default=[],
        help='transform types to leave out (e.g. caches you did not build)')
    parser.add_argument('--out', default='work_dirs/benchmark_data.json')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='override config settings')
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    from mmdet3d.registry import DATASETS, TRANSFORMS

    from gasp.datasets import av2_io
    from gasp.datasets.transforms import load_past_sweeps

    dataset_cfg = cfg.train_dataloader.dataset
    if args.data_root:
        dataset_cfg.data_root = args.data_root
    if args.ann_file:
        dataset_cfg.ann_file = args.ann_file
    pipeline_cfg = [t for t in dataset_cfg.pipeline if t['type'] not in args.drop]
    dataset_cfg.pipeline = []
    dataset = DATASETS.build(dataset_cfg)
    transforms = [(t['type'], TRANSFORMS.build(t)) for t in pipeline_cfg]

    # Time spent reading sweep files, inside the loading transforms.
    reading = dict(seconds=0.0, files=0, points=0)
    original = av2_io.read_sweep

    def timed_read_sweep(path, log_id):
        start = time.perf_counter()
        out = original(path, log_id)
        reading['seconds'] += time.perf_counter() - start
        reading['files'] += 1
        reading['points'] += len(out['xyz_ego'])
        return out

    av2_io.read_sweep = timed_read_sweep  # behind read_sample_sweep (future rays, features)
    load_past_sweeps.read_sweep = timed_read_sweep

    per_transform = defaultdict(float)
    totals = []
    count = min(args.num_samples, len(dataset))
    order = np.random.default_rng(0).permutation(len(dataset))[:count + 1]
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

    total = float(np.sum(totals))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = dict(
        config=args.config,
        samples=count,
        samples_per_s=count / total,
        seconds_per_sample=total / count,
        read_seconds_per_sample=reading['seconds'] / count,
        sweep_files_per_sample=reading['files'] / count,
        points_per_sweep=reading['points'] / max(reading['files'], 1),
        transform_seconds_per_sample={
            k: v / count
            for k, v in per_transform.items()
        },
        peak_memory_mib=peak_mib)
    print(f'\nsamples/s per worker: {report["samples_per_s"]:.2f} '
          f'({report["seconds_per_sample"] * 1e3:.0f} ms per sample, {count} samples)')
    print(f'  reading sweep files: {report["read_seconds_per_sample"] * 1e3:.0f} ms per sample '
          f'({report["sweep_files_per_sample"]:.0f} files, '
          f'{report["points_per_sweep"]:.0f} points each)')
    for name, seconds in report['transform_seconds_per_sample'].items():
        print(f'  {name:<22}{seconds * 1e3:>8.1f} ms')
    print(f'  peak memory of the worker: {peak_mib:.0f} MiB')
    dump_json_atomic(report, args.out, indent=2)
    print(f'written {args.out}')


if __name__ == '__main__':
    main()
