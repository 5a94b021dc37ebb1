# GASP pre-training on nuScenes: occupancy and ego fields with rotation augmentation.
#   python tools/create_data.py nuscenes --root-path data/nuscenes --version v1.0-trainval \
#       --out-dir data/nuscenes/infos
#   tools/dist_train.sh configs/gasp_nus.py 8
# The DINOv2-feature and missing-ray targets need caches that tools/extract_dino_features.py and
# tools/extract_missing_points.py make from AV2 logs only so far; this config leaves them out
# (add LoadFeatureTargets / LoadMissingRays as in gasp_av2.py once a nuScenes cache exists).
_base_ = [
    './_base_/default_runtime.py', './_base_/datasets/nus_occ.py', './_base_/models/gasp.py',
    './_base_/schedules/adamw_cosine.py'
]

train_pipeline = [
    dict(type='LoadPastSweeps', ego_box_xy={{_base_.ego_box_xy}}),
    dict(
        type='LoadFutureRays',
        ego_box_xy={{_base_.ego_box_xy}},
        max_rays_per_sweep={{_base_.max_rays_per_sweep}}),
    dict(type='LoadFutureEgoPath', footprint_xy={{_base_.ego_footprint_xy}}),
    dict(type='RandomYawRotation'),
    dict(type='PackGASPInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

model = dict(
    data_preprocessor=dict(num_feature_queries=0),
    decoder=dict(heads=dict(_delete_=True, occupancy=1, ego=1)),
    losses=dict(
        _delete_=True,
        occupancy=dict(type='OccupancyBCELoss', loss_weight=1.0),
        ego=dict(type='OccupancyBCELoss', loss_weight=1.0)))
val_evaluator = dict(binary_heads=['occupancy', 'ego'], feature_heads=[])
test_evaluator = val_evaluator
