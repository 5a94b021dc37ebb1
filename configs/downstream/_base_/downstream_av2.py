# Downstream fine-tuning on AV2 (SPEC s. 5): the GASP encoder + one task head.
# The encoder must match the pre-training config (configs/_base_/models/gasp.py) so that
# `load_from` a GASP / UnO checkpoint loads its `backbone.*` weights; its decoder is not used.
#   python tools/train.py configs/downstream/<task>_av2.py \
#       --cfg-options load_from=work_dirs/gasp_av2/iter_100000.pth \
#       train_dataloader.dataset.label_fraction=0.1
_base_ = ['../../_base_/default_runtime.py', '../../_base_/schedules/adamw_cosine.py']

data_root = 'data/av2/'
info_dir = 'infos/'
point_cloud_range = [-70.0, -70.0, -4.5, 70.0, 70.0, 4.5]
voxel_size = [0.2, 0.2, 0.5]
num_past_sweeps = 5
past_interval_s = 0.2
future_horizon_s = 3.0
bev_channels = 128
num_height_slices = 18  # (4.5 - -4.5) / 0.5
label_cell_size = 0.8  # label rasters at the BEV feature resolution (stride 4 x 0.2 m)
label_fraction = 1.0  # share of the training samples with labels
label_seed = 0  # which samples (a fixed seed gives nested subsets)
load_from = None  # a GASP / UnO pre-training checkpoint; None trains from scratch

model = dict(
    type='DownstreamModel',
    data_preprocessor=dict(
        type='GASPDataPreprocessor',
        point_cloud_range=point_cloud_range,
        voxel_size=voxel_size,
        num_past_sweeps=num_past_sweeps,
        past_interval_s=past_interval_s,
        occupancy_sampler=None),
    backbone=dict(
        type='BEVResNetFPN',
        in_channels=num_past_sweeps * num_height_slices,
        out_channels=bev_channels),
)  # the task config adds the head

dataset_type = 'AV2DownstreamDataset'
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,  # with the data preprocessor's non_blocking copy: no host stall
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=info_dir + 'av2_occ_infos_train.pkl',
        label_fraction=label_fraction,
        label_seed=label_seed,
        pipeline=[]))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=info_dir + 'av2_occ_infos_val.pkl',
        pipeline=[],
        test_mode=True))
test_dataloader = val_dataloader

max_iters = 20000
warmup_iters = 500
lr = 1e-3
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(
        type='CosineAnnealingLR',
        by_epoch=False,
        begin=warmup_iters,
        end=max_iters,
        eta_min=lr * 1e-3),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=2000)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=2000, by_epoch=False, max_keep_ckpts=2),
    visualization=dict(type='Det3DVisualizationHook', draw=False))
log_processor = dict(by_epoch=False)
