# Map segmentation: drivable area, lane dividers and pedestrian crossings rasterized from the
# AV2 vector map around the reference pose; IoU per class.
_base_ = ['./_base_/downstream_av2.py']

point_cloud_range = {{_base_.point_cloud_range}}
label_cell_size = {{_base_.label_cell_size}}
map_classes = ['drivable_area', 'lane_divider', 'ped_crossing']

pipeline = [
    dict(type='LoadPastSweeps'),
    dict(
        type='MapRasterTargets',
        point_cloud_range=point_cloud_range,
        cell_size=label_cell_size,
        line_width=1.0,
        classes=map_classes),
    dict(type='PackDownstreamInputs', keys=['map_raster']),
]
train_dataloader = dict(dataset=dict(pipeline=pipeline))
val_dataloader = dict(dataset=dict(pipeline=pipeline))
test_dataloader = val_dataloader

model = dict(
    head=dict(
        type='MapSegmentationHead',
        in_channels={{_base_.bev_channels}},
        num_classes=len(map_classes),
        point_cloud_range=point_cloud_range,
        cell_size=label_cell_size,
        pos_weight=[1.0, 4.0, 4.0]))  # dividers and crossings cover few cells
val_evaluator = dict(type='MapSegmentationMetric', class_names=map_classes)
test_evaluator = val_evaluator
