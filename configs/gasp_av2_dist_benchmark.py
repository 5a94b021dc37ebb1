# Throughput of data-parallel pre-training (docs/performance.md): gasp_av2.py for 300
# iterations at batch 8 per GPU, with the rank check and no validation. On N GPUs of one host:
#   NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 OMP_NUM_THREADS=1 \
#       tools/dist_train.sh configs/gasp_av2_dist_benchmark.py N --amp
_base_ = ['./gasp_av2.py']
# A real AV2 epoch is ~100k samples: sample without epoch ends, as the benchmark does.
train_dataloader = dict(
    batch_size=8, num_workers=10, sampler=dict(_delete_=True, type='InfiniteSampler', shuffle=True))
train_cfg = dict(max_iters=300, val_interval=100000)
val_cfg = None
val_dataloader = None
val_evaluator = None
test_cfg = None
test_dataloader = None
test_evaluator = None
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=300, by_epoch=False, max_keep_ckpts=1))
custom_hooks = [
    dict(type='NonFiniteGuardHook', action='stop'),
    dict(type='RandomStateHook'),
    dict(type='SkippedSamplesHook'),
    dict(type='RankConsistencyHook', interval=100),
]
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Det3DLocalVisualizer', vis_backends=vis_backends, name='visualizer')
