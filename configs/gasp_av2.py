# GASP pre-training on Argoverse 2: occupancy, ego and DINOv2-feature fields.
#   python tools/create_data.py av2 --root-path data/av2 --out-dir data/av2/infos --workers 8
#   python tools/extract_missing_points.py --data-dir data/av2 --output-dir data/av2/missing_rays
#   python tools/extract_dino_features.py --data-dir data/av2 \
#       --output-dir data/av2/features_dinov2_vits14_pca64 --weights dinov2_vits14_pretrain.pth \
#       --reduction <PCA .npz to 64-d> --info-files data/av2/infos/av2_occ_infos_train.pkl
#   tools/dist_train.sh configs/gasp_av2.py 8
_base_ = [
    './_base_/default_runtime.py', './_base_/datasets/av2_occ.py', './_base_/models/gasp.py',
    './_base_/schedules/adamw_cosine.py'
]

missing_rays_dir = 'data/av2/missing_rays/'
features_dir = 'data/av2/features_dinov2_vits14_pca64/'

# GASP adds missing-ray and feature targets and rotation augmentation to UnO's.
train_pipeline = [
    dict(type='LoadPastSweeps'),
    dict(type='LoadFutureRays', max_rays_per_sweep={{_base_.max_rays_per_sweep}}),
    dict(type='LoadFutureEgoPath'),
    dict(type='LoadMissingRays', cache_dir=missing_rays_dir, max_rays_per_sweep=4096),
    dict(
        type='LoadFeatureTargets',
        cache_dir=features_dir,
        feature_dim={{_base_.feature_dim}},
        max_points_per_sweep=4096),
    dict(type='RandomYawRotation'),
    dict(type='PackGASPInputs'),
]
val_pipeline = [
    dict(type='LoadPastSweeps'),
    dict(type='LoadFutureRays', max_rays_per_sweep={{_base_.max_rays_per_sweep}}),
    dict(type='LoadFutureEgoPath'),
    dict(type='LoadFeatureTargets', cache_dir=features_dir, feature_dim={{_base_.feature_dim}}),
    dict(type='PackGASPInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader
model = dict(data_preprocessor=dict(occupancy_sampler=dict(missing_ray_fraction=0.25)))

# Logs go to the work dir, TensorBoard and Weights & Biases. W&B runs offline until you
# `wandb login` and set mode='online' (or WANDB_MODE=online); `wandb sync` uploads later.
vis_backends = [
    dict(type='LocalVisBackend'),
    dict(type='TensorboardVisBackend'),
    dict(type='WandbVisBackend', init_kwargs=dict(project='gasp', mode='offline')),
]
visualizer = dict(type='Det3DLocalVisualizer', vis_backends=vis_backends, name='visualizer')
