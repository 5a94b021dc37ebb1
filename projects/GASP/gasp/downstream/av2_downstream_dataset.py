"""AV2 samples for downstream fine-tuning, optionally with a fraction of the labels."""
import math
from typing import List

import numpy as np
from mmdet3d.registry import DATASETS

from ..datasets import AV2OccDataset


def label_fraction_indices(num_samples: int, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a deterministic subset of ``ceil(fraction * num_samples)`` samples.

    The subset depends only on (num_samples, fraction, seed), and the subsets of one seed are
    nested: the 10 % subset lies inside the 50 % subset.

    Raises:
        ValueError: ``fraction`` outside (0, 1].
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f'label_fraction must be in (0, 1], got {fraction}')
    keep = max(1, math.ceil(fraction * num_samples - 1e-9)) if num_samples else 0
    order = np.random.default_rng(seed).permutation(num_samples)
    return np.sort(order[:keep])


@DATASETS.register_module()
class AV2DownstreamDataset(AV2OccDataset):
    """:class:`AV2OccDataset` that keeps a deterministic fraction of its samples.

    The samples come from the same info files as pre-training (``tools/create_data.py av2``,
    whose logs table records each log's ``annotations`` file and ``map_dir``); the label
    transforms of :mod:`gasp.downstream.transforms` make the task labels.

    Args:
        label_fraction: keep this fraction of the samples (after ``max_samples``), chosen by
            ``label_seed`` (see :func:`label_fraction_indices`). 1.0 keeps all.
        label_seed: seed of the subset.
        **kwargs: :class:`AV2OccDataset` arguments.
    """

    def __init__(self, *args, label_fraction: float = 1.0, label_seed: int = 0, **kwargs):
        if not 0.0 < label_fraction <= 1.0:
            raise ValueError(f'AV2DownstreamDataset: label_fraction must be in (0, 1], got '
                             f'{label_fraction}')
        self.label_fraction = label_fraction
        self.label_seed = label_seed
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        data_list = super().load_data_list()
        if self.label_fraction >= 1.0:
            return data_list
        keep = label_fraction_indices(len(data_list), self.label_fraction, self.label_seed)
        return [data_list[i] for i in keep]
