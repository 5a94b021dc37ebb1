"""Pre-training gains on the synthetic AV2 world: scratch vs UnO vs GASP initialisation on the
four downstream tasks at several label fractions (issue 7, SPEC s. 5).

    python tools/benchmarks/pretraining_gains.py [--work-dir work_dirs/pretraining_gains]
        [--pretrain-iters 100] [--finetune-iters 60] [--fractions 0.1 1.0] [--val-samples 0]

Steps (each reuses what an earlier run built): a synthetic world with 6 s logs (so that ego
waypoints at 1, 2, 3 s exist); info files (1 s horizon for pre-training, 3 s downstream);
missing-ray and DINOv2-feature caches (a randomly initialised ViT-S/14 unless --dino-weights);
UnO and GASP pre-training (configs/downstream/uno_synthetic_pretrain.py,
configs/gasp_synthetic_demo.py); then every (task, label fraction, initialisation) fine-tuning
run of configs/downstream/<task>_synthetic.py. Prints one table and writes
``<work-dir>/pretraining_gains.json`` and ``<work-dir>/pretraining_gains.png``.
"""
import argparse
import math
import time
from pathlib import Path

from mmengine.config import Config
from mmengine.runner import Runner
from mmengine.utils import ProgressBar

REPO = Path(__file__).resolve().parents[2]
TASKS = ('bev_semantic_forecasting', 'semantic_occupancy_4d', 'map_segmentation', 'ego_trajectory')
#: Task -> (headline metric key, label, True when higher is better).
HEADLINE = dict(
    bev_semantic_forecasting=('bev_forecast/mAP', 'BEV forecasting mAP', True),
    semantic_occupancy_4d=('semantic_occ/mIoU', '4D semantic occupancy mIoU', True),
    map_segmentation=('map_seg/mIoU', 'map segmentation mIoU', True),
    ego_trajectory=('ego_traj/L2', 'ego trajectory L2 (m)', False))
INITS = ('scratch', 'uno', 'gasp')


def parse_args():
    parser = argparse.ArgumentParser(description='Downstream gains of UnO / GASP pre-training')
    parser.add_argument('--data-root', default='data/av2_synthetic_downstream')
    parser.add_argument('--work-dir', default='work_dirs/pretraining_gains')
    parser.add_argument('--train-logs', type=int, default=4, help='synthetic train logs')
    parser.add_argument('--log-duration', type=float, default=6.0, help='seconds per log')
    parser.add_argument('--pretrain-iters', type=int, default=100)
    parser.add_argument('--finetune-iters', type=int, default=60)
    parser.add_argument('--fractions', type=float, nargs='+', default=[0.1, 1.0])
    parser.add_argument('--tasks', nargs='+', default=list(TASKS), choices=TASKS)
    parser.add_argument(
        '--val-samples', type=int, default=0, help='evaluate on the first N val samples (0: all)')
    parser.add_argument('--seed', type=int, default=0, help='world, label subset and training')
    parser.add_argument('--workers', type=int, default=2, help='processes for the world')
    parser.add_argument('--dino-weights', help='local DINOv2 ViT-S/14 checkpoint (optional)')
    return parser.parse_args()


def step(title):
    print(f'\n==== {title} ====', flush=True)
    return time.time()


def prepare_world(args, root: Path):
    """World, info files and GASP's target caches; returns (pretrain infos, downstream infos)."""
    from gasp.datasets import SampleTiming, create_av2_infos
    from gasp.synthetic import generate_world
    from gasp.synthetic.presets import get_preset, with_overrides
    from gasp.targets import extract_dino_features, extract_missing_rays
    preset = with_overrides(
        get_preset('tiny'),
        name='downstream',
        duration_s=args.log_duration,
        logs_per_split=dict(train=args.train_logs, val=1, test=0))
    generate_world(root, preset=preset, seed=args.seed, workers=args.workers)
    infos = {}
    for name, horizon in (('infos_pretrain', 1.0), ('infos', 3.0)):
        out = root / name
        if not all((out / f'av2_occ_infos_{s}.pkl').exists() for s in ('train', 'val')):
            create_av2_infos(
                str(root),
                str(out),
                splits=['train', 'val'],
                timing=SampleTiming(future_horizon_s=horizon))
        infos[name] = out
    extract_missing_rays(str(root), str(root / 'missing_rays'), splits=['train', 'val'])
    extract_dino_features(
        str(root),
        str(root / 'features_dinov2_vits14'),
        weights=args.dino_weights,
        backbone='dinov2_vits14',
        info_files=[str(infos['infos_pretrain'] / f'av2_occ_infos_{s}.pkl') for s in ('train', )],
        image_short_side=112,
        device='cpu',
        batch_size=16)
    return infos['infos_pretrain'], infos['infos']


def point_loaders(cfg, root: Path, info_dir: Path, val_samples: int = 0):
    for key, split in (('train_dataloader', 'train'), ('val_dataloader', 'val'), ('test_dataloader',
                                                                                  'val')):
        loader = cfg.get(key)
        if not loader:
            continue
        loader.dataset.data_root = str(root) + '/'
        loader.dataset.ann_file = str(info_dir / f'av2_occ_infos_{split}.pkl')
        if val_samples and split == 'val':
            loader.dataset.max_samples = val_samples
        for transform in loader.dataset.pipeline:
            if transform.type == 'LoadMissingRays':
                transform.cache_dir = str(root / 'missing_rays')
            elif transform.type == 'LoadFeatureTargets':
                transform.cache_dir = str(root / 'features_dinov2_vits14')


def schedule(cfg, iters: int):
    warmup = max(1, iters // 6)
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters + 1  # evaluated once, after training
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=warmup),
        dict(
            type='CosineAnnealingLR',
            by_epoch=False,
            begin=warmup,
            end=iters,
            eta_min=cfg.optim_wrapper.optimizer.lr * 1e-2)
    ]
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=iters, by_epoch=False, max_keep_ckpts=1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=max(1, iters // 5))


def pretrain(name: str, config: str, args, root: Path, info_dir: Path) -> Path:
    """Pre-train (or reuse) and return the checkpoint."""
    work_dir = Path(args.work_dir) / 'pretrain' / name
    checkpoint = work_dir / f'iter_{args.pretrain_iters}.pth'
    if checkpoint.exists():
        print(f'reusing {checkpoint}')
        return checkpoint
    cfg = Config.fromfile(str(REPO / config))
    point_loaders(cfg, root, info_dir)
    schedule(cfg, args.pretrain_iters)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.custom_hooks = []
    cfg.randomness = dict(seed=args.seed)
    cfg.work_dir = str(work_dir)
    Runner.from_cfg(cfg).train()
    return checkpoint


def finetune(task: str, fraction: float, checkpoint, args, root: Path, info_dir: Path,
             work_dir: Path) -> dict:
    cfg = Config.fromfile(str(REPO / 'configs' / 'downstream' / f'{task}_synthetic.py'))
    point_loaders(cfg, root, info_dir, args.val_samples)
    cfg.train_dataloader.dataset.label_fraction = fraction
    cfg.train_dataloader.dataset.label_seed = args.seed
    schedule(cfg, args.finetune_iters)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=-1, save_last=False)
    cfg.load_from = str(checkpoint) if checkpoint else None
    cfg.randomness = dict(seed=args.seed)
    cfg.log_level = 'WARNING'
    cfg.work_dir = str(work_dir)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner.val_loop.run()


def format_table(results: dict, tasks, fractions) -> str:
    lines = [f'{"task (headline metric)":<40}{"labels":>8}' + ''.join(f'{i:>10}' for i in INITS)]
    for task in tasks:
        key, label, higher = HEADLINE[task]
        for fraction in fractions:
            row = [results[task][str(fraction)][init].get(key, math.nan) for init in INITS]
            finite = [v for v in row if not math.isnan(v)]
            best = (max if higher else min)(finite) if finite else None
            cells = ''.join(f'{v:>9.3f}{"*" if v == best else " "}' for v in row)
            lines.append(f'{label + (" ^" if higher else " v"):<40}{fraction:>7.0%} ' + cells)
    lines.append('^ higher is better, v lower is better; * best of the row')
    return '\n'.join(lines)


def plot(results: dict, tasks, fractions, path: Path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np

    from gasp.fileio import atomic_open
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.6), squeeze=False)
    width = 0.8 / len(INITS)
    for ax, task in zip(axes[0], tasks):
        key, label, higher = HEADLINE[task]
        x = np.arange(len(fractions))
        for k, init in enumerate(INITS):
            values = [results[task][str(f)][init].get(key, np.nan) for f in fractions]
            ax.bar(x + (k - 1) * width, values, width, label=init)
        ax.set_xticks(x, [f'{f:.0%} labels' for f in fractions])
        ax.set_title(label + (' (higher better)' if higher else ' (lower better)'), fontsize=9)
        ax.grid(axis='y', alpha=0.3)
    axes[0][0].legend(fontsize=8, loc='lower right', framealpha=0.9)
    fig.suptitle('Downstream fine-tuning on the synthetic AV2 world: scratch vs UnO vs GASP')
    fig.tight_layout()
    with atomic_open(path) as f:
        fig.savefig(f, format='png', dpi=120)
    plt.close(fig)


def main():
    args = parse_args()
    Config.fromfile(str(REPO / 'configs' / 'gasp_synthetic_demo.py'))  # imports gasp
    from gasp.fileio import dump_json_atomic
    root, work = Path(args.data_root), Path(args.work_dir)
    timings = {}

    t = step(f'1/4 synthetic world ({args.train_logs} train logs of {args.log_duration} s), '
             'info files, missing-ray and DINOv2 feature caches')
    pretrain_infos, downstream_infos = prepare_world(args, root)
    timings['data_s'] = time.time() - t

    t = step(f'2/4 pre-training UnO and GASP ({args.pretrain_iters} iterations each)')
    checkpoints = dict(
        scratch=None,
        uno=pretrain('uno', 'configs/downstream/uno_synthetic_pretrain.py', args, root,
                     pretrain_infos),
        gasp=pretrain('gasp', 'configs/gasp_synthetic_demo.py', args, root, pretrain_infos))
    timings['pretrain_s'] = time.time() - t

    t = step(f'3/4 fine-tuning ({args.finetune_iters} iterations per run)')
    runs = [(task, f, init) for task in args.tasks for f in args.fractions for init in INITS]
    results = {task: {str(f): {} for f in args.fractions} for task in args.tasks}
    bar = ProgressBar(len(runs))
    for task, fraction, init in runs:
        metrics = finetune(task, fraction, checkpoints[init], args, root, downstream_infos,
                           work / 'finetune' / f'{task}_{fraction:g}_{init}')
        results[task][str(fraction)][init] = {k: float(v) for k, v in metrics.items()}
        bar.update()
    print()
    timings['finetune_s'] = time.time() - t

    step('4/4 results')
    table = format_table(results, args.tasks, args.fractions)
    print(table)
    summary = dict(
        command='python tools/benchmarks/pretraining_gains.py ' +
        ' '.join(f'--{k.replace("_", "-")} {" ".join(map(str, v)) if isinstance(v, list) else v}'
                 for k, v in vars(args).items() if v is not None),
        settings=vars(args),
        checkpoints={
            k: str(v) if v else None
            for k, v in checkpoints.items()
        },
        results=results,
        table=table,
        timings_s=timings)
    dump_json_atomic(summary, work / 'pretraining_gains.json', indent=2)
    plot(results, args.tasks, args.fractions, work / 'pretraining_gains.png')
    print(f'\nwrote {work / "pretraining_gains.json"} and {work / "pretraining_gains.png"}')


if __name__ == '__main__':
    main()
