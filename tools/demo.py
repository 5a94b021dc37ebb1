"""The one-command demo: synthetic AV2 world -> info files -> missing-ray and DINOv2 feature
targets -> GASP pre-training on CPU -> evaluation before/after -> PNG pictures of the fields.

    python tools/demo.py [--data-root data/av2_synthetic] [--work-dir work_dirs/demo]
        [--max-iters 150] [--dino-weights dinov2_vits14_pretrain.pth]

Every step reuses what an earlier run built (the world, the info files).
"""
import argparse
import os.path as osp
import time
from pathlib import Path

from mmengine.config import Config
from mmengine.runner import Runner

REPO = Path(__file__).resolve().parents[1]


def parse_args():
    parser = argparse.ArgumentParser(description='GASP demo on the synthetic AV2 world')
    parser.add_argument('--config', default=str(REPO / 'configs/gasp_synthetic_demo.py'))
    parser.add_argument('--data-root', default='data/av2_synthetic')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--preset', default='demo', help='synthetic world preset')
    parser.add_argument('--max-iters', type=int, default=None, help='override the config')
    parser.add_argument('--workers', type=int, default=2, help='processes for the world')
    parser.add_argument(
        '--dino-weights',
        help='local official DINOv2 ViT-S/14 checkpoint; '
        'without it the feature targets come from a random ViT')
    return parser.parse_args()


def step(title):
    print(f'\n==== {title} ====', flush=True)
    return time.time()


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)  # imports gasp through custom_imports
    from gasp.datasets import SampleTiming, create_av2_infos
    from gasp.engine.runner_setup import add_reliability_hooks
    from gasp.fileio import dump_json_atomic
    from gasp.synthetic import generate_world
    from gasp.targets import extract_dino_features, extract_missing_rays
    root = Path(args.data_root)
    timings = {}

    t = step(f'1/5 synthetic AV2 world ({args.preset} preset) in {root}')
    generate_world(root, preset=args.preset, seed=0, workers=args.workers)
    timings['world_s'] = time.time() - t

    t = step('2/5 info files')
    info_dir = root / 'infos'
    horizon = float(cfg.model.decoder.time_range[1])
    if not all((info_dir / f'av2_occ_infos_{s}.pkl').exists() for s in ('train', 'val')):
        create_av2_infos(
            str(root),
            str(info_dir),
            splits=['train', 'val'],
            timing=SampleTiming(future_horizon_s=horizon))
    else:
        print(f'reusing {info_dir}')
    timings['infos_s'] = time.time() - t

    t = step('3/5 targets: missing lidar rays and DINOv2 features')
    extract_missing_rays(str(root), str(root / 'missing_rays'), splits=['train', 'val'])
    if args.dino_weights is None:
        print('NOTE: no DINOv2 weights given (--dino-weights): the feature targets come from a '
              'RANDOMLY INITIALISED ViT-S/14. The feature head learns to reproduce them, which '
              'exercises the pipeline but carries no image semantics.')
    extract_dino_features(
        str(root),
        str(root / 'features_dinov2_vits14'),
        weights=args.dino_weights,
        backbone='dinov2_vits14',
        info_files=[str(info_dir / f'av2_occ_infos_{s}.pkl') for s in ('train', 'val')],
        image_short_side=112,
        device='cpu',
        batch_size=16)
    timings['targets_s'] = time.time() - t

    t = step('4/5 pre-training GASP on CPU (validation before and after)')
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = str(root) + '/'
        for transform in cfg[loader].dataset.pipeline:
            if transform.type == 'LoadMissingRays':
                transform.cache_dir = str(root / 'missing_rays')
            elif transform.type == 'LoadFeatureTargets':
                transform.cache_dir = str(root / 'features_dinov2_vits14')
    cfg.work_dir = args.work_dir
    if args.max_iters:
        cfg.train_cfg.max_iters = args.max_iters
        cfg.default_hooks.checkpoint.interval = args.max_iters
        # Warm-up stays within the first quarter of a short run; the cosine decay follows it.
        warmup, decay = cfg.param_scheduler[0], cfg.param_scheduler[-1]
        warmup.end = min(warmup.end, max(1, args.max_iters // 4))
        decay.begin, decay.end = warmup.end, args.max_iters
    # Validation runs before training (ValidateAtStartHook) and at its last iteration.
    cfg.train_cfg.val_interval = cfg.train_cfg.max_iters
    add_reliability_hooks(cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()
    timings['train_s'] = time.time() - t
    hub = runner.message_hub
    end = {
        k[len('val/'):]: hub.get_scalar(k).current()
        for k in hub.log_scalars if k.startswith('val/field/')
    }

    step('5/5 summary')
    start = {
        k[len('start/'):]: v
        for k, v in runner.message_hub.runtime_info.items() if k.startswith('start/')
    }
    print(f'{"metric":<28}{"initialised":>14}{"trained":>12}')
    for name in sorted(start):
        print(f'{name:<28}{start[name]:>14.4f}{end.get(name, float("nan")):>12.4f}')
    pictures = sorted(str(p) for p in Path(args.work_dir).glob('**/vis/*.png'))
    summary = dict(
        metrics_initialised=start,
        metrics_trained=end,
        timings_s=timings,
        pictures=pictures,
        iterations=runner.iter)
    dump_json_atomic(summary, osp.join(args.work_dir, 'demo_summary.json'), indent=2)
    print('pictures:', *pictures, sep='\n  ')
    print(f'summary: {osp.join(args.work_dir, "demo_summary.json")}')


if __name__ == '__main__':
    main()
