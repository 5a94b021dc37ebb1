# 4D occupancy forecasting with UnO's learned renderer: an MLP over the occupancy sampled
# along each ray predicts its depth. It is trained on the training split's future lidar rays
# while the pre-trained field stays frozen, then tested like gasp_av2_occ_forecasting.py.
#   python tools/train.py configs/gasp_av2_occ_forecasting_learned_renderer.py \
#       --cfg-options load_from=work_dirs/gasp_av2/iter_100000.pth
#   python tools/test.py configs/gasp_av2_occ_forecasting_learned_renderer.py \
#       work_dirs/gasp_av2_occ_forecasting_learned_renderer/iter_5000.pth
_base_ = ['./gasp_av2_occ_forecasting.py']

load_from = 'work_dirs/gasp_av2/iter_100000.pth'  # the pre-trained GASP (or UnO) model

model = dict(
    renderer=dict(
        _delete_=True,
        type='LearnedDepthRenderer',
        num_samples=128,
        hidden_channels=128,
        num_layers=2,
        max_depth=100.0,
        point_cloud_range={{_base_.point_cloud_range}},
        loss_weight=1.0),
    freeze_field=True,
    rays_per_render=2**12,
    # The renderer trains on whole rays; no field queries are sampled.
    data_preprocessor=dict(occupancy_sampler=None, ego_sampler=None, num_feature_queries=0))

renderer_train_pipeline = [
    dict(type='LoadPastSweeps'),
    dict(type='LoadFutureRays', max_rays_per_sweep=256),
    dict(type='PackGASPInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=renderer_train_pipeline))
val_dataloader = None
val_evaluator = None
val_cfg = None

max_iters = 5000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=200),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=200, end=max_iters, eta_min=1e-6),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters + 1)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1000, by_epoch=False))
