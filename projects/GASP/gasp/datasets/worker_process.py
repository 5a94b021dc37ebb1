"""Settings of dataloader worker processes, so that the workers leave the training process
(which launches the GPU work) a free core and the machine's memory allocator stays warm."""
import ctypes
import logging
import os

import torch
from mmengine.logging import print_log

# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3

_configured_pid = None


def configure_worker_process(nice: int = 0,
                             reserve_cores_per_rank: int = 0,
                             malloc_pad_mib: int = 0) -> None:
    """Apply the settings once in each dataloader worker process (a no-op elsewhere).

    Args:
        nice: raise the worker's nice value by this much, so that the training process wins
            a contended core: every millisecond it waits is a millisecond without GPU work.
        reserve_cores_per_rank: keep workers off the first ``reserve_cores_per_rank x
            LOCAL_WORLD_SIZE`` cores of the process's CPU set, leaving them to the training
            processes (their main and pin-memory threads).
        malloc_pad_mib: glibc only: serve allocations up to this size from the heap and keep
            that much freed memory (``M_MMAP_THRESHOLD``, ``M_TOP_PAD``, ``M_TRIM_THRESHOLD``),
            instead of mapping fresh zeroed pages from the kernel for every sweep-sized array.
    """
    global _configured_pid
    if torch.utils.data.get_worker_info() is None or _configured_pid == os.getpid():
        return
    _configured_pid = os.getpid()
    if nice:
        os.nice(nice)
    if reserve_cores_per_rank:
        ranks = int(os.environ.get('LOCAL_WORLD_SIZE', '1'))
        cores = sorted(os.sched_getaffinity(0))
        keep = cores[reserve_cores_per_rank * ranks:]
        if keep:
            os.sched_setaffinity(0, keep)
        else:
            print_log(
                f'dataloader worker: {len(cores)} cores, not enough to reserve '
                f'{reserve_cores_per_rank} per rank for {ranks} ranks; workers run on all',
                logger='current',
                level=logging.WARNING)
    if malloc_pad_mib:
        _tune_malloc(malloc_pad_mib * 2**20)


def _tune_malloc(pad_bytes: int) -> None:
    try:
        mallopt = ctypes.CDLL('libc.so.6').mallopt
    except OSError:
        print_log(
            'dataloader worker: malloc_pad_mib needs glibc (libc.so.6 not found); ignored',
            logger='current',
            level=logging.WARNING)
        return
    for param, value in ((_M_MMAP_THRESHOLD, pad_bytes), (_M_TOP_PAD, pad_bytes),
                         (_M_TRIM_THRESHOLD, 4 * pad_bytes)):
        if mallopt(param, value) != 1:
            print_log(
                f'dataloader worker: mallopt({param}, {value}) refused; allocator left as is',
                logger='current',
                level=logging.WARNING)
