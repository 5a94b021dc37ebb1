"""The GASP model, its data preprocessor and query samplers on hand-made batches."""
import math

import pytest
import torch
from mmdet3d.registry import MODELS, TASK_UTILS
from mmengine.structures import BaseDataElement

import gasp  # noqa: F401

RANGE = [-8.0, -8.0, -2.0, 8.0, 8.0, 2.0]


def small_model_cfg(heads=dict(occupancy=1, ego=1, feature=4)):
    losses = dict(occupancy=dict(type='OccupancyBCELoss'))
    if 'ego' in heads:
        losses['ego'] = dict(type='OccupancyBCELoss')
    if 'feature' in heads:
        losses['feature'] = dict(type='FeatureDistillationLoss')
    return dict(
        type='GASP',
        data_preprocessor=dict(
            type='GASPDataPreprocessor',
            point_cloud_range=RANGE,
            voxel_size=[0.5, 0.5, 1.0],
            num_past_sweeps=2,
            past_interval_s=0.2,
            occupancy_sampler=dict(type='OccupancyQuerySampler', num_queries=64),
            ego_sampler=(dict(
                type='EgoQuerySampler', num_queries=30, region_xy=[-8.0, -8.0, 8.0, 8.0])
                         if 'ego' in heads else None),
            num_feature_queries=16 if 'feature' in heads else 0),
        backbone=dict(
            type='BEVResNetFPN',
            in_channels=8,
            out_channels=16,
            stem_channels=(8, 8),
            stage_channels=(8, 8, 8)),
        decoder=dict(
            type='ImplicitOccupancyDecoder',
            in_channels=16,
            point_cloud_range=RANGE,
            time_range=[0.0, 1.0],
            hidden_channels=32,
            num_res_blocks=1,
            heads=heads),
        losses=losses)


def fake_sample(num_rays=20, depth=5.0):
    """Rays from (0, 0, 1) along +x, returns at ``depth`` m; a straight ego path."""
    gen = torch.Generator().manual_seed(1)
    points = torch.cat([
        torch.rand(100, 3, generator=gen) * 10 - 5,
        torch.rand(100, 1),
        torch.tensor([-0.2, 0.0]).repeat(50)[:, None]
    ],
                       dim=1)
    rays = BaseDataElement(
        origins=torch.tensor([[0., 0., 1.]]).repeat(num_rays, 1),
        directions=torch.tensor([[1., 0., 0.]]).repeat(num_rays, 1),
        depths=torch.full((num_rays, ), depth),
        times_s=torch.linspace(0.2, 1.0, num_rays))
    path = BaseDataElement(
        times_s=torch.tensor([0.0, 0.5, 1.0]),
        xy=torch.tensor([[0., 0.], [2., 0.], [4., 0.]]),
        yaw=torch.zeros(3))
    feats = BaseDataElement(
        points=torch.rand(10, 3, generator=gen) * 4,
        times_s=torch.full((10, ), 0.5),
        features=torch.randn(10, 4, generator=gen).half())
    sample = BaseDataElement(
        metainfo=dict(log_id='log', timestamp_ns=0),
        rays=rays,
        ego_path=path,
        ego_footprint=torch.tensor([-1.0, -0.95, 3.87, 0.95]),
        feature_targets=feats)
    return dict(inputs=dict(points=points), data_samples=sample)


def batch(n=2):
    samples = [fake_sample() for _ in range(n)]
    return dict(
        inputs=dict(points=[s['inputs']['points'] for s in samples]),
        data_samples=[s['data_samples'] for s in samples])


def test_occupancy_queries_lie_behind_and_before_returns():
    sampler = TASK_UTILS.build(
        dict(
            type='OccupancyQuerySampler',
            num_queries=1000,
            positive_margin=0.3,
            negative_margin=0.3))
    rays = fake_sample(depth=10.0)['data_samples'].rays.to_dict()
    queries, labels = sampler(rays, generator=torch.Generator().manual_seed(0))
    pos, neg = queries[labels == 1], queries[labels == 0]
    assert len(pos) == len(neg) == 500
    # All rays run along +x from x = 0 at height 1 m: depth along the ray is x.
    assert pos[:, 0].min() >= 10.0 and pos[:, 0].max() <= 10.3
    assert neg[:, 0].min() >= 0.0 and neg[:, 0].max() <= 9.7
    torch.testing.assert_close(queries[:, 1:3], torch.tensor([[0., 1.]]).expand(1000, 2))
    assert set(queries[:, 3].unique().tolist()) <= set(rays['times_s'].tolist())


def test_ego_query_labels_follow_the_footprint():
    sampler = TASK_UTILS.build(
        dict(
            type='EgoQuerySampler',
            num_queries=3000,
            band_width=4.0,
            region_xy=[-8.0, -8.0, 8.0, 8.0]))
    sample = fake_sample()['data_samples']
    queries, labels = sampler(
        sample.ego_path.to_dict(), sample.ego_footprint, generator=torch.Generator().manual_seed(0))
    # The path moves along +x at 4 m/s with yaw 0: the vehicle covers
    # x in [4 t - 1.0, 4 t + 3.87], y in [-0.95, 0.95] at time t.
    x, y, t = queries[:, 0], queries[:, 1], queries[:, 3]
    inside = (x >= 4 * t - 1.0) & (x <= 4 * t + 3.87) & (y.abs() <= 0.95)
    assert torch.equal(labels.bool(), inside)
    assert labels[:1000].all()  # the first third is drawn inside the footprint
    assert 0 < labels[1000:].sum() < 2000  # band and region hold both classes
    assert (queries[:, 2] == 0).all()
    # The footprint may come as numbers too (the sampler keeps it on the device, no host
    # read): same draw, same labels.
    again = sampler(
        sample.ego_path.to_dict(),
        sample.ego_footprint.tolist(),
        generator=torch.Generator().manual_seed(0))
    assert torch.equal(again[0], queries) and torch.equal(again[1], labels)


def test_data_preprocessor_voxelizes_by_time_slot():
    model = MODELS.build(small_model_cfg())
    data = model.data_preprocessor(batch(), training=True)
    bev = data['inputs']['bev']
    assert bev.shape == (2, 2 * 4, 32, 32)
    # Points at t = -0.2 s go to slot 0 (channels 0-3), t = 0 to slot 1 (channels 4-7).
    pts = data['inputs']['points'][0]
    inside = (pts[:, 4] == 0) & (pts[:, 2].abs() < 2)
    p = pts[inside][0]
    ix, iy, iz = int((p[0] + 8) / 0.5), int((p[1] + 8) / 0.5), int((p[2] + 2) / 1.0)
    assert bev[0, 4 + iz, iy, ix] == 1
    targets = data['inputs']['targets']
    assert targets['occupancy']['queries'].shape == (2, 64, 4)
    assert targets['ego']['queries'].shape == (2, 30, 4)
    assert targets['feature']['labels'].shape == (2, 16, 4)


def test_loss_backward_and_predict():
    torch.manual_seed(0)
    model = MODELS.build(small_model_cfg())
    model.init_weights()
    data = model.data_preprocessor(batch(), training=True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_occupancy', 'loss_ego', 'loss_feature'}
    # Untrained binary heads start near chance: BCE close to log 2.
    assert abs(losses['loss_occupancy'].item() - math.log(2)) < 0.3
    sum(losses.values()).backward()
    assert next(model.backbone.parameters()).grad.abs().sum() > 0

    for sample in data['data_samples']:
        sample.set_metainfo(dict(render_times_s=[0.5, 1.0]))
    with torch.no_grad():
        out = model(**data, mode='predict')
    assert out[0].pred_occupancy.shape == (64, )
    assert out[0].pred_feature.shape == (16, 4)
    assert out[0].bev_occupancy.shape == (2, 8, 8)
    assert out[0].bev_ego.shape == (2, 8, 8)


def test_uno_has_no_ego_or_feature_heads():
    model = MODELS.build(small_model_cfg(heads=dict(occupancy=1)))
    assert list(model.decoder.output_layers) == ['occupancy']
    assert not any('ego' in n or 'feature' in n for n, _ in model.named_parameters())
    data = model.data_preprocessor(batch(), training=True)
    assert set(data['inputs']['targets']) == {'occupancy'}
    assert set(model(**data, mode='loss')) == {'loss_occupancy'}


def test_losses_for_missing_heads_are_rejected():
    cfg = small_model_cfg(heads=dict(occupancy=1))
    cfg['losses']['ego'] = dict(type='OccupancyBCELoss')
    with pytest.raises(ValueError, match='ego'):
        MODELS.build(cfg)


def test_a_head_without_targets_is_an_error():
    model = MODELS.build(small_model_cfg())
    data = batch()
    for sample in data['data_samples']:
        del sample.feature_targets
    data = model.data_preprocessor(data, training=True)
    with pytest.raises(ValueError, match=r"no targets for head\(s\) \['feature'\]"):
        model(**data, mode='loss')


def test_missing_ray_negatives_lie_along_missing_rays():
    sampler = TASK_UTILS.build(
        dict(
            type='OccupancyQuerySampler',
            num_queries=400,
            missing_ray_fraction=0.5,
            missing_range=20.0))
    rays = fake_sample(depth=10.0)['data_samples'].rays.to_dict()
    missing = dict(
        origins=torch.tensor([[0., 0., 2.]]),
        directions=torch.tensor([[0., 1., 0.]]),
        times_s=torch.tensor([0.4]))
    queries, labels = sampler(rays, missing_rays=missing)
    from_missing = queries[300:]  # the last half of the negatives
    assert (labels[300:] == 0).all()
    torch.testing.assert_close(from_missing[:, [0, 2, 3]],
                               torch.tensor([[0., 2., 0.4]]).expand(100, 3))
    assert from_missing[:, 1].min() >= 0 and from_missing[:, 1].max() <= 20.0
    with pytest.raises(ValueError, match='no missing rays'):
        sampler(rays)


def test_evaluation_samples_need_no_missing_rays():
    """A GASP config with missing-ray negatives validates on samples without missing rays
    (validation pipelines load no missing-ray cache); training on them is an error."""
    cfg = small_model_cfg()
    cfg['data_preprocessor']['occupancy_sampler']['missing_ray_fraction'] = 0.25
    model = MODELS.build(cfg)
    data = model.data_preprocessor(batch(), training=False)
    occupancy = data['inputs']['targets']['occupancy']
    queries, labels = occupancy['queries'], occupancy['labels']
    assert queries.shape == (2, 64, 4) and labels.shape == (2, 64)
    assert labels.sum().item() == 64  # half positives behind returns, half negatives before
    with pytest.raises(ValueError, match='training sample has no missing rays'):
        model.data_preprocessor(batch(), training=True)


def test_pointpillars_config_trains_a_few_iterations():
    """configs/gasp_av2_pointpillars.py with mmdet3d's PointPillars parts, on a small region."""
    from pathlib import Path

    from mmengine.config import Config
    cfg = Config.fromfile(Path(__file__).parents[1] / 'configs/gasp_av2_pointpillars.py')
    model_cfg = cfg.model
    assert (model_cfg.voxel_encoder.type, model_cfg.middle_encoder.type, model_cfg.backbone.type,
            model_cfg.neck.type) == ('PillarFeatureNet', 'PointPillarsScatter', 'SECOND',
                                     'SECONDFPN')
    small = dict(
        data_preprocessor=dict(
            point_cloud_range=RANGE,
            num_past_sweeps=2,
            voxel_layer=dict(point_cloud_range=RANGE, voxel_size=[0.5, 0.5, 4.0]),
            occupancy_sampler=dict(num_queries=64, missing_ray_fraction=0.0),
            ego_sampler=dict(num_queries=30, region_xy=[-8.0, -8.0, 8.0, 8.0]),
            num_feature_queries=16),
        voxel_encoder=dict(point_cloud_range=RANGE, voxel_size=[0.5, 0.5, 4.0]),
        middle_encoder=dict(output_shape=[32, 32]),
        backbone=dict(layer_nums=[1, 1, 1]),
        decoder=dict(
            point_cloud_range=RANGE,
            time_range=[0.0, 1.0],
            hidden_channels=32,
            num_res_blocks=1,
            heads=dict(feature=4)))
    cfg.merge_from_dict(dict(model=small))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = model.backbone.blocks[0][0].weight.detach().clone()
    for _ in range(3):
        data = model.data_preprocessor(batch(), training=True)
        assert data['inputs']['voxels']['coors'].shape[1] == 4  # (batch, z, y, x)
        losses = model(**data, mode='loss')
        assert set(losses) == {'loss_occupancy', 'loss_ego', 'loss_feature'}
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    assert all(torch.isfinite(v) for v in losses.values())
    assert not torch.equal(before, model.backbone.blocks[0][0].weight)
