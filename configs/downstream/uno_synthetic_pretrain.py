# UnO pre-training on the synthetic world, for the pre-training gains benchmark: the encoder and
# schedule of configs/gasp_synthetic_demo.py, with UnO's targets only (occupancy from future
# lidar rays; no ego or feature fields, no missing rays, no rotation augmentation).
_base_ = ['../gasp_synthetic_demo.py']

train_pipeline = [
    dict(type='LoadPastSweeps'),
    dict(type='LoadFutureRays', max_rays_per_sweep=2048),
    dict(type='PackGASPInputs'),
]
val_pipeline = train_pipeline
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader

model = dict(
    data_preprocessor=dict(
        occupancy_sampler=dict(missing_ray_fraction=0.0), ego_sampler=None, num_feature_queries=0),
    decoder=dict(heads=dict(_delete_=True, occupancy=1)),
    losses=dict(_delete_=True, occupancy=dict(type='OccupancyBCELoss', loss_weight=1.0)))
val_evaluator = dict(binary_heads=['occupancy'], feature_heads=[])
test_evaluator = val_evaluator
custom_hooks = []
