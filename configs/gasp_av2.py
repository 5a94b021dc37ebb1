# GASP pre-training on Argoverse 2: occupancy, ego and DINOv2-feature fields.
#   python tools/create_data.py av2 --root-path data/av2 --out-dir data/av2/infos
#   tools/dist_train.sh configs/gasp_av2.py 8
_base_ = [
    './_base_/default_runtime.py', './_base_/datasets/av2_occ.py', './_base_/models/gasp.py',
    './_base_/schedules/adamw_cosine.py'
]

# GASP adds rotation augmentation to UnO's targets.
train_pipeline = [
    dict(type='LoadPastSweeps'),
    dict(type='LoadFutureRays', max_rays_per_sweep={{_base_.max_rays_per_sweep}}),
    dict(type='LoadFutureEgoPath'),
    dict(type='RandomYawRotation'),
    dict(type='PackGASPInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
