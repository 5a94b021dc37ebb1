# UnO baseline on nuScenes: occupancy only, no rotation augmentation (see configs/uno_av2.py).
#   python tools/create_data.py nuscenes --root-path data/nuscenes --version v1.0-trainval \
#       --out-dir data/nuscenes/infos
_base_ = [
    './_base_/default_runtime.py', './_base_/datasets/nus_occ.py', './_base_/models/gasp.py',
    './_base_/schedules/adamw_cosine.py'
]

model = dict(
    data_preprocessor=dict(ego_sampler=None, num_feature_queries=0),
    decoder=dict(heads=dict(_delete_=True, occupancy=1)),
    losses=dict(_delete_=True, occupancy=dict(type='OccupancyBCELoss', loss_weight=1.0)))
val_evaluator = dict(binary_heads=['occupancy'], feature_heads=[])
test_evaluator = val_evaluator
