#!/usr/bin/env bash
# Data-parallel testing on one host: tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args]
# Uses NCCL on GPUs; on a machine without GPUs the processes run on CPU through gloo
# (see tools/test.py). Each process scores its share of the frames; metrics are gathered.
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
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
    "$HERE/test.py" \
    "$CONFIG" \
    "$CHECKPOINT" \
    --launcher pytorch "${@:4}"
