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
"""
from typing import Dict, List, Sequence, Tuple

import torch
from mmengine.dataset import pseudo_collate
from mmengine.registry import FUNCTIONS
from mmengine.structures import BaseDataElement

from ..structures import PinnableDataElement

#: Key of the packed fields in a collated batch.
PACKED_KEY = 'packed'


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
def gasp_collate(data_batch: Sequence[dict]) -> dict:
    """Collate ``PackGASPInputs`` samples into ``inputs``, ``data_samples`` (metainfo and
    non-tensor fields) and ``packed``: one tensor per field concatenated over the batch
    along the first dimension, with the per-sample lengths in its metainfo.

    Fields that are not in every sample with the same dtype and trailing shape stay in the
    data samples as ``pseudo_collate`` leaves them.
    """
    batch = pseudo_collate(list(data_batch))
    samples: List[BaseDataElement] = batch['data_samples']
    per_sample = [_tensor_fields(s) for s in samples]
    keys = sorted(k for k in set.intersection(*(set(f) for f in per_sample))
                  if _concatenable([f[k] for f in per_sample]))
    packed = PinnableDataElement()
    lengths = {}
    for i, key in enumerate(keys):
        parts = [f[key] for f in per_sample]
        packed.set_field(torch.cat(parts), f'field{i}')
        lengths[f'field{i}'] = (key, [len(p) for p in parts])
    points = batch['inputs'].get('points')
    if isinstance(points, list) and points and _concatenable(points):
        packed.set_field(torch.cat(points), 'points')
        lengths['points'] = (('inputs', 'points'), [len(p) for p in points])
        batch['inputs']['points'] = None
    packed.set_metainfo(dict(lengths=lengths))
    shells = []
    for sample, fields in zip(samples, per_sample):
        shell = _without_tensors(sample)
        for key, value in fields.items():  # fields not packed go back as they were
            if key not in keys:
                _set_path(shell, key, value)
        shells.append(shell)
    batch['data_samples'] = shells
    batch[PACKED_KEY] = packed
    return batch


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
    samples = batch['data_samples']
    for name, (path, sizes) in lengths.items():
        parts = packed.get(name).split(sizes)
        if path == ('inputs', 'points'):
            batch['inputs']['points'] = list(parts)
            continue
        for sample, part in zip(samples, parts):
            _set_path(sample, path, part)
    return batch
