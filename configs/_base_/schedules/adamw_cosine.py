# AdamW, lr 1e-3, linear warm-up then cosine decay, by iteration (SPEC section 4 defaults).
max_iters = 100000
warmup_iters = 1000
lr = 1e-3
# SyncFreeOptimWrapper (gasp.engine): the step never waits for the GPU; with the fused AdamW
# it skips non-finite updates on the GPU. tools/train.py --amp sets dtype='bfloat16'.
optim_wrapper = dict(
    type='SyncFreeOptimWrapper',
    optimizer=dict(type='AdamW', lr=lr, weight_decay=0.01, fused=True),
    clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(
        type='CosineAnnealingLR',
        by_epoch=False,
        begin=warmup_iters,
        end=max_iters,
        eta_min=lr * 1e-3),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=5000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
