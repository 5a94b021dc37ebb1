"""4D occupancy forecasting on an AV2-format root: query rays, model-free baselines, metrics.

Generates the benchmark's query rays for a split (SPEC s. 5), runs the static-world and
constant-velocity baselines, prints L1 / AbsRel / NFCD / CD per baseline and writes
``<out-dir>/<split>_<horizon>/``: ``metrics_<baseline>.json`` (every row), ``summary.json``
and, with ``--write-json``, the challenge files ``ground_truth.json.gz``,
``queries.json.gz`` and ``submission_<baseline>.json.gz``.

On nuScenes (4D-Occ's nuScenes protocol: 2 Hz key frames, LIDAR_TOP frame), the frames come
from an info file of ``tools/create_data.py nuscenes`` and ``--split`` only names the output.

Example:
    python tools/eval_occ_forecasting_baselines.py --root-path data/av2 --split val --horizon 3
    python tools/eval_occ_forecasting_baselines.py --dataset nuscenes --root-path data/nuscenes \
        --info-file data/nuscenes/infos/nus_occ_infos_val.pkl --split val --horizon 1
    python tools/eval_occ_forecasting_baselines.py --root-path data/synthetic_tiny \
        --split val --horizon 1 --out-dir work_dirs/occ_forecasting
"""
import argparse
import time
from pathlib import Path

from gasp.datasets.nuscenes_lidar_log import nuscenes_logs, nuscenes_query_frames
from gasp.evaluation import (BASELINES, evaluate_frames, generate_query_frames, get_protocol,
                             predict_frames, write_challenge_rays, write_submission)
from gasp.evaluation.occ_forecasting_metric import VARIANTS
from gasp.fileio import dump_json_atomic


def parse_args():
    parser = argparse.ArgumentParser(description='4D occupancy forecasting baselines')
    parser.add_argument(
        '--root-path', required=True, help='folder that contains sensor/ (nuScenes: the root)')
    parser.add_argument('--dataset', default='av2', choices=['av2', 'nuscenes'])
    parser.add_argument('--info-file', help='nuScenes: info pkl of the split to evaluate')
    parser.add_argument('--split', default='val')
    parser.add_argument('--horizon', type=int, default=3, choices=[1, 3], help='seconds')
    parser.add_argument(
        '--num-future',
        type=int,
        default=None,
        help='override the number of future frames (short logs)')
    parser.add_argument(
        '--frame-stride',
        type=int,
        default=None,
        help='sweeps between t = 0 frames (default: twice the frame spacing)')
    parser.add_argument('--max-logs', type=int, default=None)
    parser.add_argument('--max-frames-per-log', type=int, default=None)
    parser.add_argument(
        '--baselines', nargs='+', default=sorted(BASELINES), choices=sorted(BASELINES))
    parser.add_argument(
        '--clamp-to-box',
        action='store_true',
        help="the paper's variant: clamp depths to the box before L1/AbsRel")
    parser.add_argument(
        '--write-json',
        action='store_true',
        help='also write the challenge JSON files (queries, gt, submissions)')
    parser.add_argument('--out-dir', default='work_dirs/occ_forecasting')
    return parser.parse_args()


def main():
    args = parse_args()
    overrides = dict(frame_stride_sweeps=args.frame_stride)
    if args.num_future is not None:
        overrides['num_future'] = args.num_future
    protocol = get_protocol(args.horizon, args.dataset, **overrides)
    out_dir = Path(args.out_dir) / f'{args.split}_{protocol.horizon}'
    split_dir = Path(args.root_path) / 'sensor' / args.split

    start = time.perf_counter()
    logs = None
    if args.dataset == 'nuscenes':
        if not args.info_file:
            raise SystemExit('--dataset nuscenes needs --info-file (tools/create_data.py nuscenes)')
        logs = nuscenes_logs(args.info_file, args.root_path)
        split_dir = args.info_file
        frames = nuscenes_query_frames(
            logs, protocol, max_frames_per_log=args.max_frames_per_log, max_logs=args.max_logs)
    else:
        frames = generate_query_frames(
            args.root_path,
            args.split,
            protocol,
            max_frames_per_log=args.max_frames_per_log,
            max_logs=args.max_logs)
    if not frames:
        raise SystemExit(f'no benchmark frame in {split_dir}: every log is shorter than the '
                         f'{protocol.span_sweeps + 1} sweeps the {protocol.horizon} protocol '
                         'needs; try --horizon 1 or a smaller --num-future')
    num_rays = sum(f.num_rays for f in frames)
    print(f'[occ_forecasting] {len(frames)} frames, {num_rays} query rays '
          f'({time.perf_counter() - start:.1f} s)')
    if args.write_json:
        write_challenge_rays(frames, out_dir / 'queries.json.gz', protocol.horizon, 'queries')
        write_challenge_rays(frames, out_dir / 'ground_truth.json.gz', protocol.horizon,
                             'ground_truth')

    summary = dict(
        dataset=args.dataset,
        root_path=str(args.root_path),
        split=args.split,
        protocol=vars(protocol),
        variant=VARIANTS[args.clamp_to_box],
        num_frames=len(frames),
        num_rays=num_rays,
        baselines={})
    for name in args.baselines:
        start = time.perf_counter()
        baseline = BASELINES[name](ego_box_lidar_xy=protocol.ego_box_lidar_xy)
        predictions = predict_frames(baseline, frames, split_dir, logs)
        predict_s = time.perf_counter() - start
        if args.write_json:
            write_submission(predictions, out_dir / f'submission_{name}.json.gz', protocol.horizon)
        print(f'[occ_forecasting] baseline {name}: {num_rays / predict_s:.0f} rays/s')
        start = time.perf_counter()
        metrics = evaluate_frames(
            frames,
            predictions,
            clamp_to_box=args.clamp_to_box,
            out_file=str(out_dir / f'metrics_{name}.json'))
        metric_s = time.perf_counter() - start
        summary['baselines'][name] = dict(
            metrics=metrics,
            predict_rays_per_s=num_rays / predict_s,
            metric_rays_per_s=num_rays / metric_s)
    print(f'\n{"baseline":>18} {"L1 (m)":>8} {"AbsRel (%)":>11} {"NFCD":>8} {"CD":>8}')
    for name, result in summary['baselines'].items():
        m = result['metrics']
        print(f'{name:>18} {m["L1"]:8.3f} {100 * m["AbsRel"]:11.2f} {m["NFCD"]:8.3f} '
              f'{m["CD"]:8.3f}')
    print(f'variant: {summary["variant"]}')
    print(f'written: {dump_json_atomic(summary, out_dir / "summary.json", indent=1)}')


if __name__ == '__main__':
    main()
