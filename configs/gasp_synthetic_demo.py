# GASP on the synthetic AV2 world, sized for a CPU (`make demo`, tests).
#   python tools/make_synthetic_av2.py --out-dir data/av2_synthetic --preset demo
#   python tools/create_data.py av2 --root-path data/av2_synthetic \
#       --out-dir data/av2_synthetic/infos --future-horizon 1.0
_base_ = ['./gasp_av2.py']

data_root = 'data/av2_synthetic/'
point_cloud_range = [-32.0, -32.0, -4.5, 32.0, 32.0, 4.5]
voxel_size = [0.5, 0.5, 1.0]
num_past_sweeps = 5
future_horizon_s = 1.0
bev_channels = 32
# Caches made by tools/extract_missing_points.py and tools/extract_dino_features.py (the demo
# runs both; without DINOv2 weights the features come from a randomly initialised ViT-S/14,
# 384-d, at a 112 px short side, which suits the demo's 128 x 97 px images).
missing_rays_dir = data_root + 'missing_rays/'
features_dir = data_root + 'features_dinov2_vits14/'
feature_dim = 384

train_pipeline = [
    dict(type='LoadPastSweeps'),
    dict(type='LoadFutureRays', max_rays_per_sweep=2048),
    dict(type='LoadFutureEgoPath'),
    dict(type='LoadMissingRays', cache_dir=missing_rays_dir, max_rays_per_sweep=1024),
    dict(
        type='LoadFeatureTargets',
        cache_dir=features_dir,
        feature_dim=feature_dim,
        max_points_per_sweep=1024),
    dict(type='RandomYawRotation'),
    dict(type='PackGASPInputs'),
]
val_pipeline = [
    dict(type='LoadPastSweeps'),
    dict(type='LoadFutureRays', max_rays_per_sweep=2048),
    dict(type='LoadFutureEgoPath'),
    dict(type='LoadFeatureTargets', cache_dir=features_dir, feature_dim=feature_dim),
    dict(type='PackGASPInputs'),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=1,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=1,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=val_pipeline))
test_dataloader = val_dataloader

model = dict(
    data_preprocessor=dict(
        point_cloud_range=point_cloud_range,
        voxel_size=voxel_size,
        num_past_sweeps=num_past_sweeps,
        occupancy_sampler=dict(num_queries=8192, missing_ray_fraction=0.25, missing_range=32.0),
        ego_sampler=dict(
            num_queries=2048,
            band_width=4.0,
            region_xy=point_cloud_range[:2] + point_cloud_range[3:5]),
        num_feature_queries=2048),
    backbone=dict(
        in_channels=num_past_sweeps * 9,
        stem_channels=(16, 32),
        stage_channels=(32, 64, 64),
        stage_blocks=(1, 1, 1),
        out_channels=bev_channels),
    decoder=dict(
        in_channels=bev_channels,
        point_cloud_range=point_cloud_range,
        time_range=[0.0, future_horizon_s],
        hidden_channels=64,
        num_res_blocks=2,
        heads=dict(feature=feature_dim)),
    decoder_chunk=0)

max_iters = 100
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=30),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=30, end=max_iters, eta_min=2e-5),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(type='CheckpointHook', interval=max_iters, by_epoch=False),
    visualization=dict(type='Det3DVisualizationHook', draw=False))
log_processor = dict(by_epoch=False)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
custom_hooks = [
    dict(type='ValidateAtStartHook'),
    dict(type='FieldVisualizationHook', times_s=[0.2, 0.6, 1.0], z=0.5),
]
# Local logs and TensorBoard only (no W&B run for the demo).
vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='Det3DLocalVisualizer', vis_backends=vis_backends, name='visualizer')
