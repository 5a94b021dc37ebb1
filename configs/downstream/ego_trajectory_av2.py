# Ego trajectory prediction: the ego (rear-axle) position 1, 2 and 3 s ahead, from the past
# lidar alone; L2 error in metres.
_base_ = ['./_base_/downstream_av2.py']

waypoint_times_s = [1.0, 2.0, 3.0]

pipeline = [
    dict(type='LoadPastSweeps'),
    dict(type='LoadFutureEgoPath'),
    dict(type='EgoWaypointTargets', times_s=waypoint_times_s),
    dict(type='PackDownstreamInputs', keys=['ego_waypoints']),
]
train_dataloader = dict(dataset=dict(pipeline=pipeline))
val_dataloader = dict(dataset=dict(pipeline=pipeline))
test_dataloader = val_dataloader

model = dict(
    head=dict(
        type='EgoTrajectoryHead',
        in_channels={{_base_.bev_channels}},
        num_waypoints=len(waypoint_times_s)))
val_evaluator = dict(type='EgoTrajectoryMetric', times_s=waypoint_times_s)
test_evaluator = val_evaluator
