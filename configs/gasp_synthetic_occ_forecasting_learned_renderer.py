# UnO's learned renderer on the synthetic world (CPU-sized): trained on the train split's
# future rays with the demo field frozen, then tested like gasp_synthetic_occ_forecasting.py.
#   python tools/train.py configs/gasp_synthetic_occ_forecasting_learned_renderer.py \
#       --cfg-options load_from=work_dirs/gasp_synthetic_demo/iter_100.pth
#   python tools/test.py configs/gasp_synthetic_occ_forecasting_learned_renderer.py \
#       work_dirs/gasp_synthetic_occ_forecasting_learned_renderer/iter_150.pth
_base_ = ['./gasp_synthetic_occ_forecasting.py']

load_from = 'work_dirs/gasp_synthetic_demo/iter_100.pth'  # the pre-trained demo model

model = dict(
    renderer=dict(
        _delete_=True,
        type='LearnedDepthRenderer',
        num_samples=32,
        hidden_channels=64,
        num_layers=2,
        max_depth=100.0,
        point_cloud_range={{_base_.point_cloud_range}}),
    freeze_field=True,
    rays_per_render=4096,
    data_preprocessor=dict(occupancy_sampler=None, ego_sampler=None, num_feature_queries=0))
train_dataloader = dict(
    batch_size=2,
    dataset=dict(pipeline=[
        dict(type='LoadPastSweeps'),
        dict(type='LoadFutureRays', max_rays_per_sweep=64),
        dict(type='PackGASPInputs'),
    ]))
val_dataloader = None
val_evaluator = None
val_cfg = None

max_iters = 150
optim_wrapper = dict(optimizer=dict(lr=3e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=20, end=max_iters, eta_min=1e-5),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters + 1)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(type='CheckpointHook', interval=max_iters, by_epoch=False))
