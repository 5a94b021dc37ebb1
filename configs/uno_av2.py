# UnO baseline: GASP without ego and feature fields, missing rays and rotation augmentation.
_base_ = [
    './_base_/default_runtime.py', './_base_/datasets/av2_occ.py', './_base_/models/gasp.py',
    './_base_/schedules/adamw_cosine.py'
]

model = dict(
    data_preprocessor=dict(ego_sampler=None, num_feature_queries=0),
    decoder=dict(heads=dict(_delete_=True, occupancy=1)),
    losses=dict(_delete_=True, occupancy=dict(type='OccupancyBCELoss', loss_weight=1.0)))
val_evaluator = dict(binary_heads=['occupancy'], feature_heads=[])
test_evaluator = val_evaluator
