"""Point-to-BEV voxel scatter: past lidar points -> dense BEV occupancy with height and time
as channels (the encoder's input grid).

:func:`bev_voxelize_reference` is the plain PyTorch specification of the op;
:func:`bev_voxelize` is the one dispatch point: CUDA tensors run the Triton kernel of
:mod:`gasp_ops.bev_voxelize_triton`, everything else the reference.

Grid convention (shared with :mod:`gasp_ops.deformable_bev_gather` and mmdet3d's
``PointPillarsScatter``): the region is ``point_cloud_range = (x_min, y_min, z_min, x_max, y_max,
z_max)`` in the reference frame, every axis half-open ``[min, max)``; cell ``(iz, iy, ix)`` spans
``[min + i * size, min + (i + 1) * size)`` on each axis; the output is indexed
``[batch, channel, iy, ix]`` (rows follow y, columns follow x) with
``channel = time_slot * num_height_slices + iz``.
"""
from typing import Sequence, Tuple

import torch

from .fast_path import use_fast_path

DEFAULT_POINT_CLOUD_RANGE = (-70.0, -70.0, -4.5, 70.0, 70.0, 4.5)  # (default) metres
DEFAULT_VOXEL_SIZE = (0.2, 0.2, 0.2)  # (default) metres, (x, y, z)


def bev_grid_shape(point_cloud_range: Sequence[float],
                   voxel_size: Sequence[float]) -> Tuple[int, int, int]:
    """Number of cells of the grid along each axis.

    Args:
        point_cloud_range: (x_min, y_min, z_min, x_max, y_max, z_max) in metres.
        voxel_size: (x, y, z) cell size in metres; must divide the region (to 1e-6 cells).

    Returns:
        (num_height_slices, H, W): cells along z, y and x.
    """
    if len(point_cloud_range) != 6 or len(voxel_size) != 3:
        raise ValueError('bev_voxelize: point_cloud_range must have 6 values and voxel_size 3, '
                         f'got {tuple(point_cloud_range)} and {tuple(voxel_size)}')
    cells = []
    for axis in range(3):
        extent = point_cloud_range[axis + 3] - point_cloud_range[axis]
        count = extent / voxel_size[axis]
        if extent <= 0 or abs(count - round(count)) > 1e-6:
            raise ValueError(f'bev_voxelize: axis {"xyz"[axis]} extent {extent} m is not a '
                             f'positive multiple of the voxel size {voxel_size[axis]} m; change '
                             'point_cloud_range or voxel_size in the config')
        cells.append(int(round(count)))
    num_x, num_y, num_z = cells
    return num_z, num_y, num_x


def _check_points(points: torch.Tensor, batch_idx: torch.Tensor, time_idx: torch.Tensor) -> None:
    if points.dim() != 2 or points.shape[1] < 3:
        raise ValueError(f'bev_voxelize: expected points (N, >=3), got {tuple(points.shape)}')
    if batch_idx.shape != points.shape[:1] or time_idx.shape != points.shape[:1]:
        raise ValueError('bev_voxelize: batch_idx and time_idx must be (N,) like points, got '
                         f'{tuple(batch_idx.shape)} and {tuple(time_idx.shape)} for '
                         f'{points.shape[0]} points')


def bev_voxelize_reference(points: torch.Tensor,
                           batch_idx: torch.Tensor,
                           time_idx: torch.Tensor,
                           batch_size: int,
                           num_time_slots: int,
                           point_cloud_range: Sequence[float] = DEFAULT_POINT_CLOUD_RANGE,
                           voxel_size: Sequence[float] = DEFAULT_VOXEL_SIZE,
                           dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Scatter points into a binary BEV occupancy grid (the specification of the op).

    A cell is 1 when at least one point of that sample and time slot falls in it, else 0.
    Points outside ``point_cloud_range`` (half-open on every axis) are dropped. Not
    differentiable (the output is an indicator).

    Args:
        points: (N, 3 + F) points in the reference frame (ego frame at t0), metres; only the
            first three columns (x, y, z) are used.
        batch_idx: (N,) integer sample index of each point, in [0, batch_size).
        time_idx: (N,) integer past-sweep slot of each point, in [0, num_time_slots).
        batch_size: B, number of samples.
        num_time_slots: T, number of past sweeps.
        point_cloud_range: (x_min, y_min, z_min, x_max, y_max, z_max) in metres.
        voxel_size: (x, y, z) cell size in metres.
        dtype: floating dtype of the output.

    Returns:
        (B, T * Z, H, W) occupancy with Z = height slices, H = cells along y, W = cells along
        x; channel ``t * Z + iz``.
    """
    _check_points(points, batch_idx, time_idx)
    num_z, num_y, num_x = bev_grid_shape(point_cloud_range, voxel_size)
    device = points.device
    bev = torch.zeros((batch_size, num_time_slots * num_z, num_y, num_x),
                      dtype=dtype,
                      device=device)

    xyz = points[:, :3].to(torch.float64)
    lower = torch.tensor(point_cloud_range[:3], dtype=torch.float64, device=device)
    upper = torch.tensor(point_cloud_range[3:], dtype=torch.float64, device=device)
    size = torch.tensor(voxel_size, dtype=torch.float64, device=device)
    shape_xyz = torch.tensor((num_x, num_y, num_z), dtype=torch.long, device=device)
    cell = torch.floor((xyz - lower) / size).long()
    # Guard against rounding at the upper edge: a point below max can round into cell == size.
    valid = ((xyz >= lower) & (xyz < upper) & (cell >= 0) & (cell < shape_xyz)).all(dim=1)
    batch = batch_idx.long()
    slot = time_idx.long()
    valid &= (batch >= 0) & (batch < batch_size) & (slot >= 0) & (slot < num_time_slots)

    ix, iy, iz = cell[valid].unbind(dim=1)
    channel = slot[valid] * num_z + iz
    flat = ((batch[valid] * (num_time_slots * num_z) + channel) * num_y + iy) * num_x + ix
    bev.view(-1).index_fill_(0, flat, 1)
    return bev


def bev_voxelize(points: torch.Tensor,
                 batch_idx: torch.Tensor,
                 time_idx: torch.Tensor,
                 batch_size: int,
                 num_time_slots: int,
                 point_cloud_range: Sequence[float] = DEFAULT_POINT_CLOUD_RANGE,
                 voxel_size: Sequence[float] = DEFAULT_VOXEL_SIZE,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Dispatch point-to-BEV occupancy scatter: the Triton kernel for CUDA tensors (see
    :mod:`gasp_ops.fast_path`), the PyTorch reference otherwise.

    Same arguments and result as :func:`bev_voxelize_reference`.
    """
    if use_fast_path(points, batch_idx, time_idx):
        from .bev_voxelize_triton import bev_voxelize_triton
        return bev_voxelize_triton(points, batch_idx, time_idx, batch_size, num_time_slots,
                                   point_cloud_range, voxel_size, dtype)
    return bev_voxelize_reference(points, batch_idx, time_idx, batch_size, num_time_slots,
                                  point_cloud_range, voxel_size, dtype)
