"""Query sampling for a whole batch at once: each sample's queries come from its own rays,
paths and feature points, with known geometry per sample."""
import math

import torch
from mmdet3d.registry import TASK_UTILS

import gasp  # noqa: F401  (registers the GASP modules)
from gasp.models.samplers.batched_rows import draw_rows


def rays_along(direction, depth, count, time_s=0.5):
    direction = torch.tensor(direction, dtype=torch.float32)
    return dict(
        origins=torch.tensor([[0.0, 0.0, 1.0]]).repeat(count, 1),
        directions=direction.repeat(count, 1),
        depths=torch.full((count, ), depth),
        times_s=torch.full((count, ), time_s))


def test_rows_stay_in_their_block_and_are_uniform():
    rows = draw_rows([3, 5, 0, 2], 40_000, torch.device('cpu'), torch.Generator().manual_seed(0))
    assert rows.shape == (4, 40_000)
    # Blocks start at rows 0, 3, 8 and 8 of the 10-row concatenation.
    for block, start, count in [(0, 0, 3), (1, 3, 5), (3, 8, 2)]:
        local = rows[block] - start
        assert local.min() >= 0 and local.max() < count  # never outside its block
        hist = torch.bincount(local, minlength=count)
        assert (hist - 40_000 / count).abs().max() < 0.04 * 40_000 / count
    assert (rows[2] == 8).all()  # an empty block points at a valid row (callers mask it)


def test_occupancy_batch_queries_come_from_their_own_sample():
    sampler = TASK_UTILS.build(
        dict(
            type='OccupancyQuerySampler',
            num_queries=2000,
            positive_margin=0.3,
            negative_margin=0.3,
            missing_ray_fraction=0.5,
            missing_range=20.0))
    rays = [rays_along([1, 0, 0], 10.0, 7), rays_along([0, 1, 0], 5.0, 11, time_s=1.5)]
    missing = [
        dict(
            origins=torch.zeros(4, 3),
            directions=torch.tensor([[-1.0, 0.0, 0.0]]).repeat(4, 1),
            times_s=torch.full((4, ), 0.7)),
        dict(origins=torch.zeros(0, 3), directions=torch.zeros(0, 3), times_s=torch.zeros(0))
    ]
    queries, labels = sampler.sample_batch(
        rays, torch.Generator().manual_seed(0), missing_rays=missing)
    assert queries.shape == (2, 2000, 4) and labels.shape == (2, 2000)
    assert (labels[:, :1000] == 1).all() and (labels[:, 1000:] == 0).all()
    # Sample 0: along +x; positives in [10, 10.3]; the last 500 negatives on missing rays
    # along -x within 20 m; the other negatives in [0, 9.7].
    x0 = queries[0, :, 0]
    assert x0[:1000].min() >= 10.0 and x0[:1000].max() <= 10.3
    assert x0[1000:1500].min() >= 0.0 and x0[1000:1500].max() <= 9.7
    assert x0[1500:].max() <= 0.0 and x0[1500:].min() >= -20.0
    assert torch.equal(queries[0, 1500:, 3], torch.full((500, ), 0.7))
    assert torch.equal(queries[0, :1500, 3], torch.full((1500, ), 0.5))
    # Sample 1 has no missing rays: all its negatives lie before its own returns along +y.
    y1 = queries[1, :, 1]
    assert (queries[1, :, 0] == 0).all()
    assert y1[:1000].min() >= 5.0 and y1[:1000].max() <= 5.3
    assert y1[1000:].min() >= 0.0 and y1[1000:].max() <= 4.7
    assert torch.equal(queries[1, :, 3], torch.full((2000, ), 1.5))


def test_ego_batch_labels_follow_each_footprint_and_path():
    sampler = TASK_UTILS.build(
        dict(type='EgoQuerySampler', num_queries=3000, band_width=4.0,
             region_xy=[-8.0, -8.0, 8.0, 8.0]))
    # Sample 0 drives +x at 4 m/s for 1 s (3 knots); sample 1 drives +y at 2 m/s for 2 s
    # (5 knots, so the batch pads sample 0's path).
    paths = [
        dict(times_s=torch.tensor([0.0, 0.5, 1.0]),
             xy=torch.tensor([[0., 0.], [2., 0.], [4., 0.]]),
             yaw=torch.zeros(3)),
        dict(times_s=torch.linspace(0.0, 2.0, 5),
             xy=torch.stack([torch.zeros(5), torch.linspace(0.0, 4.0, 5)], 1),
             yaw=torch.full((5, ), math.pi / 2))
    ]
    footprints = [torch.tensor([-1.0, -0.95, 3.87, 0.95]), torch.tensor([-0.5, -1.0, 2.0, 1.0])]
    queries, labels = sampler.sample_batch(paths, footprints, torch.Generator().manual_seed(0))
    x, y, t = queries[..., 0], queries[..., 1], queries[..., 3]
    assert t[0].max() <= 1.0 and t[1].max() <= 2.0 and t[1].max() > 1.5
    inside0 = (x[0] >= 4 * t[0] - 1.0) & (x[0] <= 4 * t[0] + 3.87) & (y[0].abs() <= 0.95)
    # Heading +y: the vehicle's x axis is the world's y axis.
    inside1 = (y[1] >= 2 * t[1] - 0.5) & (y[1] <= 2 * t[1] + 2.0) & (x[1].abs() <= 1.0)
    assert torch.equal(labels[0].bool(), inside0)
    assert torch.equal(labels[1].bool(), inside1)
    assert labels[:, :1000].all()  # the first third is drawn inside each footprint


def test_empty_feature_targets_name_the_sample():
    from mmdet3d.registry import MODELS
    from mmengine.structures import BaseDataElement
    preprocessor = MODELS.build(
        dict(type='GASPDataPreprocessor', occupancy_sampler=None, num_feature_queries=4))
    sample = BaseDataElement(
        metainfo=dict(log_id='log7', timestamp_ns=123),
        feature_targets=BaseDataElement(
            points=torch.zeros(0, 3), times_s=torch.zeros(0), features=torch.zeros(0, 8)))
    try:
        preprocessor.sample_targets([sample])
    except ValueError as error:
        assert 'log log7 @ 123' in str(error)
    else:
        raise AssertionError('an empty feature target set must be refused')
