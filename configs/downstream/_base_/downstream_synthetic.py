# Downstream fine-tuning on the synthetic AV2 world, CPU-sized. The encoder is the one of
# configs/gasp_synthetic_demo.py, so its checkpoints (and UnO ones of the same encoder) load.
#   python tools/make_synthetic_av2.py --out-dir data/av2_synthetic_downstream --preset tiny
#   python tools/create_data.py av2 --root-path data/av2_synthetic_downstream \
#       --out-dir data/av2_synthetic_downstream/infos --future-horizon 3.0
# (tools/benchmarks/pretraining_gains.py makes a world with 6 s logs and does all of this.)
_base_ = ['./downstream_av2.py']

data_root = 'data/av2_synthetic_downstream/'
point_cloud_range = [-32.0, -32.0, -4.5, 32.0, 32.0, 4.5]
voxel_size = [0.5, 0.5, 1.0]
num_height_slices = 9
bev_channels = 32
label_cell_size = 1.0

model = dict(
    data_preprocessor=dict(point_cloud_range=point_cloud_range, voxel_size=voxel_size),
    backbone=dict(
        in_channels=5 * num_height_slices,
        stem_channels=(16, 32),
        stage_channels=(32, 64, 64),
        stage_blocks=(1, 1, 1),
        out_channels=bev_channels))

train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(data_root=data_root))
val_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(data_root=data_root))
test_dataloader = val_dataloader

max_iters = 60
lr = 2e-3
optim_wrapper = dict(optimizer=dict(lr=lr))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=10),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=10, end=max_iters, eta_min=lr * 1e-2),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=10), checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
