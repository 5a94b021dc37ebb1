# 4D semantic occupancy: the class (free, static, vehicle, pedestrian, cyclist) at
# (x, y, z, t) queries from future lidar rays labelled by annotation cuboids; mIoU.
_base_ = ['./_base_/downstream_av2.py']

point_cloud_range = {{_base_.point_cloud_range}}
class_names = ['free', 'static', 'vehicle', 'pedestrian', 'cyclist']

pipeline = [
    dict(type='LoadPastSweeps'),
    dict(type='LoadFutureRays', max_rays_per_sweep=4096),
    dict(type='LoadFutureCuboids', times_s=None),
    dict(type='SemanticOccupancyTargets', point_cloud_range=point_cloud_range, num_queries=2**14),
    dict(type='PackDownstreamInputs', keys=['semantic_queries', 'semantic_labels']),
]
train_dataloader = dict(dataset=dict(pipeline=pipeline))
val_dataloader = dict(dataset=dict(pipeline=pipeline))
test_dataloader = val_dataloader

model = dict(
    head=dict(
        type='SemanticOccupancyHead',
        num_classes=len(class_names),
        decoder=dict(
            type='ImplicitOccupancyDecoder',
            in_channels={{_base_.bev_channels}},
            point_cloud_range=point_cloud_range,
            time_range=[0.0, {{_base_.future_horizon_s}}],
            hidden_channels=256,
            num_res_blocks=3)))
val_evaluator = dict(type='SemanticOccupancyMetric', class_names=class_names)
test_evaluator = val_evaluator
