"""gasp_collate sends each tensor field once per batch; unpack_batch gives back exactly what
pseudo_collate gives."""
import numpy as np
import torch
from mmdet3d.registry import MODELS, TRANSFORMS
from mmengine.dataset import pseudo_collate

import gasp  # noqa: F401  (registers the GASP modules)
from gasp.datasets.collate import gasp_collate, unpack_batch


def packed_sample(num_points, num_rays, log_id, missing=True):
    rng = np.random.default_rng(num_points)
    results = dict(
        points=rng.normal(size=(num_points, 5)).astype(np.float32),
        rays=dict(
            origins=rng.normal(size=(num_rays, 3)).astype(np.float32),
            depths=rng.uniform(1, 9, num_rays).astype(np.float32),
            sweep_index=np.arange(num_rays, dtype=np.int16)),
        ego_footprint=np.array([-1.0, -0.9, 3.9, 0.9], np.float32),
        log_id=log_id,
        timestamp_ns=7)
    if missing:
        results['missing_rays'] = dict(times_s=np.full(num_rays // 2, 0.5, np.float32))
    return TRANSFORMS.build(dict(type='PackGASPInputs'))(results)


def assert_same_batch(got, want):
    assert len(got['inputs']['points']) == len(want['inputs']['points'])
    for a, b in zip(got['inputs']['points'], want['inputs']['points']):
        assert torch.equal(a, b)
    for a, b in zip(got['data_samples'], want['data_samples']):
        assert a.metainfo == b.metainfo
        assert set(a.keys()) == set(b.keys())
        for key in b.keys():
            va, vb = a.get(key), b.get(key)
            if isinstance(vb, torch.Tensor):
                assert torch.equal(va, vb) and va.dtype == vb.dtype
            else:
                assert set(va.keys()) == set(vb.keys())
                for k in vb.keys():
                    assert torch.equal(va.get(k), vb.get(k)), (key, k)


def test_packed_batch_has_one_tensor_per_field_and_unpacks_to_the_pseudo_collate_batch():
    samples = [packed_sample(10, 6, 'a'), packed_sample(3, 4, 'b'), packed_sample(0, 2, 'c')]
    batch = gasp_collate(samples)
    packed = batch['packed']
    # points + rays (3 fields) + footprint + missing rays (1 field)
    assert len(list(packed.keys())) == 6
    assert packed.points.shape == (13, 5)
    assert all(not isinstance(v, torch.Tensor) for s in batch['data_samples'] for v in s.values())
    assert_same_batch(unpack_batch(batch), pseudo_collate(samples))


def test_fields_missing_from_some_samples_stay_per_sample():
    samples = [packed_sample(4, 6, 'a'), packed_sample(5, 4, 'b', missing=False)]
    batch = gasp_collate(samples)
    assert 'missing_rays' in batch['data_samples'][0]
    assert 'missing_rays' not in batch['data_samples'][1]
    assert_same_batch(unpack_batch(batch), pseudo_collate(samples))


def test_data_preprocessor_takes_packed_and_pseudo_collated_batches_alike():
    preprocessor = MODELS.build(
        dict(
            type='GASPDataPreprocessor',
            point_cloud_range=(-4.0, -4.0, -2.0, 4.0, 4.0, 2.0),
            voxel_size=(1.0, 1.0, 1.0),
            occupancy_sampler=None))
    samples = [packed_sample(10, 6, 'a'), packed_sample(3, 4, 'b')]
    packed = preprocessor(gasp_collate(samples))
    plain = preprocessor(pseudo_collate(samples))
    assert torch.equal(packed['inputs']['bev'], plain['inputs']['bev'])
    depths = samples[1]['data_samples'].rays.depths
    assert torch.equal(packed['data_samples'][1].rays.depths, depths)


def test_fields_of_different_trailing_shape_or_dtype_stay_per_sample():
    samples = [packed_sample(4, 6, 'a'), packed_sample(5, 4, 'b')]
    samples[1]['data_samples'].rays.origins = torch.zeros(4, 2)  # other width
    samples[1]['data_samples'].rays.depths = torch.zeros(4, dtype=torch.float64)
    batch = gasp_collate(samples)
    for sample in batch['data_samples']:
        assert {'origins', 'depths'} <= set(sample.rays.keys())
        assert 'sweep_index' not in sample.rays  # this one is packed
    assert_same_batch(unpack_batch(batch), pseudo_collate(samples))
