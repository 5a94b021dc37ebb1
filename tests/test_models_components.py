"""Value tests for GASP's model parts in ``gasp.models``: encoder, embedding, decoder, losses."""
import math

import pytest
import torch
from mmdet3d.registry import MODELS

import gasp.models  # noqa: F401  (registers the modules)

# A small region for the decoder: 16 m x 16 m at 1 m cells, so cell (iy, ix) has its centre at
# (x, y) = (ix - 7.5, iy - 7.5).
SMALL_RANGE = (-8.0, -8.0, -4.5, 8.0, 8.0, 4.5)


def small_decoder(**overrides):
    cfg = dict(
        type='ImplicitOccupancyDecoder',
        in_channels=8,
        point_cloud_range=SMALL_RANGE,
        time_range=(0.0, 3.0),
        embedding=dict(type='FourierEmbedding', num_frequencies=2),
        hidden_channels=16,
        num_heads=2,
        num_points=2,
        num_res_blocks=1,
        heads=dict(occupancy=1, ego=1, feature=5))
    cfg.update(overrides)
    return MODELS.build(cfg)


def small_backbone(**overrides):
    cfg = dict(
        type='BEVResNetFPN',
        in_channels=4,
        stem_channels=(4, 8),
        stem_strides=(1, 2),
        stage_channels=(8, 8, 8),
        stage_blocks=(1, 1, 1),
        stage_strides=(2, 2, 2),
        out_channels=8)
    cfg.update(overrides)
    return MODELS.build(cfg)


# ----------------------------------------------------------------------------- registry


@pytest.mark.parametrize('type_name', [
    'BEVResNetFPN', 'FourierEmbedding', 'ResidualMLPBlock', 'ImplicitOccupancyDecoder',
    'OccupancyBCELoss', 'FeatureDistillationLoss'
])
def test_every_class_builds_from_a_config_dict(type_name):
    cfg = dict(type=type_name)
    if type_name == 'BEVResNetFPN':
        cfg['in_channels'] = 4
    module = MODELS.build(cfg)
    assert type(module).__name__ == type_name
    assert type_name in gasp.models.__all__


# ----------------------------------------------------------------------------- encoder


def test_backbone_default_output_is_128_channels_at_stride_4():
    backbone = MODELS.build(dict(type='BEVResNetFPN', in_channels=3))
    assert backbone.out_channels == 128 and backbone.out_stride == 4
    backbone.eval()
    with torch.no_grad():
        (feats, ) = backbone(torch.zeros(1, 3, 32, 48))
    assert feats.shape == (1, 128, 8, 12)


def test_backbone_forward_backward_reaches_every_parameter():
    backbone = small_backbone()
    bev = torch.rand(2, 4, 32, 32, requires_grad=True)
    (feats, ) = backbone(bev)
    assert feats.shape == (2, 8, 8, 8)
    feats.square().mean().backward()
    assert bev.grad is not None and bev.grad.abs().sum() > 0
    for name, param in backbone.named_parameters():
        assert param.grad is not None, name


def test_backbone_is_shift_equivariant_at_its_total_stride():
    # In eval mode with fresh running statistics (mean 0, var 1) and no conv biases, empty
    # BEV space stays exactly zero, so shifting the input by one coarsest cell (16 input
    # cells) shifts the output by 16 / 4 = 4 cells: the output grid stays aligned with the
    # input grid at every FPN level (a shift of 8 cells breaks this).
    torch.manual_seed(0)
    backbone = small_backbone().eval()
    bev = torch.zeros(1, 4, 192, 192)
    bev[0, :, 94:98, 64:68] = torch.rand(4, 4, 4)
    shifted = torch.roll(bev, shifts=16, dims=-1)
    with torch.no_grad():
        (out, ), (out_shifted, ) = backbone(bev), backbone(shifted)
        (empty, ) = backbone(torch.zeros_like(bev))
    assert torch.count_nonzero(empty) == 0
    assert out.abs().sum() > 0
    torch.testing.assert_close(out_shifted[..., 4:], out[..., :-4], rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- embedding


def test_fourier_embedding_known_values():
    embedding = MODELS.build(
        dict(
            type='FourierEmbedding',
            point_cloud_range=(-70, -70, -4.5, 70, 70, 4.5),
            time_range=(0.0, 3.0),
            num_frequencies=2))
    assert embedding.out_channels == 4 * (1 + 2 * 2)
    # Normalised (x, y, z, t) = (0.5, 0, 0.5, 0); per coordinate [u, sin(pi u), cos(pi u),
    # sin(2 pi u), cos(2 pi u)].
    out = embedding(torch.tensor([[35.0, 0.0, 2.25, 1.5]], dtype=torch.float64))
    half = [0.5, 1.0, 0.0, 0.0, -1.0]
    zero = [0.0, 0.0, 1.0, 0.0, 1.0]
    expected = torch.tensor([half + zero + half + zero], dtype=torch.float64)
    torch.testing.assert_close(out, expected)


def test_fourier_embedding_normalises_region_edges_to_plus_minus_one():
    embedding = MODELS.build(dict(type='FourierEmbedding', num_frequencies=1))
    corners = torch.tensor([[-70.0, -70.0, -4.5, 0.0], [70.0, 70.0, 4.5, 3.0]])
    torch.testing.assert_close(embedding.normalize(corners), torch.tensor([[-1.0] * 4, [1.0] * 4]))


# ----------------------------------------------------------------------------- decoder


def test_decoder_head_shapes():
    decoder = small_decoder()
    bev = torch.randn(2, 8, 16, 16)
    queries = torch.rand(2, 7, 4) * 10 - 5
    assert decoder(bev, queries, head='occupancy').shape == (2, 7)
    assert decoder(bev, queries, head='ego').shape == (2, 7)
    assert decoder(bev, queries, head='feature').shape == (2, 7, 5)


@pytest.mark.parametrize('chunk', [0, 4, 9])
def test_all_heads_in_one_trunk_pass_give_each_head_its_own_answers(chunk):
    """forward_heads concatenates the heads' query sets through the shared trunk: row for row
    the per-head forward (ego still ignores z), in any chunking, gradients included."""
    torch.manual_seed(0)
    decoder = small_decoder()
    bev = torch.randn(2, 8, 16, 16, requires_grad=True)
    queries = dict(
        occupancy=torch.rand(2, 7, 4) * 10 - 5,
        ego=torch.rand(2, 3, 4) * 10 - 5,
        feature=torch.rand(2, 5, 4) * 10 - 5)
    together = decoder.forward_heads(bev, queries, chunk=chunk)
    grad_together = torch.autograd.grad(sum(v.sum() for v in together.values()), bev)[0]
    alone = {head: decoder(bev, q, head=head) for head, q in queries.items()}
    grad_alone = torch.autograd.grad(sum(v.sum() for v in alone.values()), bev)[0]
    for head in queries:
        torch.testing.assert_close(together[head], alone[head], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad_together, grad_alone, rtol=1e-5, atol=1e-6)
    assert together['feature'].shape == (2, 5, 5) and together['ego'].shape == (2, 3)
    lifted = dict(ego=queries['ego'] + torch.tensor([0.0, 0.0, 2.0, 0.0]))
    torch.testing.assert_close(decoder.forward_heads(bev, lifted)['ego'], together['ego'])


def test_forward_heads_names_the_head_with_bad_queries():
    decoder = small_decoder()
    with pytest.raises(ValueError, match="for head 'ego'"):
        decoder.forward_heads(torch.randn(2, 8, 16, 16), dict(ego=torch.zeros(2, 3, 3)))
    with pytest.raises(ValueError, match="head 'semantics' is not configured"):
        decoder.forward_heads(torch.randn(2, 8, 16, 16), dict(semantics=torch.zeros(2, 3, 4)))


def test_decoder_default_config_is_four_heads_eight_points_width_256_feature_64():
    decoder = MODELS.build(dict(type='ImplicitOccupancyDecoder'))
    assert decoder.num_heads == 4 and decoder.num_points == 8
    assert decoder.head_sizes == dict(occupancy=1, ego=1, feature=64)
    assert decoder.output_layers['feature'].in_features == 256
    out = decoder(torch.randn(1, 128, 10, 10), torch.zeros(1, 3, 4), head='feature')
    assert out.shape == (1, 3, 64)


def test_sampling_starts_on_rings_with_uniform_attention():
    decoder = small_decoder(num_heads=4, num_points=2, in_channels=8, offset_scale=0.5)
    hidden = torch.randn(3, 16)
    offsets = decoder.sampling_offsets(hidden).view(3, 4, 2, 2) * decoder.offset_scale
    # Head h points along angle h * 90 degrees; point k sits at radius (k + 1) * offset_scale.
    directions = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    expected = directions[:, None, :] * torch.tensor([0.5, 1.0])[None, :, None]
    torch.testing.assert_close(offsets, expected.expand(3, 4, 2, 2), atol=1e-6, rtol=0)
    weights = decoder.attention_weights(hidden).view(3, 4, 2).softmax(dim=-1)
    torch.testing.assert_close(weights, torch.full((3, 4, 2), 0.5))


def test_init_cfg_does_not_overwrite_the_sampling_initialisation():
    decoder = small_decoder(init_cfg=dict(type='Xavier', layer='Linear'))
    decoder.init_weights()
    assert torch.count_nonzero(decoder.sampling_offsets.weight) == 0
    assert torch.count_nonzero(decoder.attention_weights.bias) == 0
    assert decoder.sampling_offsets.bias.abs().max() == decoder.num_points


def test_occupancy_is_differentiable_wrt_bev_only_near_the_query():
    # Query at the centre of cell (iy 4, ix 10); offsets reach at most 2 * 0.25 m = 0.5 m along
    # each axis, so bilinear reads touch only cells 3..5 in y and 9..11 in x.
    decoder = small_decoder(offset_scale=0.25)
    bev = torch.randn(1, 8, 16, 16, requires_grad=True)
    queries = torch.tensor([[[10 - 7.5, 4 - 7.5, 0.3, 1.0]]])
    decoder(bev, queries, head='occupancy').sum().backward()
    touched = bev.grad.abs().sum(dim=(0, 1)) > 0
    assert touched[4, 10]
    expected = torch.zeros(16, 16, dtype=torch.bool)
    expected[3:6, 9:12] = True
    assert not (touched & ~expected).any()


def test_query_outside_the_map_sends_no_gradient_to_bev():
    decoder = small_decoder(offset_scale=0.25)
    bev = torch.randn(1, 8, 16, 16, requires_grad=True)
    queries = torch.tensor([[[100.0, -50.0, 0.0, 1.0]]])
    logits = decoder(bev, queries, head='occupancy')
    logits.sum().backward()
    assert torch.isfinite(logits).all()
    assert torch.count_nonzero(bev.grad) == 0


def test_ego_head_ignores_z_and_occupancy_head_does_not():
    decoder = small_decoder()
    bev = torch.randn(1, 8, 16, 16)
    low = torch.tensor([[[1.0, 2.0, -3.0, 1.5]]])
    high = torch.tensor([[[1.0, 2.0, 2.0, 1.5]]])
    with torch.no_grad():
        assert decoder(bev, low, head='ego') == decoder(bev, high, head='ego')
        assert decoder(bev, low, head='occupancy') != decoder(bev, high, head='occupancy')


def test_heads_share_the_trunk_and_differ_only_in_the_output_layer():
    decoder = small_decoder()
    bev = torch.randn(1, 8, 16, 16)
    queries = torch.rand(1, 5, 4)
    with torch.no_grad():
        trunk = decoder.trunk(bev, queries)
        expected = trunk @ decoder.output_layers['feature'].weight.T
        expected += decoder.output_layers['feature'].bias
        torch.testing.assert_close(decoder(bev, queries, head='feature'), expected)


def test_uno_config_has_no_ego_or_feature_parameters():
    gasp_decoder = small_decoder()
    uno_decoder = small_decoder(heads=dict(occupancy=1))
    names = [name for name, _ in uno_decoder.named_parameters()]
    assert not any('ego' in name or 'feature' in name for name in names)
    num_params = sum(p.numel() for p in uno_decoder.parameters())
    head_params = (16 + 1) * 1 + (16 + 1) * 5  # ego and feature output layers of width 16
    assert num_params == sum(p.numel() for p in gasp_decoder.parameters()) - head_params
    with pytest.raises(ValueError, match="head 'ego' is not configured"):
        uno_decoder(torch.zeros(1, 8, 16, 16), torch.zeros(1, 1, 4), head='ego')


# ----------------------------------------------------------------------------- losses


def test_occupancy_bce_loss_hand_computed():
    loss = MODELS.build(dict(type='OccupancyBCELoss', loss_weight=2.0))
    logits = torch.tensor([[0.0, 2.0]])
    targets = torch.tensor([[1.0, 0.0]])
    # BCE(0, 1) = ln 2; BCE(2, 0) = ln(1 + e^2).
    expected = 2.0 * (math.log(2.0) + math.log(1.0 + math.e**2)) / 2
    assert loss(logits, targets).item() == pytest.approx(expected, rel=1e-6)
    weights = torch.tensor([[1.0, 0.0]])
    assert loss(logits, targets, weights).item() == pytest.approx(2.0 * math.log(2.0), rel=1e-6)


def test_feature_distillation_loss_hand_computed():
    loss = MODELS.build(
        dict(type='FeatureDistillationLoss', l1_weight=0.5, cosine_weight=2.0, loss_weight=3.0))
    pred = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])
    target = torch.tensor([[[0.0, 1.0], [2.0, 2.0]]])
    # Query 0: L1 = 1, cosine similarity 0 -> 0.5 * 1 + 2 * 1 = 2.5.
    # Query 1: L1 = 1, cosine similarity 1 -> 0.5 * 1 + 2 * 0 = 0.5.
    assert loss(pred, target).item() == pytest.approx(3.0 * (2.5 + 0.5) / 2, rel=1e-6)
    weights = torch.tensor([[0.0, 1.0]])
    assert loss(pred, target, weights).item() == pytest.approx(3.0 * 0.5, rel=1e-6)


def test_losses_with_all_weights_zero_are_zero():
    loss = MODELS.build(dict(type='OccupancyBCELoss'))
    value = loss(torch.randn(1, 3), torch.ones(1, 3), torch.zeros(1, 3))
    assert value.item() == 0.0
