"""Train a GASP/UnO model (or a downstream fine-tuning config) with the mmengine Runner.

    python tools/train.py configs/gasp_av2.py [--work-dir DIR] [--amp] [--resume [CKPT]]
        [--cfg-options key=value ...] [--launcher pytorch]
"""
import argparse
import os

from mmengine.config import DictAction

from gasp.engine.runner_setup import (add_reliability_hooks, build_runner, config_from_args,
                                      enable_amp, leave_process_group)


def parse_args():
    parser = argparse.ArgumentParser(description='Train a GASP model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp', action='store_true', default=False, help='mixed precision (bf16 autocast on GPU)')
    parser.add_argument('--auto-scale-lr', action='store_true', help='scale lr by batch size')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from CKPT, or from the latest checkpoint of the work dir '
        'when no path is given')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. train_cfg.max_iters=100')
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


def main():
    args = parse_args()
    cfg = config_from_args(args)
    if args.amp:
        enable_amp(cfg)
    if args.auto_scale_lr:
        cfg.setdefault('auto_scale_lr', dict(enable=True, base_batch_size=16))
        cfg.auto_scale_lr.enable = True
    add_reliability_hooks(cfg)
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume

    build_runner(cfg).train()
    leave_process_group()


if __name__ == '__main__':
    main()
