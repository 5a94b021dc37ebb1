#!/usr/bin/env bash
# Data-parallel training on one host: tools/dist_train.sh CONFIG GPUS [train.py args]
# Uses NCCL on GPUs; on a machine without GPUs the processes train on CPU through gloo
# (the backend is chosen from env_cfg.dist_cfg, see configs/_base_/default_runtime.py).
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
HERE=$(dirname "$0")
PYTHON=${PYTHON:-python}

PYTHONPATH="$HERE/..":$PYTHONPATH \
"$PYTHON" -m torch.distributed.run \
    --nnodes=$NNODES \
    --node_rank=$NODE_RANK \
    --master_addr=$MASTER_ADDR \
    --nproc_per_node=$GPUS \
    --master_port=$PORT \
    "$HERE/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
