"""Test (evaluate) a checkpoint with the mmengine Runner, in mmdet3d's conventions.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--cfg-options key=value ...]
        [--launcher pytorch]
    tools/dist_test.sh CONFIG CHECKPOINT GPUS      # GPUS processes; CPU processes over gloo
                                                   # when no GPU is visible

E.g. 4D occupancy forecasting of a pre-trained GASP model:
    python tools/test.py configs/gasp_av2_occ_forecasting.py work_dirs/gasp_av2/iter_100000.pth

Metrics with a relative ``out_file`` in ``test_evaluator`` write it under the work dir.
"""
import argparse
import os
import os.path as osp

from mmengine.config import DictAction

from gasp.engine.runner_setup import build_runner, config_from_args, leave_process_group


def parse_args():
    parser = argparse.ArgumentParser(description='Test (evaluate) a GASP checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs, metrics and pictures')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. test_dataloader.dataset.max_logs=2')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def metrics_write_under(cfg, work_dir: str) -> None:
    """Make relative ``out_file`` paths of the test metrics relative to the work dir."""
    evaluator = cfg.get('test_evaluator')
    metrics = evaluator if isinstance(evaluator, (list, tuple)) else [evaluator]
    for metric in metrics:
        if isinstance(metric,
                      dict) and metric.get('out_file') and not osp.isabs(metric['out_file']):
            metric['out_file'] = osp.join(work_dir, metric['out_file'])


def main():
    args = parse_args()
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'tools/test.py: checkpoint {args.checkpoint} does not exist; give the '
                         '.pth file written by tools/train.py (e.g. work_dirs/<config>/'
                         'iter_<N>.pth)')
    cfg = config_from_args(args)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    metrics_write_under(cfg, cfg.work_dir)
    build_runner(cfg).test()
    leave_process_group()


if __name__ == '__main__':
    main()
