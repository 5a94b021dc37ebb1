"""Batch slots: workers collate into shared buffers that the training process maps once; a
slot is reused only after the training process hands it back, and the batches are exactly
gasp_collate's."""
import copy
import gc
import pickle
from multiprocessing.reduction import ForkingPickler

import pytest
import torch
import torch.multiprocessing  # noqa: F401  (registers the tensor reductions)
from mmengine.dataset import pseudo_collate
from test_collate import assert_same_batch, packed_sample
from torch.utils.data import DataLoader

import gasp  # noqa: F401  (registers the GASP modules)
from gasp.datasets import batch_slots
from gasp.datasets.batch_slots import (ALIGN_BYTES, FILLED, FREE, GRAIN_BYTES, HEADER_BYTES,
                                       SlotLease, SlotRef, WorkerSlots, plan_layout, slot_views)
from gasp.datasets.collate import SLOT_KEY, detach_batch, gasp_collate, unpack_batch

DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])


class Samples(torch.utils.data.Dataset):

    def __len__(self):
        return 48

    def __getitem__(self, i):
        return packed_sample(500 + 37 * i, 40 + i, f'log{i}')


def expected(dataset, batch_index, batch_size=4):
    start = batch_index * batch_size
    return pseudo_collate([dataset[i] for i in range(start, start + batch_size)])


def loader(dataset, slots_per_worker=3, **kwargs):
    return DataLoader(
        dataset,
        batch_size=4,
        num_workers=2,
        collate_fn=lambda b: gasp_collate(b, slots_per_worker=slots_per_worker),
        **kwargs)


def test_layout_aligns_each_field_after_the_header_and_views_share_the_slot():
    fields = dict(
        a=[torch.ones(3, 5), torch.ones(2, 5)],  # 100 bytes
        b=[torch.arange(7, dtype=torch.int16)],  # 14 bytes
        c=[torch.zeros(1, 2, dtype=torch.float16)])
    layout, nbytes = plan_layout(fields)
    assert [(n, o, d, s) for n, o, d, s in layout] == [
        ('a', HEADER_BYTES, torch.float32, (5, 5)),
        ('b', HEADER_BYTES + 128, torch.int16, (7, )),
        ('c', HEADER_BYTES + 192, torch.float16, (1, 2)),
    ]
    assert nbytes == HEADER_BYTES + 256 and nbytes % ALIGN_BYTES == 0
    slot = torch.zeros(nbytes, dtype=torch.uint8)
    views = slot_views(slot, layout)
    views['b'].copy_(torch.arange(7, dtype=torch.int16) - 3)
    assert torch.equal(slot[HEADER_BYTES + 128:HEADER_BYTES + 142].view(torch.int16),
                       torch.arange(7, dtype=torch.int16) - 3)
    assert slot[0] == 0  # the header is not a field


def test_worker_slots_reuse_free_slots_grow_small_ones_and_stop_at_the_cap():
    slots = WorkerSlots(max_slots=2)
    k0, s0 = slots.acquire(1000)
    k1, s1 = slots.acquire(1000)
    assert (k0, k1) == (0, 1) and s0[0] == FILLED and s1[0] == FILLED
    assert len(s0) == GRAIN_BYTES and s0.is_shared()  # rounded up, with headroom
    assert slots.acquire(1000) is None and slots.fallbacks == 1  # both in the trainer's hands
    s1[0] = FREE  # handed back
    k, s = slots.acquire(5000)
    assert k == 1 and s.data_ptr() == s1.data_ptr()
    s0[0] = FREE
    k, big = slots.acquire(GRAIN_BYTES + 1)  # slot 0 is free but too small: replaced
    assert k == 0 and len(big) == 2 * GRAIN_BYTES and slots.slots[0] is big


def test_a_lease_hands_the_slot_back_when_released_or_dropped_unread():
    slots = WorkerSlots(max_slots=1)
    fields = dict(x=[torch.arange(6.0).view(3, 2)])
    layout, nbytes = plan_layout(fields)
    index, slot = slots.acquire(nbytes)
    slot_views(slot, layout)['x'].copy_(fields['x'][0])
    lease = pickle.loads(ForkingPickler.dumps(SlotRef(12345, index, slot, layout)))
    assert isinstance(lease, SlotLease) and slot[0] == FILLED
    assert torch.equal(lease.views()['x'], fields['x'][0])
    assert lease.views()['x'].data_ptr() == slot.data_ptr() + HEADER_BYTES  # no copy
    assert copy.deepcopy(lease) is lease  # data elements deep-copy their metainfo
    lease.release()
    assert slot[0] == FREE
    slot[0] = FILLED
    lease = pickle.loads(ForkingPickler.dumps(SlotRef(12345, index, slot, layout)))
    del lease
    gc.collect()
    assert slot[0] == FREE
    with pytest.raises(TypeError, match='cannot leave the training process'):
        pickle.dumps(pickle.loads(ForkingPickler.dumps(SlotRef(12345, index, slot, layout))))
    slot[0] = FREE


@pytest.mark.parametrize('device', DEVICES)
def test_worker_batches_come_through_reused_slots_and_unpack_to_the_pseudo_collate_batch(device):
    dataset = Samples()
    keys, slot_batches = set(), 0
    for k, batch in enumerate(loader(dataset, pin_memory=device == 'cuda')):
        lease = batch['packed'].metainfo.get(SLOT_KEY)
        if lease is not None:
            slot_batches += 1
            keys.add(lease.key)
            if device == 'cuda':  # mapped and registered once: nothing left to pin
                assert all(batch['packed'].get(n).is_pinned() for n in batch['packed'].keys())
        moved = {
            key: (value.to(device, non_blocking=True) if hasattr(value, 'to') else value)
            for key, value in batch.items()
        }
        moved['inputs'] = dict(points=None)
        got = unpack_batch(moved)
        if device == 'cuda':
            torch.cuda.synchronize()
            got['inputs']['points'] = [p.cpu() for p in got['inputs']['points']]
            for sample in got['data_samples']:
                for key in sample.keys():
                    sample.set_field(sample.get(key).cpu(), key)
        assert_same_batch(got, expected(dataset, k))
    assert slot_batches >= 10  # the first of each worker's batches cannot fall back
    assert len(keys) <= 2 * 3  # 12 batches through at most 3 slots per worker
    if device == 'cuda':
        batch_slots.release_finished_copies()


def test_batches_held_by_the_trainer_are_never_overwritten():
    """One slot per worker and every batch kept unread: the worker cannot reuse its slot, so
    later batches fall back to ordinary tensors, and the held batches stay intact."""
    dataset = Samples()
    held = list(loader(dataset, slots_per_worker=1))
    leases = [b['packed'].metainfo.get(SLOT_KEY) for b in held]
    assert sum(lease is not None for lease in leases) == 2  # one per worker
    for k, batch in enumerate(held):
        assert_same_batch(unpack_batch(batch), expected(dataset, k))
    assert all(lease is None or lease.released for lease in leases)


def test_cpu_unpack_copies_out_of_the_slot_before_handing_it_back():
    dataset = Samples()
    batch = next(iter(loader(dataset)))
    lease = batch['packed'].metainfo[SLOT_KEY]
    slot = lease._slot
    got = unpack_batch(batch)
    assert lease.released and slot[0] == FREE
    slot[HEADER_BYTES:].fill_(0)  # the worker writes its next batch
    assert_same_batch(got, expected(dataset, 0))


def test_a_detached_batch_survives_its_slot_being_reused():
    dataset = Samples()
    batch = next(iter(loader(dataset)))
    slot = batch['packed'].metainfo[SLOT_KEY]._slot
    kept = detach_batch(batch)
    assert SLOT_KEY not in kept['packed'].metainfo
    unpack_batch(batch)  # hands the slot back
    slot[HEADER_BYTES:].fill_(0)
    assert_same_batch(unpack_batch(kept), expected(dataset, 0))
