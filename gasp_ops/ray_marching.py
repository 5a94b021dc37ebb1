"""Ray marching for expected depth: the reference renderer of the 4D occupancy forecasting
benchmark (SPEC s. 5).

A ray ``x(d) = o + d u`` (unit ``u``) is cut into segments of length ``step`` from ``near`` to
``far``; segment ``i`` spans ``[near + i step, min(near + (i + 1) step, far)]``, its sample
point is the segment midpoint at distance ``d_i`` and its optical thickness is
``s_i = sigma(x(d_i)) * length_i``. With ``S_i = sum_{j <= i} s_j``::

    p_i   = exp(-S_{i-1}) - exp(-S_i)      termination probability in segment i
    p_out = exp(-S_last)                   the ray leaves [near, far] without terminating
    depth = sum_i p_i d_i + p_out far

:func:`march_expected_depth` runs that loop for any sampler of optical thickness (a dense grid
here, an implicit field in ``gasp.evaluation.ExpectedDepthRenderer``);
:func:`render_expected_depth_reference` is the plain PyTorch specification for a dense density
grid and :func:`render_expected_depth` the one dispatch point: fp32 CUDA rays run the Triton
kernel of :mod:`gasp_ops.ray_marching_triton` (same arithmetic, one program per block of
rays), everything else the reference.

Grid convention (shared with :mod:`gasp_ops.bev_voxelize`): the grid covers
``point_cloud_range = (x_min, y_min, z_min, x_max, y_max, z_max)``, cell ``(iz, iy, ix)`` spans
``[min + i * size, min + (i + 1) * size)`` on each axis, and ``density`` is indexed
``[iz, iy, ix]``.
"""
from typing import Callable, Optional, Sequence, Tuple

import torch

from .bev_voxelize import DEFAULT_POINT_CLOUD_RANGE, DEFAULT_VOXEL_SIZE, bev_grid_shape
from .fast_path import device_constant, use_fast_path

DEFAULT_STEP_M = 0.2  # marching step (m); the benchmark's grid cell size
DEFAULT_STEPS_PER_CHUNK = 64  # segments evaluated per loop iteration (memory vs. overhead)

#: ``sampler(points (R, K, 3), ray_index (R,), lengths (R, K)) -> thickness (R, K)``.
ThicknessSampler = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def ray_box_intersection(origins: torch.Tensor, directions: torch.Tensor,
                         point_cloud_range: Sequence[float]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Entry and exit distances of rays through an axis-aligned box (slab test).

    Args:
        origins: (R, 3) ray origins (m), in the box's frame.
        directions: (R, 3) unit ray directions.
        point_cloud_range: (x_min, y_min, z_min, x_max, y_max, z_max) in metres.

    Returns:
        t_enter: (R,) distance where the ray enters the box, >= 0 (0 for origins inside).
        t_exit: (R,) distance where it leaves; ``t_exit <= t_enter`` when the ray misses.
    """
    lower = device_constant(point_cloud_range[:3], origins.dtype, origins.device)
    upper = device_constant(point_cloud_range[3:], origins.dtype, origins.device)
    inv = 1.0 / directions  # +-inf on axis-parallel rays, handled by the min/max below
    t_lo, t_hi = (lower - origins) * inv, (upper - origins) * inv
    parallel = directions == 0
    inside = (origins >= lower) & (origins <= upper)
    t_in, t_out = torch.minimum(t_lo, t_hi), torch.maximum(t_lo, t_hi)
    # A ray parallel to a slab is inside it for all d (origin within) or never (origin outside).
    t_in = torch.where(parallel, torch.where(inside, -torch.inf, torch.inf), t_in)
    t_out = torch.where(parallel, torch.where(inside, torch.inf, -torch.inf), t_out)
    return t_in.amax(dim=1).clamp(min=0), t_out.amin(dim=1)


def march_expected_depth(origins: torch.Tensor,
                         directions: torch.Tensor,
                         near: torch.Tensor,
                         far: torch.Tensor,
                         step: float,
                         sampler: ThicknessSampler,
                         steps_per_chunk: int = DEFAULT_STEPS_PER_CHUNK,
                         min_transmittance: float = 0.0) -> torch.Tensor:
    """Expected termination depth of rays through a medium given by ``sampler``.

    Vectorized over rays; the loop runs over chunks of ``steps_per_chunk`` segments and only
    over the rays still inside ``[near, far]`` with transmittance above ``min_transmittance``.

    Args:
        origins: (R, 3) ray origins (m).
        directions: (R, 3) unit directions.
        near: (R,) distance where marching starts (m).
        far: (R,) distance where it ends (m); the depth of a ray that does not terminate.
        step: segment length (m).
        sampler: maps segment midpoints (R', K, 3), the rays' indices (R',) into the inputs
            and segment lengths (R', K) to optical thickness s >= 0 (R', K); ``inf`` is an
            opaque segment. Segments of length 0 (past ``far``) must give 0.
        steps_per_chunk: segments per loop iteration.
        min_transmittance: a ray stops once exp(-S) <= this; its remaining probability is
            assigned to ``far`` (depth error <= min_transmittance * far). 0 is exact.

    Returns:
        (R,) expected depth (m), ``far`` for rays with ``far <= near``.
    """
    num_rays = origins.shape[0]
    dtype = torch.promote_types(origins.dtype, torch.float32)
    origins, directions = origins.to(dtype), directions.to(dtype)
    near, far = near.to(dtype), far.to(dtype)
    depth = torch.zeros(num_rays, dtype=dtype, device=origins.device)
    thickness = torch.zeros(num_rays, dtype=dtype, device=origins.device)  # S so far
    offsets = torch.arange(steps_per_chunk, dtype=dtype, device=origins.device) * step
    active = torch.nonzero(far > near).squeeze(1)
    base = 0
    while active.numel() > 0:
        start = near[active, None] + base * step + offsets  # (R', K)
        end = torch.minimum(start + step, far[active, None])
        length = (end - start).clamp(min=0)
        mid = 0.5 * (start + end)
        points = origins[active, None] + mid[..., None] * directions[active, None]
        s = sampler(points, active, length).to(dtype)
        s = torch.where(length > 0, s, torch.zeros_like(s))
        total = thickness[active, None] + torch.cumsum(s, dim=1)  # S_i
        before = torch.cat([thickness[active, None], total[:, :-1]], dim=1)  # S_{i-1}
        p = torch.exp(-before) - torch.exp(-total)
        depth[active] += (p * mid).sum(dim=1)
        thickness[active] = total[:, -1]
        base += steps_per_chunk
        keep = (near[active] + base * step < far[active]) & (
            torch.exp(-thickness[active]) > min_transmittance)
        active = active[keep]
    return depth + torch.exp(-thickness) * far


def _check_grid(density: torch.Tensor, point_cloud_range, voxel_size) -> None:
    shape = bev_grid_shape(point_cloud_range, voxel_size)
    if tuple(density.shape) != shape:
        raise ValueError(f'render_expected_depth: density must be (Z, Y, X) = {shape} for '
                         f'point_cloud_range {tuple(point_cloud_range)} and voxel_size '
                         f'{tuple(voxel_size)}, got {tuple(density.shape)}')


def check_grid_rays(origins: torch.Tensor, directions: torch.Tensor, density: torch.Tensor,
                    point_cloud_range: Sequence[float], voxel_size: Sequence[float]) -> None:
    """Raise ValueError unless rays are (R, 3) and the density grid fits the region."""
    if origins.dim() != 2 or origins.shape[1] != 3 or directions.shape != origins.shape:
        raise ValueError('render_expected_depth: origins and directions must both be (R, 3), '
                         f'got {tuple(origins.shape)} and {tuple(directions.shape)}')
    _check_grid(density, point_cloud_range, voxel_size)


def _prepare_grid_rays(origins: torch.Tensor, directions: torch.Tensor, density: torch.Tensor,
                       point_cloud_range: Sequence[float], voxel_size: Sequence[float],
                       max_depth: Optional[float]):
    """Check the inputs of a grid render; (unit directions, near, far, miss) of the rays."""
    check_grid_rays(origins, directions, density, point_cloud_range, voxel_size)
    directions = directions / directions.norm(dim=1, keepdim=True)
    near, far = ray_box_intersection(origins, directions, point_cloud_range)
    if max_depth is not None:
        far = far.clamp(max=max_depth)
    return directions, near, far, far <= near


def render_expected_depth_reference(origins: torch.Tensor,
                                    directions: torch.Tensor,
                                    density: torch.Tensor,
                                    point_cloud_range: Sequence[float] = DEFAULT_POINT_CLOUD_RANGE,
                                    voxel_size: Sequence[float] = DEFAULT_VOXEL_SIZE,
                                    step: float = DEFAULT_STEP_M,
                                    max_depth: Optional[float] = None,
                                    steps_per_chunk: int = DEFAULT_STEPS_PER_CHUNK,
                                    min_transmittance: float = 0.0) -> torch.Tensor:
    """Expected depth of rays marched through a dense density grid to the grid exit.

    Each segment samples the cell that contains its midpoint (nearest-cell lookup).

    Args:
        origins: (R, 3) ray origins (m) in the grid's frame.
        directions: (R, 3) unit directions (normalised here again).
        density: (Z, Y, X) density sigma >= 0 (1/m), ``inf`` for opaque cells.
        point_cloud_range: region the grid covers, (x_min, y_min, z_min, x_max, y_max, z_max).
        voxel_size: (x, y, z) cell size (m).
        step: marching step (m).
        max_depth: stop marching here even inside the grid (m); None: at the grid exit.
        steps_per_chunk: segments evaluated per loop iteration.
        min_transmittance: see :func:`march_expected_depth` (0: exact).

    Returns:
        (R,) expected depth (m); ``d_max`` = min(grid exit, max_depth) is the depth of rays
        that cross the grid without terminating. Rays that miss the grid get ``max_depth``
        (0 when it is None).
    """
    directions, near, far, miss = _prepare_grid_rays(origins, directions, density,
                                                     point_cloud_range, voxel_size, max_depth)
    num_z, num_y, num_x = density.shape
    lower = origins.new_tensor(point_cloud_range[:3])
    size = origins.new_tensor(voxel_size)
    upper_index = torch.tensor((num_x - 1, num_y - 1, num_z - 1), device=origins.device)
    flat_density = density.reshape(-1)

    def grid_thickness(points, ray_index, lengths):
        # Midpoints are inside the box; the clamp only absorbs rounding at its faces.
        cell = torch.floor((points - lower) / size).long().clamp(min=0)
        cell = torch.minimum(cell, upper_index)
        ix, iy, iz = cell.unbind(dim=-1)
        sigma = flat_density[(iz * num_y + iy) * num_x + ix].to(lengths.dtype)
        return torch.where(lengths > 0, sigma * lengths, torch.zeros_like(lengths))

    depth = march_expected_depth(origins, directions, near, far, step, grid_thickness,
                                 steps_per_chunk, min_transmittance)
    return torch.where(miss, depth.new_tensor(max_depth or 0.0), depth)


def render_expected_depth(origins: torch.Tensor,
                          directions: torch.Tensor,
                          density: torch.Tensor,
                          point_cloud_range: Sequence[float] = DEFAULT_POINT_CLOUD_RANGE,
                          voxel_size: Sequence[float] = DEFAULT_VOXEL_SIZE,
                          step: float = DEFAULT_STEP_M,
                          max_depth: Optional[float] = None,
                          steps_per_chunk: int = DEFAULT_STEPS_PER_CHUNK,
                          min_transmittance: float = 0.0) -> torch.Tensor:
    """Dispatch expected-depth ray marching through a dense grid: the Triton kernel for fp32
    CUDA rays (see :mod:`gasp_ops.fast_path`), the PyTorch reference otherwise.

    Same arguments and result as :func:`render_expected_depth_reference`.
    """
    if (use_fast_path(origins, directions, density) and origins.dtype == torch.float32
            and directions.dtype == torch.float32):
        from .ray_marching_triton import render_expected_depth_triton
        return render_expected_depth_triton(origins, directions, density, point_cloud_range,
                                            voxel_size, step, max_depth, steps_per_chunk,
                                            min_transmittance)
    return render_expected_depth_reference(origins, directions, density, point_cloud_range,
                                           voxel_size, step, max_depth, steps_per_chunk,
                                           min_transmittance)
