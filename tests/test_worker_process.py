"""Dataloader worker settings: applied once in each worker process, never in the main one."""
import os

import torch
from torch.utils.data import DataLoader, Dataset

from gasp.datasets.worker_process import configure_worker_process


class ReportsItsProcess(Dataset):

    def __len__(self):
        return 2

    def __getitem__(self, index):
        configure_worker_process(nice=3, reserve_cores_per_rank=1, malloc_pad_mib=64)
        configure_worker_process(nice=3)  # a second call changes nothing
        return torch.tensor([os.nice(0)] + sorted(os.sched_getaffinity(0)))


def test_workers_get_lower_priority_and_leave_the_first_cores(monkeypatch):
    monkeypatch.setenv('LOCAL_WORLD_SIZE', '1')
    nice, cores = os.nice(0), sorted(os.sched_getaffinity(0))
    configure_worker_process(nice=3, reserve_cores_per_rank=1)  # main process: no-op
    assert os.nice(0) == nice and sorted(os.sched_getaffinity(0)) == cores
    loader = DataLoader(ReportsItsProcess(), batch_size=None, num_workers=1)
    reports = list(loader)
    assert len(reports) == 2
    expected = cores[1:] if len(cores) > 1 else cores  # one core: nothing to reserve
    for report in reports:
        assert report[0].item() == nice + 3
        assert report[1:].tolist() == expected
