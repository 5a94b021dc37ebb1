"""The Triton fast paths of ``gasp_ops`` against their PyTorch references on random inputs.

With a GPU the kernels are compiled and run on CUDA. Without one they run on CPU tensors under
the Triton interpreter, at small sizes: the interpreter must be switched on
(``TRITON_INTERPRET=1``) before ``triton`` is first imported, and importing ``gasp`` imports it
(through torch), so in an ordinary CPU session this module runs its tests in a fresh pytest
process with the variable set.
"""
import os
import subprocess
import sys

import pytest
import torch

from gasp_ops import bev_voxelize, bev_voxelize_reference
from gasp_ops import bev_voxelize_triton as voxelize_module
from gasp_ops import deformable_bev_gather, deformable_bev_gather_reference
from gasp_ops import deformable_bev_gather_triton as gather_module
from gasp_ops import fast_path
from gasp_ops import ray_marching_triton as march_module
from gasp_ops import render_expected_depth, render_expected_depth_reference

ON_GPU = torch.cuda.is_available()
RUN_KERNELS_HERE = ON_GPU or os.environ.get('TRITON_INTERPRET') == '1'
DEVICE = 'cuda' if ON_GPU else 'cpu'


def gather_inputs(seed,
                  dtype,
                  batch=2,
                  channels=8,
                  height=6,
                  width=9,
                  queries=12,
                  heads=2,
                  points=3):
    generator = torch.Generator().manual_seed(seed)
    bev = torch.randn(batch, channels, height, width, generator=generator).to(dtype)
    # Beyond [-1, 1] so that samples straddle and leave the map.
    locations = torch.rand(batch, queries, heads, points, 2, generator=generator) * 2.6 - 1.3
    weights = torch.rand(batch, queries, heads, points, generator=generator)
    return [t.to(DEVICE) for t in (bev, locations, weights)]


def gather_and_grads(fn, inputs, grad_out):
    inputs = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*inputs)
    return [out] + list(torch.autograd.grad(out, inputs, grad_out.to(out.dtype)))


@pytest.mark.parametrize('dtype,tol', [(torch.float32, 2e-6), (torch.bfloat16, 1e-2)])
@pytest.mark.parametrize('channels_last', [False, True])
def test_gather_forward_and_backward_match_fp64_reference(dtype, tol, channels_last):
    # A wide map: fp32 pixel coordinates would be off by ~1e-5 cells there (the kernel uses
    # fp64 for them), so the fp32 tolerance is tighter than fp32 grid_sample achieves.
    bev, locations, weights = gather_inputs(0, dtype, width=301)
    if channels_last:
        bev = bev.contiguous(memory_format=torch.channels_last)
    grad_out = torch.randn(2, 12, 8, generator=torch.Generator().manual_seed(1)).to(DEVICE)
    fast = gather_and_grads(gather_module.deformable_bev_gather_triton, (bev, locations, weights),
                            grad_out)
    # The reference on the same (rounded) values in fp64.
    ref = gather_and_grads(deformable_bev_gather_reference,
                           [t.double() for t in (bev, locations, weights)], grad_out.double())
    assert fast[0].dtype == torch.float32  # promoted with the fp32 locations
    assert fast[1].dtype == dtype and fast[1].shape == bev.shape
    for name, a, b in zip(('out', 'grad_bev', 'grad_loc', 'grad_w'), fast, ref):
        scale = b.abs().max()
        assert scale > 0, name
        err = (a.double() - b).abs().max() / scale
        assert err < tol, f'{name}: relative error {err:.2e} above {tol:g}'


def test_gather_gradient_of_map_lands_on_the_four_corners():
    # One sample at pixel (1.25, 2.5) (x, y) of a 4 x 5 map with weight 2: the map gradient is
    # 2 * bilinear weights on cells (x 1-2, y 2-3), zero elsewhere.
    height, width = 4, 5
    loc = torch.tensor([(2 * 1.25 + 1) / width - 1, (2 * 2.5 + 1) / height - 1])
    bev = torch.zeros(1, 1, height, width, device=DEVICE, requires_grad=True)
    out = gather_module.deformable_bev_gather_triton(bev,
                                                     loc.view(1, 1, 1, 1, 2).to(DEVICE),
                                                     torch.full((1, 1, 1, 1), 2.0, device=DEVICE))
    (grad, ) = torch.autograd.grad(out.sum(), [bev])
    expected = torch.zeros(height, width)
    expected[2, 1], expected[2, 2] = 2 * 0.75 * 0.5, 2 * 0.25 * 0.5
    expected[3, 1], expected[3, 2] = 2 * 0.75 * 0.5, 2 * 0.25 * 0.5
    torch.testing.assert_close(grad[0, 0].cpu(), expected)


def test_gather_centre_read_with_one_head_and_one_point():
    # The decoder's centre read: all 16 channels at one point, at cell centres.
    bev, _, _ = gather_inputs(2, torch.float32, channels=16)
    iy, ix = torch.tensor([0, 5, 3]), torch.tensor([8, 0, 4])
    loc = torch.stack([(2 * ix + 1) / 9 - 1, (2 * iy + 1) / 6 - 1], dim=-1).float()
    loc = loc.view(1, 3, 1, 1, 2).expand(2, 3, 1, 1, 2).to(DEVICE)
    out = gather_module.deformable_bev_gather_triton(bev, loc,
                                                     torch.ones(2, 3, 1, 1, device=DEVICE))
    expected = bev[:, :, iy, ix].transpose(1, 2)
    torch.testing.assert_close(out, expected)


def test_gather_location_gradient_on_cell_centre_lines_matches_fp64():
    # Locations on and next to the centre lines of a 175-cell map (where bilinear interpolation
    # has a kink): fp32 pixel arithmetic rounds many of them onto the wrong side of the line and
    # gets the location gradient of the neighbouring cell; the kernel's exact pixel coordinates
    # pick the side fp64 picks.
    size = 175
    centres = (2 * torch.arange(size, dtype=torch.float64) + 1) / size - 1
    loc32 = centres.float()
    nudged = torch.stack(
        [loc32, torch.nextafter(loc32, loc32 + 1),
         torch.nextafter(loc32, loc32 - 1)], dim=-1).flatten()
    # Not the subnormal neighbours of 0: fp64 rounds their pixel onto the line itself.
    nudged = nudged[(nudged == 0) | (nudged.abs() > 1e-30)]
    locations = torch.stack([nudged, nudged.flip(0)], dim=-1).view(1, -1, 1, 1, 2).to(DEVICE)
    generator = torch.Generator().manual_seed(7)
    bev = torch.randn(1, 4, size, size, generator=generator).to(DEVICE)
    weights = torch.ones(locations.shape[:-1], device=DEVICE)
    grad_out = torch.randn(1, locations.shape[1], 4, generator=generator).to(DEVICE)
    fast = gather_and_grads(gather_module.deformable_bev_gather_triton, (bev, locations, weights),
                            grad_out)
    ref = gather_and_grads(deformable_bev_gather_reference,
                           [t.double() for t in (bev, locations, weights)], grad_out.double())
    for name, a, b in zip(('out', 'grad_bev', 'grad_loc', 'grad_w'), fast, ref):
        err = (a.double() - b).abs().max() / b.abs().max()
        assert err < 2e-6, f'{name}: relative error {err:.2e}'


def test_gather_map_gradient_with_atomics():
    # Heads of 8 channels and of 6 channels (a channel block with masked lanes).
    for channels, heads in ((16, 2), (12, 2)):
        bev, locations, weights = gather_inputs(8, torch.float32, channels=channels, heads=heads)
        grad_out = torch.randn(2, 12, channels, generator=torch.Generator().manual_seed(9))
        fast = gather_and_grads(gather_module.deformable_bev_gather_triton,
                                (bev, locations, weights), grad_out.to(DEVICE))
        ref = gather_and_grads(deformable_bev_gather_reference,
                               [t.double() for t in (bev, locations, weights)],
                               grad_out.double().to(DEVICE))
        torch.testing.assert_close(fast[1].double(), ref[1], rtol=0, atol=1e-5)


def test_gather_rejects_maps_too_wide_for_exact_pixels_and_dispatch_falls_back():
    bev = torch.zeros(1, 2, 2, gather_module.MAX_EXACT_SIZE)
    loc = torch.zeros(1, 3, 1, 1, 2)
    w = torch.ones(1, 3, 1, 1)
    assert not gather_module.gather_supported(bev)
    with pytest.raises(ValueError, match='falls back to the reference'):
        gather_module.deformable_bev_gather_triton(bev, loc, w)
    assert gather_module.gather_supported(bev[..., :100])


def test_gather_rejects_fp64():
    bev, loc, w = gather_inputs(3, torch.float64)
    with pytest.raises(TypeError, match='use the reference for fp64'):
        gather_module.deformable_bev_gather_triton(bev, loc.double(), w)


def test_dispatch_picks_the_fast_path_only_for_cuda(monkeypatch):
    bev, loc, w = gather_inputs(4, torch.float32)
    called = []
    real = gather_module.deformable_bev_gather_triton
    monkeypatch.setattr(gather_module, 'deformable_bev_gather_triton',
                        lambda *a: called.append(True) or real(*a))
    out = deformable_bev_gather(bev, loc, w)
    assert called == ([True] if ON_GPU else [])
    torch.testing.assert_close(out, deformable_bev_gather_reference(bev, loc, w))
    monkeypatch.setenv(fast_path.FAST_ENV, '0')
    called.clear()
    deformable_bev_gather(bev, loc, w)
    assert called == []


def voxelize_inputs(seed, num_points=3000):
    generator = torch.Generator().manual_seed(seed)
    points = torch.rand(num_points, 5, generator=generator) * 10 - 5  # some outside the range
    # Points exactly on cell faces and on the region's faces (half-open on every axis).
    points[:50, 0] = torch.arange(-8, 42).float() * 0.25
    points[50:60, 1] = 3.0
    batch_idx = torch.randint(-1, 3, (num_points, ), generator=generator)  # -1 and 2 invalid
    time_idx = torch.randint(0, 4, (num_points, ), generator=generator)  # 3 invalid
    return [t.to(DEVICE) for t in (points, batch_idx, time_idx)]


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_voxelize_matches_reference(dtype):
    point_cloud_range, voxel = (-4.0, -3.0, -1.0, 4.0, 3.0, 1.0), (0.25, 0.25, 0.5)
    points, batch_idx, time_idx = voxelize_inputs(5)
    args = (points, batch_idx, time_idx, 2, 3, point_cloud_range, voxel, dtype)
    fast = voxelize_module.bev_voxelize_triton(*args)
    ref = bev_voxelize_reference(*args)
    assert fast.dtype == dtype and fast.shape == (2, 3 * 4, 24, 32)
    assert ref.sum() > 100
    assert torch.equal(fast, ref)
    assert torch.equal(bev_voxelize(*args), ref)


def test_voxelize_known_cell_and_empty_input():
    point_cloud_range, voxel = (-2.0, -1.0, -1.0, 2.0, 1.0, 1.0), (0.5, 0.5, 1.0)
    points = torch.tensor([[1.3, -0.2, 0.4, 7.0]], device=DEVICE)
    one = torch.ones(1, dtype=torch.long, device=DEVICE)
    bev = voxelize_module.bev_voxelize_triton(points, one, 2 * one, 2, 3, point_cloud_range, voxel)
    assert bev[1, 5, 1, 6] == 1 and bev.sum() == 1
    empty = voxelize_module.bev_voxelize_triton(points[:0], one[:0], one[:0], 1, 1,
                                                point_cloud_range, voxel)
    assert empty.shape == (1, 2, 4, 8) and empty.sum() == 0


def render_inputs(seed, num_rays=96):
    generator = torch.Generator().manual_seed(seed)
    shape = (10, 30, 40)  # z, y, x cells of 0.2 m over the range below
    density = torch.rand(shape, generator=generator) * 8
    density *= torch.rand(shape, generator=generator) < 0.08
    density[2, 10:20, 5] = float('inf')  # an opaque wall
    origins = (torch.rand(num_rays, 3, generator=generator) * 2 - 1) * torch.tensor([3.5, 2.5, 0.8])
    directions = torch.randn(num_rays, 3, generator=generator)
    origins[:4] = torch.tensor([20.0, 0.0, 0.0])  # outside, pointing away: misses the grid
    directions[:4] = torch.tensor([1.0, 0.0, 0.0])
    directions[4:8] = torch.tensor([0.0, 1.0, 0.0])  # axis-parallel rays
    return [t.to(DEVICE) for t in (origins, directions, density)]


@pytest.mark.parametrize('steps_per_chunk,min_transmittance,max_depth', [(64, 0.0, None),
                                                                         (6, 1e-3, 5.0)])
def test_render_matches_reference(steps_per_chunk, min_transmittance, max_depth):
    origins, directions, density = render_inputs(6)
    kwargs = dict(
        point_cloud_range=(-4.0, -3.0, -1.0, 4.0, 3.0, 1.0),
        voxel_size=(0.2, 0.2, 0.2),
        step=0.2,
        max_depth=max_depth,
        steps_per_chunk=steps_per_chunk,
        min_transmittance=min_transmittance)
    fast = march_module.render_expected_depth_triton(origins, directions, density, **kwargs)
    ref = render_expected_depth_reference(origins, directions, density, **kwargs)
    assert (ref[:4] == (max_depth or 0.0)).all()  # the misses
    assert ref[4:].min() > 0 and ref.std() > 0.5
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-4)
    torch.testing.assert_close(
        render_expected_depth(origins, directions, density, **kwargs), ref, rtol=0, atol=1e-4)


def test_render_wall_in_front_gives_its_distance():
    # An opaque wall filling the cells x in [1.0, 1.2): a ray from x = -1.85 along +x stops in
    # the first segment whose midpoint is inside the wall: segment 14, [2.8, 3.0] m along the
    # ray, midpoint x = 1.05, depth 2.9 m.
    density = torch.zeros(10, 30, 40, device=DEVICE)
    density[:, :, 25] = float('inf')
    origins = torch.tensor([[-1.85, 0.1, 0.1]], device=DEVICE)
    directions = torch.tensor([[1.0, 0.0, 0.0]], device=DEVICE)
    depth = march_module.render_expected_depth_triton(origins, directions, density,
                                                      (-4.0, -3.0, -1.0, 4.0, 3.0, 1.0),
                                                      (0.2, 0.2, 0.2), 0.2)
    assert depth.item() == pytest.approx(2.9, abs=1e-5)


if not RUN_KERNELS_HERE:
    # CPU session with triton already imported in compiled mode: run the tests above in a
    # fresh pytest process whose interpreter is on from the start.
    for _name in [name for name in globals() if name.startswith('test_')]:
        del globals()[_name]

    def test_triton_kernels_under_the_interpreter():
        pytest.importorskip('triton', reason='triton ships with torch; install it to test')
        env = dict(os.environ, TRITON_INTERPRET='1')
        proc = subprocess.run(
            [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', __file__],
            env=env,
            capture_output=True,
            text=True,
            timeout=600)
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
        summary = proc.stdout.strip().splitlines()[-1]
        assert ' passed' in summary and 'skipped' not in summary, summary
