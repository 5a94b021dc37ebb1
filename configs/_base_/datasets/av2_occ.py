# AV2 occupancy pre-training data (SPEC section 3). Sample timing (5 past sweeps, 3 s horizon)
# is fixed when the info files are made by tools/create_data.py.
dataset_type = 'AV2OccDataset'
data_root = 'data/av2/'
info_dir = 'infos/'
max_rays_per_sweep = 8192

train_pipeline = [
    dict(type='LoadPastSweeps'),
    dict(type='LoadFutureRays', max_rays_per_sweep=max_rays_per_sweep),
    dict(type='LoadFutureEgoPath'),
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
        ann_file=info_dir + 'av2_occ_infos_train.pkl',
        # Loader workers yield the CPU to the training process (which launches the GPU
        # work), stay off its cores, and reuse freed memory (see worker_process.py). Four
        # cores per rank: its main, autograd and pin-memory threads each keep one busy
        # (docs/performance.md: 91-94 % GPU busy at batch 8 with 10 workers, 83-93 % with 2).
        worker_process=dict(nice=10, reserve_cores_per_rank=4, malloc_pad_mib=256),
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
        ann_file=info_dir + 'av2_occ_infos_val.pkl',
        pipeline=val_pipeline,
        test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type='OccupancyFieldMetric')
test_evaluator = val_evaluator
