"""Batch collation that sends few, large tensors from the loader workers to the training
process.

With ``pseudo_collate`` a batch of 8 GASP samples crosses the process boundary as ~120
tensors, each unpickled (a shared-memory handle received and mapped) by the dataloader's
pin-memory thread in the training process while it holds the GIL, then pinned and copied to
the GPU one by one. That thread competes with the main thread, which launches the GPU work:
on an H100 host the GPU sat idle for tens of milliseconds a step. :func:`gasp_collate`
concatenates each tensor field over the batch in the worker (one tensor per field, ~15 a
batch); :func:`unpack_batch`, called by the data preprocessor after the copy to the GPU,
splits them back into per-sample views, so models see exactly what ``pseudo_collate`` gives.

In a dataloader worker the packed fields are written into one of the worker's batch slots
(:mod:`.batch_slots`): shared memory that the training process maps and pins once, so the
batch is not copied again on the host on its way to the GPU.
"""
import os
from typing import Dict, List, Sequence, Tuple

import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import FUNCTIONS
from mmengine.structures import BaseDataElement

from ..structures import PinnableDataElement
from .batch_slots import SlotLease, SlotRef, plan_layout, slot_views, worker_slots

#: Key of the packed fields in a collated batch.
PACKED_KEY = 'packed'
#: Metainfo key of the packed fields' batch slot.
SLOT_KEY = 'slot'


class SlotPackedElement(PinnableDataElement):
    """Packed fields that live in a batch slot. Pickled without its tensors (the slot in its
    metainfo carries them); unpickled in the training process with its fields as views of
    the slot, which the pin-memory thread finds already pinned."""

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for name in self._data_fields:
            state.pop(name, None)
        state['_data_fields'] = set()
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        lease = self.metainfo.get(SLOT_KEY)
        if isinstance(lease, SlotLease):
            self.set_data(lease.views())


def _tensor_fields(element: BaseDataElement,
                   prefix: Tuple[str, ...] = ()) -> Dict[tuple, torch.Tensor]:
    """Tensor fields of a data element, nested elements flattened to key paths."""
    fields = {}
    for key, value in element.items():
        if isinstance(value, torch.Tensor):
            fields[prefix + (key, )] = value
        elif isinstance(value, BaseDataElement):
            fields.update(_tensor_fields(value, prefix + (key, )))
    return fields


def _without_tensors(element: BaseDataElement) -> BaseDataElement:
    """A copy of the element with its metainfo and non-tensor fields (nested elements
    likewise), to be filled again by :func:`unpack_batch`."""
    shell = element.__class__(metainfo=element.metainfo)
    for key, value in element.items():
        if isinstance(value, BaseDataElement):
            shell.set_field(_without_tensors(value), key)
        elif not isinstance(value, torch.Tensor):
            shell.set_field(value, key)
    return shell


@FUNCTIONS.register_module()
def gasp_collate(data_batch: Sequence[dict], slots_per_worker: int = 3) -> dict:
    """Collate ``PackGASPInputs`` samples into ``inputs``, ``data_samples`` (metainfo and
    non-tensor fields) and ``packed``: one tensor per field concatenated over the batch
    along the first dimension, with the per-sample lengths in its metainfo.

    Fields that are not in every sample with the same dtype and trailing shape stay in the
    data samples as ``pseudo_collate`` leaves them.

    Args:
        data_batch: the samples.
        slots_per_worker: batch slots a dataloader worker keeps (:mod:`.batch_slots`; the
            dataloader's ``prefetch_factor`` plus one covers steady training); 0 sends every
            batch as ordinary shared tensors. Unused outside a worker.
    """
    batch = pseudo_collate(list(data_batch))
    samples: List[BaseDataElement] = batch['data_samples']
    per_sample = [_tensor_fields(s) for s in samples]
    keys = sorted(k for k in set.intersection(*(set(f) for f in per_sample))
                  if _concatenable([f[k] for f in per_sample]))
    fields = {f'field{i}': [f[key] for f in per_sample] for i, key in enumerate(keys)}
    lengths = {name: (key, [len(p) for p in fields[name]]) for name, key in zip(fields, keys)}
    points = batch['inputs'].get('points')
    if isinstance(points, list) and points and _concatenable(points):
        fields['points'] = points
        lengths['points'] = (('inputs', 'points'), [len(p) for p in points])
        batch['inputs']['points'] = None
    batch[PACKED_KEY] = _pack(fields, lengths, slots_per_worker)
    shells = []
    for sample, per in zip(samples, per_sample):
        shell = _without_tensors(sample)
        for key, value in per.items():  # fields not packed go back as they were
            if key not in keys:
                _set_path(shell, key, value)
        shells.append(shell)
    batch['data_samples'] = shells
    return batch


def _pack(fields: Dict[str, List[torch.Tensor]], lengths: dict,
          slots_per_worker: int) -> PinnableDataElement:
    """The concatenated fields: in a batch slot inside a dataloader worker when one is
    free, else as ordinary tensors."""
    if slots_per_worker > 0 and fields and torch.utils.data.get_worker_info() is not None:
        layout, nbytes = plan_layout(fields)
        slots = worker_slots(slots_per_worker)
        taken = slots.acquire(nbytes)
        if taken is not None:
            index, slot = taken
            views = slot_views(slot, layout)
            for name, parts in fields.items():
                torch.cat(parts, out=views[name])
            packed = SlotPackedElement(metainfo=dict(lengths=lengths))
            packed.set_metainfo({SLOT_KEY: SlotRef(os.getpid(), index, slot, layout)})
            packed.set_data(views)  # dropped when pickled, rebuilt from the slot
            return packed
    packed = PinnableDataElement(metainfo=dict(lengths=lengths))
    packed.set_data({name: torch.cat(parts) for name, parts in fields.items()})
    return packed


def _concatenable(parts) -> bool:
    """Tensors of at least one dimension, one dtype and one trailing shape."""
    return all(isinstance(p, torch.Tensor) and p.dim() > 0 for p in parts) and len(
        {(p.dtype, tuple(p.shape[1:])) for p in parts}) == 1


def _set_path(element: BaseDataElement, path: tuple, value) -> None:
    for key in path[:-1]:
        if key not in element:
            element.set_field(PinnableDataElement(), key)
        element = element.get(key)
    element.set_field(value, path[-1])


def unpack_batch(batch: dict) -> dict:
    """Undo :func:`gasp_collate` (on whatever device the packed tensors are now): per-sample
    views of each packed field go back into the data samples and ``inputs['points']``.
    Batches without packed fields are returned as they are."""
    packed = batch.pop(PACKED_KEY, None)
    if packed is None:
        return batch
    lengths = packed.metainfo['lengths']
    lease = packed.metainfo.get(SLOT_KEY)
    fields = {name: packed.get(name) for name in lengths}
    if isinstance(lease, SlotLease):
        device = next(iter(fields.values())).device
        if device.type == 'cpu':  # still the slot's memory: the worker will overwrite it
            fields = {name: value.clone() for name, value in fields.items()}
        lease.release_after_copy(device)
    samples = batch['data_samples']
    for name, (path, sizes) in lengths.items():
        parts = fields[name].split(sizes)
        if path == ('inputs', 'points'):
            batch['inputs']['points'] = list(parts)
            continue
        for sample, part in zip(samples, parts):
            _set_path(sample, path, part)
    return batch


def detach_batch(batch: dict) -> dict:
    """A collated batch that can be kept and fed again (a benchmark's in-memory steps): its
    packed fields copied out of the batch slot (into pinned memory where they were pinned).
    The slot goes back with the original batch."""
    packed = batch.get(PACKED_KEY)
    if packed is None or not isinstance(packed.metainfo.get(SLOT_KEY), SlotLease):
        return batch
    own = PinnableDataElement(metainfo=dict(lengths=packed.metainfo['lengths']))
    own.set_data({
        name: torch.empty_like(value, pin_memory=value.is_pinned()).copy_(value)
        for name, value in packed.items()
    })
    return {**batch, PACKED_KEY: own}
