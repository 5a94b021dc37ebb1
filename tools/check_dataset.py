"""Check an AV2-format root, its info files and target caches before training.

    python tools/check_dataset.py --root-path data/av2 \
        [--info data/av2/infos/av2_occ_infos_train.pkl ...] [--feature-cache DIR] \
        [--missing-rays-cache DIR] [--future-horizon 3.0] [--out-dir DIR] [--workers N]

Prints a table of every problem (log, file, timestamp, what is wrong), writes the full list to
``<out-dir>/dataset_check.json`` and a PNG of the counts per kind. Exit status: 0 when training
may start (warnings only), 1 when an error was found.
"""
import argparse
import sys
from pathlib import Path

from gasp.datasets.av2_infos import SampleTiming
from gasp.datasets.dataset_check import Limits, check_dataset, may_train, problems_to_json
from gasp.fileio import atomic_open, dump_json_atomic


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Check AV2 data, info files and caches')
    parser.add_argument('--root-path', required=True, help='folder that contains sensor/')
    parser.add_argument('--info', nargs='*', default=[], help='info pkl files to check')
    parser.add_argument('--splits', nargs='+', default=['train', 'val', 'test'])
    parser.add_argument('--feature-cache', help='DINO feature cache (extract_dino_features.py)')
    parser.add_argument(
        '--missing-rays-cache', help='missing-ray cache (extract_missing_points.py)')
    parser.add_argument('--num-past-sweeps', type=int, default=SampleTiming.num_past_sweeps)
    parser.add_argument('--past-interval', type=float, default=SampleTiming.past_interval_s)
    parser.add_argument('--future-horizon', type=float, default=SampleTiming.future_horizon_s)
    parser.add_argument('--max-point-xy', type=float, default=Limits.max_point_xy_m)
    parser.add_argument('--max-speed', type=float, default=Limits.max_speed_mps)
    parser.add_argument('--out-dir', default='work_dirs/check_dataset')
    parser.add_argument('--workers', type=int, default=1, help='processes over logs')
    parser.add_argument('--max-rows', type=int, default=50, help='table rows to print')
    return parser.parse_args(argv)


def format_table(problems, max_rows: int) -> str:
    header = ('severity', 'kind', 'log', 'timestamp_ns', 'file', 'problem')
    rows = [(p.severity, p.kind, p.log_id or '-', str(p.timestamp_ns or '-'), p.path
             or '-', p.message) for p in problems[:max_rows]]
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(5)]
    lines = ['  '.join(h.ljust(w) for h, w in zip(header, widths)) + '  ' + header[5]]
    lines += ['  '.join(c.ljust(w) for c, w in zip(r, widths)) + '  ' + r[5] for r in rows]
    if len(problems) > max_rows:
        lines.append(f'... {len(problems) - max_rows} more (see the JSON report)')
    return '\n'.join(lines)


def save_counts_png(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    counts = report['counts'] or {'no problems': 0}
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(counts) + 1.5))
    ax.barh(
        list(counts), list(counts.values()), color='tab:red' if report['errors'] else 'tab:green')
    ax.set_xlabel('problems')
    ax.set_title(f"dataset check: {report['errors']} errors, {report['warnings']} warnings, "
                 f"{'training may start' if report['may_train'] else 'fix before training'}")
    fig.tight_layout()
    with atomic_open(path) as f:
        fig.savefig(f, format='png', dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    timing = SampleTiming(
        num_past_sweeps=args.num_past_sweeps,
        past_interval_s=args.past_interval,
        future_horizon_s=args.future_horizon)
    limits = Limits(max_point_xy_m=args.max_point_xy, max_speed_mps=args.max_speed)
    problems = check_dataset(
        args.root_path,
        info_files=args.info,
        splits=args.splits,
        timing=timing,
        limits=limits,
        feature_cache=args.feature_cache,
        missing_rays_cache=args.missing_rays_cache,
        workers=args.workers)
    report = problems_to_json(problems)
    out = Path(args.out_dir)
    dump_json_atomic(report, out / 'dataset_check.json', indent=1)
    save_counts_png(report, out / 'dataset_check.png')
    if problems:
        print(format_table(problems, args.max_rows))
    verdict = 'training may start' if may_train(problems) else 'fix the errors before training'
    print(f"[check_dataset] {report['errors']} errors, {report['warnings']} warnings: {verdict}. "
          f"Report: {out / 'dataset_check.json'}")
    return 0 if may_train(problems) else 1


if __name__ == '__main__':
    sys.exit(main())
