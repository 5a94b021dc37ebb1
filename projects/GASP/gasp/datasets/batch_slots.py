"""Batch slots: shared memory that dataloader workers collate into and that the training
process pins once, so that a batch reaches the GPU without being copied on the host.

Without slots, each packed batch (~200 MB at batch 8 and AV2 density) is copied three times
on the host: the worker's ``torch.cat`` output is moved into fresh shared memory when it is
queued; the training process maps that memory and its pin-memory thread copies it into pinned
memory; then the GPU copies it. The pin-memory copy runs in the training process, beside the
thread that launches the GPU work (docs/performance.md: 160-181 ms of CPU a fed step against
115-130 ms with the batch in memory).

With slots:

- each worker keeps a few shared-memory buffers (:class:`WorkerSlots`) and concatenates a
  batch's fields straight into a free one;
- the training process maps each buffer once, registers it with CUDA
  (``cudaHostRegister``), and builds the batch's tensors as views of it
  (:func:`attach_slot`, at unpickling), so the pin-memory thread has nothing left to copy;
- after the data preprocessor has queued the copy to the GPU, the slot is handed back once a
  CUDA event says the copy is done (:meth:`SlotLease.release_after_copy`).

The first byte of a slot says whether the worker may write it. A worker with no free slot
falls back to ordinary shared tensors for that batch, so it never waits for the training
process. A batch dropped unread (a dataloader reset) hands its slot back when it is
garbage-collected.
"""
import logging
import os
import threading
from collections import deque
from typing import Dict, List, Optional, Sequence, Set, Tuple

import numpy as np
import torch
from mmengine.logging import print_log

#: Bytes before a slot's data; byte 0 is the slot's state.
HEADER_BYTES = 64
#: Start of every field in a slot (bytes), enough for any dtype and for vector loads.
ALIGN_BYTES = 64
FREE, FILLED = 0, 1
#: A new slot's size: the batch plus this share, rounded up to GRAIN_BYTES, so that later
#: batches with a few more points still fit.
HEADROOM = 0.25
GRAIN_BYTES = 16 * 2**20

Layout = List[Tuple[str, int, torch.dtype, Tuple[int, ...]]]


def _aligned(nbytes: int) -> int:
    return -(-nbytes // ALIGN_BYTES) * ALIGN_BYTES


def plan_layout(fields: Dict[str, Sequence[torch.Tensor]]) -> Tuple[Layout, int]:
    """Where each field, the concatenation of its parts, goes in a slot: ``(name, byte
    offset, dtype, shape)`` per field and the bytes needed, header included."""
    layout, offset = [], HEADER_BYTES
    for name, parts in fields.items():
        shape = (sum(len(p) for p in parts), ) + tuple(parts[0].shape[1:])
        nbytes = int(np.prod(shape)) * parts[0].dtype.itemsize
        layout.append((name, offset, parts[0].dtype, shape))
        offset += _aligned(nbytes)
    return layout, offset


def slot_views(slot: torch.Tensor, layout: Layout) -> Dict[str, torch.Tensor]:
    """The fields of a slot (a flat uint8 tensor) as tensors sharing its memory."""
    views = {}
    for name, offset, dtype, shape in layout:
        nbytes = int(np.prod(shape)) * dtype.itemsize
        views[name] = slot[offset:offset + nbytes].view(dtype).view(shape)
    return views


class WorkerSlots:
    """The slots of one dataloader worker process (see the module docstring).

    Args:
        max_slots: most slots this worker keeps; a batch that finds none free is sent as
            ordinary shared tensors.
    """

    def __init__(self, max_slots: int):
        self.max_slots = max_slots
        self.slots: List[torch.Tensor] = []
        self.fallbacks = 0

    def acquire(self, nbytes: int) -> Optional[Tuple[int, torch.Tensor]]:
        """A free slot of at least ``nbytes``, marked filled, with its index; None when all
        ``max_slots`` are in the training process's hands."""
        free = [k for k, slot in enumerate(self.slots) if slot[0] == FREE]
        for k in free:
            if len(self.slots[k]) >= nbytes:
                return self._take(k)
        if free:  # too small: replaced by a larger one (the training process remaps it)
            self.slots[free[0]] = self._new_slot(nbytes)
            return self._take(free[0])
        if len(self.slots) < self.max_slots:
            self.slots.append(self._new_slot(nbytes))
            return self._take(len(self.slots) - 1)
        self.fallbacks += 1
        if self.fallbacks in (1, 10, 100, 1000):
            print_log(
                f'dataloader worker {os.getpid()}: all {self.max_slots} batch slots are in '
                f'use, {self.fallbacks} batch(es) sent as ordinary shared tensors (slower: '
                'the training process copies them); raise `slots_per_worker` of gasp_collate',
                logger='current',
                level=logging.WARNING)
        return None

    def _take(self, k: int) -> Tuple[int, torch.Tensor]:
        self.slots[k][0] = FILLED
        return k, self.slots[k]

    @staticmethod
    def _new_slot(nbytes: int) -> torch.Tensor:
        size = -(-int(nbytes * (1 + HEADROOM)) // GRAIN_BYTES) * GRAIN_BYTES
        slot = torch.empty(size, dtype=torch.uint8).share_memory_()
        slot[0] = FREE
        return slot


_worker_slots: Dict[int, WorkerSlots] = {}


def worker_slots(max_slots: int) -> WorkerSlots:
    """This process's :class:`WorkerSlots` (one per process; a forked child starts its own)."""
    pid = os.getpid()
    if pid not in _worker_slots:
        _worker_slots.clear()  # inherited from the parent by fork
        _worker_slots[pid] = WorkerSlots(max_slots)
    slots = _worker_slots[pid]
    slots.max_slots = max_slots
    return slots


class SlotRef:
    """A filled slot on its way from a worker to the training process: pickles as the
    slot's shared memory (torch sends the handle; the receiver maps each buffer once) and
    the field layout, and unpickles as a :class:`SlotLease`."""

    def __init__(self, pid: int, index: int, slot: torch.Tensor, layout: Layout):
        self.pid, self.index, self.slot, self.layout = pid, index, slot, layout

    def __deepcopy__(self, memo) -> 'SlotRef':
        return self  # one slot (a data element deep-copies its metainfo)

    def __reduce__(self):
        return attach_slot, (self.pid, self.index, self.slot, self.layout)


class SlotLease:
    """The training process's hold on a worker's slot: the batch's fields as views of the
    slot, and the hand-back. Copying a data element shares the lease (it is one slot)."""

    def __init__(self, key: Tuple[int, int], slot: torch.Tensor, layout: Layout):
        self.key, self.layout = key, layout
        self._slot = slot
        self._state = slot[:1].numpy()
        self.released = False

    def views(self) -> Dict[str, torch.Tensor]:
        return slot_views(self._slot, self.layout)

    def release(self) -> None:
        """Hand the slot back to its worker now (nothing may read the views afterwards)."""
        if not self.released:
            self.released = True
            self._state[0] = FREE

    def release_after_copy(self, device: torch.device) -> None:
        """Hand the slot back once the copies queued so far on ``device`` have run (now when
        nothing was queued on a GPU)."""
        if torch.device(device).type != 'cuda':
            self.release()
            return
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(device))
        with _pending_lock:
            _pending.append((event, self))
        release_finished_copies()

    def __deepcopy__(self, memo) -> 'SlotLease':
        return self

    def __reduce__(self):
        raise TypeError('a batch slot lease cannot leave the training process')

    def __del__(self):
        # A batch dropped unread: nothing was queued from its views.
        self.release()


_pending: deque = deque()
_pending_lock = threading.Lock()


def release_finished_copies() -> None:
    """Hand back the slots whose copies to the GPU have run (never waits)."""
    with _pending_lock:
        while _pending and _pending[0][0].query():
            _pending.popleft()[1].release()


class _MappedSlots:
    """The training process's mapped slots: each worker buffer stays mapped (and registered
    with CUDA) while its worker lives, so torch's shared-memory cache hands back the same
    mapping for every later batch in it."""

    def __init__(self):
        self.slots: Dict[Tuple[int, int], torch.Tensor] = {}
        self.registered: Set[int] = set()  # data_ptr of the slots registered with CUDA
        self.lock = threading.Lock()
        self.register_failed = False

    def get(self, key: Tuple[int, int], slot: torch.Tensor) -> torch.Tensor:
        with self.lock:
            known = self.slots.get(key)
            if known is not None and known.data_ptr() == slot.data_ptr():
                return known
            if known is not None:  # the worker replaced the slot with a larger one
                self._forget(key)
            self._forget_dead_workers()
            self.slots[key] = slot
            self._register(slot)
            return slot

    def _register(self, slot: torch.Tensor) -> None:
        if self.register_failed or not torch.cuda.is_initialized():
            return  # a CPU run; or the pin-memory thread copies as it did without slots
        code = torch.cuda.cudart().cudaHostRegister(slot.data_ptr(), slot.numel(), 0)
        if int(code) != 0:
            self.register_failed = True
            print_log(
                f'batch slots: cudaHostRegister failed ({code}); batches are pinned by '
                'copying, as without slots',
                logger='current',
                level=logging.WARNING)
            return
        self.registered.add(slot.data_ptr())

    def _forget(self, key: Tuple[int, int]) -> None:
        slot = self.slots.pop(key)
        if slot.data_ptr() in self.registered:
            self.registered.remove(slot.data_ptr())
            torch.cuda.cudart().cudaHostUnregister(slot.data_ptr())

    def _forget_dead_workers(self) -> None:
        for key in [k for k in self.slots if not _alive(k[0])]:
            self._forget(key)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_mapped = _MappedSlots()


def attach_slot(pid: int, index: int, slot: torch.Tensor, layout: Layout) -> SlotLease:
    """Unpickling a :class:`SlotRef` in the training process: the slot's mapping (registered
    with CUDA the first time) and a lease on it."""
    release_finished_copies()
    return SlotLease((pid, index), _mapped.get((pid, index), slot), layout)
