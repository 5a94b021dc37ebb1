# nuScenes occupancy pre-training data: the AV2 pipeline on nuScenes info files (the log tables
# say format='nuscenes', so the transforms read .pcd.bin sweeps). Sample timing (5 past sweeps
# at 0.2 s on the 20 Hz LIDAR_TOP, 3 s horizon) is fixed when the info files are made:
#   python tools/create_data.py nuscenes --root-path data/nuscenes --version v1.0-trainval \
#       --out-dir data/nuscenes/infos
dataset_type = 'NuScenesOccDataset'
data_root = 'data/nuscenes/'
info_dir = 'infos/'
max_rays_per_sweep = 8192
# nuScenes' ego frame is the rear axle of a Renault Zoe (4.08 m x 1.73 m). Returns inside 4D-Occ's
# nuScenes ego box (x in [-0.8, 0.8], y in [-1.5, 2.5] m in the LIDAR_TOP frame, which sits
# 0.94 m ahead of the axle) are removed; the box is that one in the ego frame, 0.1 m wider.
ego_box_xy = (-0.66, -0.9, 3.54, 0.9)
ego_footprint_xy = (-0.6, -0.865, 3.48, 0.865)

train_pipeline = [
    dict(type='LoadPastSweeps', ego_box_xy=ego_box_xy),
    dict(type='LoadFutureRays', ego_box_xy=ego_box_xy, max_rays_per_sweep=max_rays_per_sweep),
    dict(type='LoadFutureEgoPath', footprint_xy=ego_footprint_xy),
    dict(type='PackGASPInputs'),
]
val_pipeline = train_pipeline

train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,  # with the data preprocessor's non_blocking copy: no host stall
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='gasp_collate'),  # one tensor per field and batch (collate.py)
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=info_dir + 'nus_occ_infos_train.pkl',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=info_dir + 'nus_occ_infos_val.pkl',
        pipeline=val_pipeline,
        test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type='OccupancyFieldMetric')
test_evaluator = val_evaluator
