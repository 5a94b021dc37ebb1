"""Data elements that a dataloader can pin, so that the batch reaches the GPU without a stall,
and the name of a data sample in messages."""
from typing import Optional

from mmengine.structures import BaseDataElement


class PinnableDataElement(BaseDataElement):
    """A :class:`BaseDataElement` with ``pin_memory()``.

    ``torch.utils.data``'s pin-memory thread pins tensors, mappings, sequences and objects
    that have a ``pin_memory`` method; a plain ``BaseDataElement`` is none of these, so its
    tensors stayed in pageable memory and the copy to the GPU ran at pageable speed and
    blocked the host. This class pins every tensor field (and nested pinnable elements);
    the metainfo and other fields are shared.
    """

    def pin_memory(self) -> 'PinnableDataElement':
        pinned = self.new()
        for key, value in self.items():
            if hasattr(value, 'pin_memory'):
                pinned.set_data({key: value.pin_memory()})
        return pinned


def sample_name(sample) -> Optional[str]:
    """``log <id> @ <timestamp_ns>`` of a data sample (from its metainfo, see
    ``PackGASPInputs``), ``sample <idx>`` without a log id, None without either."""
    meta = sample.metainfo if hasattr(sample, 'metainfo') else {}
    if 'log_id' in meta:
        return f"log {meta['log_id']} @ {meta.get('timestamp_ns')}"
    if 'sample_idx' in meta:
        return f"sample {meta['sample_idx']}"
    return None
