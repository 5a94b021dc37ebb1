# BEV semantic forecasting: per-class BEV occupancy now and 1, 2, 3 s ahead from annotation
# cuboids, predicted from the present BEV features; mAP and soft-IoU (SPEC s. 5).
_base_ = ['./_base_/downstream_av2.py']

point_cloud_range = {{_base_.point_cloud_range}}
label_cell_size = {{_base_.label_cell_size}}
class_names = ['vehicle', 'pedestrian', 'cyclist']  # gasp.downstream.AV2_CLASS_GROUPS
forecast_times_s = [0.0, 1.0, 2.0, 3.0]

pipeline = [
    dict(type='LoadPastSweeps'),
    dict(type='LoadFutureCuboids', times_s=forecast_times_s),
    dict(
        type='BEVSemanticTargets',
        point_cloud_range=point_cloud_range,
        cell_size=label_cell_size,
        num_classes=len(class_names)),
    dict(type='PackDownstreamInputs', keys=['bev_semantics']),
]
train_dataloader = dict(dataset=dict(pipeline=pipeline))
val_dataloader = dict(dataset=dict(pipeline=pipeline))
test_dataloader = val_dataloader

model = dict(
    head=dict(
        type='BEVSemanticForecastHead',
        in_channels={{_base_.bev_channels}},
        num_times=len(forecast_times_s),
        num_classes=len(class_names),
        point_cloud_range=point_cloud_range,
        cell_size=label_cell_size,
        pos_weight=[4.0, 10.0, 10.0]))  # objects cover few cells
val_evaluator = dict(type='BEVForecastingMetric', class_names=class_names, times_s=forecast_times_s)
test_evaluator = val_evaluator
