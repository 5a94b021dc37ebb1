"""Packed GASP samples are pinned by a ``pin_memory=True`` dataloader (the configs' default), so
the data preprocessor's ``non_blocking`` copy does not stall the host."""
import numpy as np
import pytest
import torch
from mmdet3d.registry import MODELS, TRANSFORMS
from test_collate import packed_sample

import gasp  # noqa: F401  (registers the GASP modules)
from gasp.datasets.collate import gasp_collate
from gasp.structures import PinnableDataElement


class FakePinnable:
    """Stands in for a CPU tensor (pinning needs a GPU): records that it was pinned."""

    def __init__(self, value):
        self.value, self.pinned = value, False

    def pin_memory(self):
        out = FakePinnable(self.value)
        out.pinned = True
        return out


def test_pin_memory_reaches_nested_fields_and_keeps_the_rest():
    inner = PinnableDataElement(depths=FakePinnable(3))
    sample = PinnableDataElement(metainfo=dict(log_id='log1', timestamp_ns=5))
    sample.rays = inner
    sample.footprint = FakePinnable(7)
    sample.note = 'kept'
    pinned = sample.pin_memory()
    assert pinned.rays.depths.pinned and pinned.rays.depths.value == 3
    assert pinned.footprint.pinned and pinned.footprint.value == 7
    assert pinned.note == 'kept'
    assert pinned.metainfo == dict(log_id='log1', timestamp_ns=5)
    assert not sample.footprint.pinned  # the original is left as it was


def test_packed_samples_are_pinnable_all_the_way_down():
    pack = TRANSFORMS.build(dict(type='PackGASPInputs'))
    out = pack(
        dict(
            points=np.zeros((4, 5), np.float32),
            rays=dict(depths=np.ones(3, np.float32)),
            ego_footprint=np.array([-1.0, -1.0, 4.0, 1.0], np.float32),
            log_id='log1',
            timestamp_ns=5))
    sample = out['data_samples']
    assert isinstance(sample, PinnableDataElement)
    assert isinstance(sample.rays, PinnableDataElement)
    assert torch.equal(sample.rays.depths, torch.ones(3))
    # torch's pin-memory thread pins any object with a pin_memory method.
    assert hasattr(sample, 'pin_memory') and hasattr(sample.rays, 'pin_memory')


DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])


@pytest.mark.parametrize('device', DEVICES)
def test_the_copy_stream_delivers_the_batch_the_compute_stream_reads(device):
    """On a GPU the data preprocessor copies on its own stream; the compute stream waits for
    it, so a kernel launched right after reads the copied values (on CPU: cast_data)."""
    preprocessor = MODELS.build(
        dict(type='GASPDataPreprocessor', occupancy_sampler=None, bev_input=False)).to(device)
    samples = [packed_sample(200000, 50000, 'a'), packed_sample(1000, 300, 'b')]
    batch = gasp_collate(samples)
    if device == 'cuda':
        batch = {k: (v.pin_memory() if hasattr(v, 'pin_memory') else v) for k, v in batch.items()}
        torch.cuda._sleep(20_000_000)  # the compute stream is busy: the copy runs beside it
    moved = preprocessor.to_device(batch)
    points = moved['packed'].points
    doubled = points * 2  # on the compute stream, queued right after the copy
    assert points.device.type == device
    assert torch.equal(doubled.cpu(), batch['packed'].points * 2)
    if device == 'cuda':
        assert preprocessor._copy_streams  # a stream of its own was used
