"""Value tests for ``gasp_ops.bev_voxelize`` and ``gasp_ops.deformable_bev_gather``."""
import itertools

import pytest
import torch

from gasp_ops import (bev_grid_shape, bev_voxelize, bev_voxelize_reference, deformable_bev_gather,
                      deformable_bev_gather_reference, metric_to_normalized)

# A small grid: x in [-2, 2) (W = 8 cells of 0.5 m), y in [-1, 1) (H = 4), z in [-1, 1) (Z = 2).
SMALL_RANGE = (-2.0, -1.0, -1.0, 2.0, 1.0, 1.0)
SMALL_VOXEL = (0.5, 0.5, 1.0)

# ----------------------------------------------------------------------------- bev_voxelize


def test_default_grid_is_700_by_700_with_45_height_slices():
    assert bev_grid_shape((-70, -70, -4.5, 70, 70, 4.5), (0.2, 0.2, 0.2)) == (45, 700, 700)


def test_grid_that_does_not_divide_the_region_is_rejected():
    with pytest.raises(ValueError, match='multiple of the voxel size'):
        bev_grid_shape((-70, -70, -4.5, 70, 70, 4.5), (0.3, 0.3, 0.2))


def test_point_lands_in_known_cell_and_channel():
    # x = 1.3 -> ix = floor((1.3 + 2) / 0.5) = 6; y = -0.2 -> iy = floor(0.8 / 0.5) = 1;
    # z = 0.4 -> iz = 1; time slot 2 of 3 -> channel 2 * 2 + 1 = 5; sample 1 of 2.
    points = torch.tensor([[1.3, -0.2, 0.4, 7.0]])
    bev = bev_voxelize(
        points,
        torch.tensor([1]),
        torch.tensor([2]),
        batch_size=2,
        num_time_slots=3,
        point_cloud_range=SMALL_RANGE,
        voxel_size=SMALL_VOXEL)
    assert bev.shape == (2, 3 * 2, 4, 8)
    assert bev[1, 5, 1, 6] == 1
    assert bev.sum() == 1


def test_default_grid_known_cell():
    # Default grid: x = 0.1 -> ix = 350, y = -69.9 -> iy = 0, z = -4.4 -> iz = 0, slot 4 of 5.
    points = torch.tensor([[0.1, -69.9, -4.4]])
    bev = bev_voxelize(points, torch.tensor([0]), torch.tensor([4]), 1, 5)
    assert bev.shape == (1, 5 * 45, 700, 700)
    assert bev[0, 4 * 45, 0, 350] == 1
    assert bev.sum() == 1


def test_points_outside_region_are_dropped_and_range_is_half_open():
    points = torch.tensor([
        [2.0, 0.0, 0.0],  # x == x_max: outside
        [-2.0, -1.0, -1.0],  # the lower corner: inside, cell (0, 0, 0)
        [0.0, 1.5, 0.0],  # y too large
        [0.0, 0.0, -1.01],  # z too small
        [1.999, 0.999, 0.999],  # just inside the upper corner: cell (1, 3, 7)
    ])
    bev = bev_voxelize(points, torch.zeros(5, dtype=torch.long), torch.zeros(5, dtype=torch.long),
                       1, 1, SMALL_RANGE, SMALL_VOXEL)
    assert bev.sum() == 2
    assert bev[0, 0, 0, 0] == 1 and bev[0, 1, 3, 7] == 1


def test_several_points_in_one_cell_give_one_and_slots_stay_separate():
    points = torch.tensor([[0.1, 0.1, 0.1], [0.2, 0.3, 0.4], [0.1, 0.1, 0.1]])
    bev = bev_voxelize(points, torch.tensor([0, 0, 0]), torch.tensor([0, 0, 1]), 1, 2, SMALL_RANGE,
                       SMALL_VOXEL)
    # Cell (iz 1, iy 2, ix 4): slot 0 -> channel 1, slot 1 -> channel 3.
    assert bev[0, 1, 2, 4] == 1 and bev[0, 3, 2, 4] == 1
    assert bev.sum() == 2


def test_voxelize_matches_a_per_point_loop_on_random_points():
    generator = torch.Generator().manual_seed(0)
    num_points = 500
    points = torch.rand(num_points, 4, generator=generator) * 6 - 3  # some fall outside
    batch_idx = torch.randint(0, 2, (num_points, ), generator=generator)
    time_idx = torch.randint(0, 3, (num_points, ), generator=generator)
    bev = bev_voxelize_reference(points, batch_idx, time_idx, 2, 3, SMALL_RANGE, SMALL_VOXEL)
    expected = torch.zeros_like(bev)
    for (x, y, z, _), b, t in zip(points.tolist(), batch_idx.tolist(), time_idx.tolist()):
        if -2 <= x < 2 and -1 <= y < 1 and -1 <= z < 1:
            ix, iy, iz = int((x + 2) // 0.5), int((y + 1) // 0.5), int((z + 1) // 1.0)
            expected[b, t * 2 + iz, iy, ix] = 1
    assert torch.equal(bev, expected)


# ----------------------------------------------------------------------- deformable_bev_gather


def naive_gather(bev, locations, weights):
    """Loop-over-everything bilinear gather with zero padding (align_corners=False)."""
    batch, channels, height, width = bev.shape
    _, num_queries, num_heads, num_points, _ = locations.shape
    group = channels // num_heads
    out = bev.new_zeros(batch, num_queries, channels)
    for b, q, h, k in itertools.product(
            range(batch), range(num_queries), range(num_heads), range(num_points)):
        # Pixel coordinates: cell centre ix sits at ix.
        px = ((locations[b, q, h, k, 0] + 1) * width - 1) / 2
        py = ((locations[b, q, h, k, 1] + 1) * height - 1) / 2
        x0, y0 = int(torch.floor(px)), int(torch.floor(py))
        for dy, dx in itertools.product((0, 1), (0, 1)):
            xi, yi = x0 + dx, y0 + dy
            if not (0 <= xi < width and 0 <= yi < height):
                continue
            wx = 1 - abs(px - xi)
            wy = 1 - abs(py - yi)
            channel = slice(h * group, (h + 1) * group)
            out[b, q, channel] += weights[b, q, h, k] * wx * wy * bev[b, channel, yi, xi]
    return out


def random_gather_inputs(seed,
                         batch=2,
                         channels=6,
                         height=5,
                         width=7,
                         queries=4,
                         heads=3,
                         points=2,
                         dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    bev = torch.randn(batch, channels, height, width, generator=generator, dtype=dtype)
    # Range beyond [-1, 1] so some samples straddle or leave the map.
    locations = torch.rand(
        batch, queries, heads, points, 2, generator=generator, dtype=dtype) * 2.4 - 1.2
    weights = torch.rand(batch, queries, heads, points, generator=generator, dtype=dtype)
    return bev, locations, weights


def cell_centre(ix, iy, height, width):
    return [(2 * ix + 1) / width - 1, (2 * iy + 1) / height - 1]


def test_gather_matches_naive_loop_in_fp64():
    bev, locations, weights = random_gather_inputs(seed=1)
    out = deformable_bev_gather(bev, locations, weights)
    assert out.shape == (2, 4, 6)
    torch.testing.assert_close(out, naive_gather(bev, locations, weights), rtol=1e-12, atol=1e-12)


def test_sampling_at_cell_centre_returns_that_cells_feature():
    bev = torch.arange(2 * 4 * 3 * 5, dtype=torch.float64).reshape(2, 4, 3, 5)
    # Head 0 reads channels 0-1 at cell (iy 2, ix 1); head 1 reads channels 2-3 at (iy 0, ix 4).
    locations = torch.tensor(
        [cell_centre(1, 2, 3, 5), cell_centre(4, 0, 3, 5)], dtype=torch.float64)
    locations = locations.view(1, 1, 2, 1, 2).expand(2, 1, 2, 1, 2)
    weights = torch.ones(2, 1, 2, 1, dtype=torch.float64)
    out = deformable_bev_gather(bev, locations, weights)
    expected = torch.stack([torch.cat([bev[b, 0:2, 2, 1], bev[b, 2:4, 0, 4]])
                            for b in range(2)]).unsqueeze(1)
    torch.testing.assert_close(out, expected)


def test_midpoint_between_cells_is_their_mean():
    bev = torch.tensor([[[[1.0, 3.0], [5.0, 7.0]]]], dtype=torch.float64)
    locations = torch.zeros(1, 1, 1, 1, 2, dtype=torch.float64)  # centre of the 2 x 2 map
    out = deformable_bev_gather(bev, locations, torch.ones(1, 1, 1, 1, dtype=torch.float64))
    assert out.item() == pytest.approx(4.0)


def test_constant_map_gives_constant_weighted_gather_inside():
    bev = torch.full((1, 4, 6, 6), 2.5)
    locations = torch.rand(1, 10, 2, 3, 2) * 1.6 - 0.8  # well inside: every neighbour is in
    weights = torch.softmax(torch.randn(1, 10, 2, 3), dim=-1)
    out = deformable_bev_gather(bev, locations, weights)
    torch.testing.assert_close(out, torch.full((1, 10, 4), 2.5))


def test_attention_weights_scale_the_samples():
    bev = torch.full((1, 2, 4, 4), 1.0)
    locations = torch.zeros(1, 1, 1, 3, 2)
    weights = torch.tensor([0.5, 2.0, -1.0]).view(1, 1, 1, 3)
    out = deformable_bev_gather(bev, locations, weights)
    torch.testing.assert_close(out, torch.full((1, 1, 2), 1.5))


def test_locations_outside_map_give_zero():
    bev = torch.randn(1, 4, 5, 5)
    # More than one cell (0.4 in normalized units) beyond every edge.
    locations = torch.tensor([[1.5, 0.0], [-1.5, 0.0], [0.0, 1.5], [0.0, -1.5]])
    locations = locations.view(1, 4, 1, 1, 2).expand(1, 4, 2, 1, 2)
    out = deformable_bev_gather(bev, locations, torch.ones(1, 4, 2, 1))
    assert torch.count_nonzero(out) == 0


def test_half_a_cell_outside_blends_with_zero_padding():
    bev = torch.full((1, 1, 4, 4), 8.0, dtype=torch.float64)
    # x exactly at the right edge: half-way between the last cell centre and the padding.
    locations = torch.tensor([1.0, cell_centre(0, 1, 4, 4)[1]], dtype=torch.float64)
    out = deformable_bev_gather(bev, locations.view(1, 1, 1, 1, 2),
                                torch.ones(1, 1, 1, 1, dtype=torch.float64))
    assert out.item() == pytest.approx(4.0)


def test_metric_to_normalized_maps_cell_centres_consistently_with_voxelize():
    # The cell where bev_voxelize puts a point is the cell the gather reads at that point.
    point_cloud_range, voxel = (-70.0, -70.0, -4.5, 70.0, 70.0, 4.5), (0.2, 0.2, 9.0)
    xy = torch.tensor([[12.3, -45.1]], dtype=torch.float64)
    bev = bev_voxelize(
        torch.cat([xy, torch.zeros(1, 1, dtype=torch.float64)], dim=1),
        torch.tensor([0]),
        torch.tensor([0]),
        1,
        1,
        point_cloud_range,
        voxel,
        dtype=torch.float64)
    iy, ix = torch.nonzero(bev[0, 0])[0].tolist()
    centre_xy = torch.tensor([[-70 + (ix + 0.5) * 0.2, -70 + (iy + 0.5) * 0.2]],
                             dtype=torch.float64)
    locations = metric_to_normalized(centre_xy, point_cloud_range)
    torch.testing.assert_close(locations,
                               torch.tensor([cell_centre(ix, iy, 700, 700)], dtype=torch.float64))
    out = deformable_bev_gather(bev, locations.view(1, 1, 1, 1, 2),
                                torch.ones(1, 1, 1, 1, dtype=torch.float64))
    assert out.item() == pytest.approx(1.0)


def test_gather_gradcheck_on_tiny_inputs():
    bev, locations, weights = random_gather_inputs(
        seed=3, batch=1, channels=4, height=3, width=4, queries=2, heads=2, points=2)
    # Keep samples away from cell-centre lines, where bilinear interpolation has a kink.
    locations = locations.clamp(-0.9, 0.9)
    bev.requires_grad_(True)
    locations.requires_grad_(True)
    weights.requires_grad_(True)
    assert torch.autograd.gradcheck(deformable_bev_gather_reference, (bev, locations, weights))


def test_gather_rejects_channels_not_divisible_by_heads():
    with pytest.raises(ValueError, match='divisible by num_heads'):
        deformable_bev_gather(
            torch.zeros(1, 5, 2, 2), torch.zeros(1, 1, 2, 1, 2), torch.zeros(1, 1, 2, 1))


def test_low_precision_map_is_read_at_full_precision_locations():
    # On a 700-cell map, a bf16 location is off by up to 0.7 cells (here 0.37): the gather must
    # keep the fp32 locations and read the hot cell exactly.
    bev = torch.zeros(1, 1, 2, 700, dtype=torch.bfloat16)
    bev[..., 613] = 1
    locations = torch.tensor(cell_centre(613, 0, 2, 700)).view(1, 1, 1, 1, 2)
    out = deformable_bev_gather(bev, locations, torch.ones(1, 1, 1, 1))
    assert out.dtype == torch.float32
    assert out.item() == 1.0
    rounded = deformable_bev_gather(bev, locations.to(torch.bfloat16),
                                    torch.ones(1, 1, 1, 1, dtype=torch.bfloat16))
    assert rounded.item() < 0.9


def test_device_constants_are_made_once_and_hold_the_values():
    from gasp_ops.fast_path import device_constant
    first = device_constant((-70.0, 0.2), torch.float64, torch.device('cpu'))
    assert device_constant((-70.0, 0.2), torch.float64, torch.device('cpu')) is first
    assert first.tolist() == [-70.0, 0.2] and first.dtype == torch.float64
    other = device_constant((-70.0, 0.2), torch.float32, torch.device('cpu'))
    assert other is not first and other.dtype == torch.float32


def test_metric_to_normalized_edges_of_an_odd_region():
    # The span is the subtraction in the input dtype: -1 / +1 land exactly on the edges.
    pcr = [-51.3, -7.1, -3.0, 48.9, 12.7, 3.0]
    xy = torch.tensor([[-51.3, -7.1], [48.9, 12.7]], dtype=torch.float32)
    assert metric_to_normalized(xy, pcr).tolist() == [[-1.0, -1.0], [1.0, 1.0]]
