"""Data elements that a dataloader can pin, so that the batch reaches the GPU without a stall."""
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
