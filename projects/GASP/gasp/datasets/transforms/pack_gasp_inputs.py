"""Pack a GASP sample into model inputs and a data sample (mmdet3d's packer rejects rays)."""
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmdet3d.registry import TRANSFORMS

from ...structures import PinnableDataElement

META_KEYS = ('sample_idx', 'log_id', 'timestamp_ns', 'past_timestamps_ns', 'future_timestamps_ns',
             'yaw_aug')


def _to_tensor(value):
    """Arrays become tensors; dicts of arrays become data elements (which move to the
    device with the batch and are pinned by a ``pin_memory=True`` dataloader)."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, dict):
        return PinnableDataElement(**{k: _to_tensor(v) for k, v in value.items()})
    return value


@TRANSFORMS.register_module()
class PackGASPInputs(BaseTransform):
    """Returns ``dict(inputs=dict(points), data_samples=PinnableDataElement)``.

    The data sample carries the targets as tensors (``rays``, ``ego_path``,
    ``ego_footprint``, ``missing_rays``, ``feature_targets`` when present; a dict of
    arrays becomes a nested data element) and the metainfo keys
    :data:`META_KEYS`, so that errors and logs can name the log and timestamp.
    """

    TARGET_KEYS = ('rays', 'ego_path', 'ego_footprint', 'missing_rays', 'feature_targets')

    def transform(self, results: dict) -> dict:
        sample = PinnableDataElement(metainfo={k: results[k] for k in META_KEYS if k in results})
        for key in self.TARGET_KEYS:
            if key in results:
                sample.set_field(_to_tensor(results[key]), key)
        return dict(inputs=dict(points=_to_tensor(results['points'])), data_samples=sample)
