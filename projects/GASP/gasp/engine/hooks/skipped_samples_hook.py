"""Count and log the samples the dataset skipped because they failed to load."""
import logging

import torch
from mmdet3d.registry import HOOKS
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log

from .deferred_runtime_info_hook import logger_interval, logger_reads_now


def load_failures(data_batch) -> list:
    """The ``load_failures`` records of a batch's data samples (see ``AV2OccDataset``)."""
    samples = data_batch.get('data_samples', []) if isinstance(data_batch, dict) else []
    found = []
    for sample in samples if isinstance(samples, (list, tuple)) else [samples]:
        found += getattr(sample, 'metainfo', {}).get('load_failures', [])
    return found


@HOOKS.register_module()
class SkippedSamplesHook(Hook):
    """Logs every sample skipped by ``AV2OccDataset(on_load_error='skip')``.

    The skips happen in the data-loading workers; each one travels to the training process
    in the metainfo of the sample that replaced it. This hook logs each (log id, timestamp,
    error) and keeps the total over all ranks in the message-hub scalar
    ``train/skipped_samples`` (shown by the logger next to the losses). In distributed runs
    the ranks' counts are summed when the logger reads them (one all-reduce per logging
    interval rather than a sync per step).
    """

    priority = 'NORMAL'

    def __init__(self):
        self.total = 0
        self._unsummed = 0
        self._interval = None

    def before_train(self, runner) -> None:
        self._interval = logger_interval(runner)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        failures = load_failures(data_batch)
        for failure in failures:
            print_log(
                f"skipped sample {failure['sample_idx']} (log {failure['log_id']} @ "
                f"{failure['timestamp_ns']}): {failure['error']}",
                logger='current',
                level=logging.WARNING)
        self._unsummed += len(failures)
        if get_world_size() == 1:
            self.total, self._unsummed = self.total + self._unsummed, 0
        elif logger_reads_now(self, runner, batch_idx, self._interval):
            value = torch.tensor([float(self._unsummed)])
            all_reduce(value, op='sum')
            self.total, self._unsummed = self.total + int(value.item()), 0
        runner.message_hub.update_scalar('train/skipped_samples', self.total)
