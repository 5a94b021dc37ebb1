"""Expected depth along rays from an implicit occupancy field or a dense density grid
(SPEC s. 5, the benchmark's reference renderer).

With an implicit field the ray is cut into segments of ``step`` metres; the field's occupancy
probability at a segment midpoint (at the ray's time) is that segment's alpha, i.e. its
optical thickness is s_i = -log(1 - alpha_i) (``softplus(logit)`` for logits), so that

    p_i = exp(-S_{i-1}) - exp(-S_i) = alpha_i prod_{j<i} (1 - alpha_j),
    depth = sum_i p_i d_i + p_out d_max.

The alpha of the last, shorter segment is not rescaled (a probability per sample, not per
metre). With a dense grid the density is integrated over the segment length instead
(:func:`gasp_ops.render_expected_depth`).
"""
from typing import Callable, Optional, Sequence

import torch
from mmdet3d.registry import MODELS
from torch import nn
from torch.nn import functional as F

from gasp_ops import march_expected_depth, ray_box_intersection, render_expected_depth
from .occ_forecasting_protocol import NEAR_FIELD_RANGE

FIELD_OUTPUTS = ('logits', 'probabilities')
DEFAULT_MAX_DEPTH_M = 100.0  # marching limit for implicit fields when no region is given

#: ``field(points (N, 4): x, y, z, t) -> (N,) occupancy logits or probabilities``.
OccupancyField = Callable[[torch.Tensor], torch.Tensor]


@MODELS.register_module()
class ExpectedDepthRenderer(nn.Module):
    """Turn an occupancy field along rays into expected depth.

    Args:
        step: marching step (m); 0.2 m is the benchmark grid's cell.
        max_depth: marching ends here (m), or at the exit of ``point_cloud_range`` when that is
            closer; the depth of a ray that never terminates.
        point_cloud_range: region (x_min, y_min, z_min, x_max, y_max, z_max) the field is
            defined on (None: only ``max_depth`` limits the rays). Also the dense grid's region.
        voxel_size: (x, y, z) cell size of dense grids (m).
        field_output: whether the field returns 'logits' or 'probabilities'.
        steps_per_chunk: segments evaluated per field call and ray.
        min_transmittance: rays stop once their transmittance falls to this value (their
            remaining probability goes to ``d_max``); 0 evaluates every segment exactly.
    """

    def __init__(self,
                 step: float = 0.2,
                 max_depth: float = DEFAULT_MAX_DEPTH_M,
                 point_cloud_range: Optional[Sequence[float]] = NEAR_FIELD_RANGE,
                 voxel_size: Sequence[float] = (0.2, 0.2, 0.2),
                 field_output: str = 'logits',
                 steps_per_chunk: int = 32,
                 min_transmittance: float = 1e-4):
        super().__init__()
        if field_output not in FIELD_OUTPUTS:
            raise ValueError(f'field_output must be one of {FIELD_OUTPUTS}, got {field_output!r}')
        self.step = step
        self.max_depth = max_depth
        self.point_cloud_range = tuple(point_cloud_range) if point_cloud_range else None
        self.voxel_size = tuple(voxel_size)
        self.field_output = field_output
        self.steps_per_chunk = steps_per_chunk
        self.min_transmittance = min_transmittance

    def ray_limits(self, origins: torch.Tensor, directions: torch.Tensor):
        """(near, far) marching distances (R,) of rays: the region's entry and exit, capped
        at ``max_depth``."""
        if self.point_cloud_range is None:
            near = origins.new_zeros(origins.shape[0])
            return near, near + self.max_depth
        near, far = ray_box_intersection(origins, directions, self.point_cloud_range)
        far = far.clamp(max=self.max_depth)
        return near, torch.maximum(far, near)

    def _thickness(self, values: torch.Tensor) -> torch.Tensor:
        if self.field_output == 'logits':
            return F.softplus(values.float())  # -log(1 - sigmoid(l))
        return -torch.log1p(-values.float().clamp(0.0, 1.0))

    @torch.no_grad()
    def forward(self, field: OccupancyField, origins: torch.Tensor, directions: torch.Tensor,
                times: torch.Tensor) -> torch.Tensor:
        """Expected depth of rays through an implicit field (evaluation: no gradients).

        Args:
            field: maps (N, 4) points (x, y, z, t) to (N,) occupancy logits or probabilities.
            origins: (R, 3) ray origins (m), in the field's frame.
            directions: (R, 3) unit directions.
            times: (R,) or scalar time of each ray (s, relative to t = 0), the field's t.

        Returns:
            (R,) expected depth (m).
        """
        directions = directions / directions.norm(dim=1, keepdim=True)
        times = torch.as_tensor(
            times, dtype=origins.dtype, device=origins.device).expand(origins.shape[0])
        near, far = self.ray_limits(origins, directions)

        def field_thickness(points, ray_index, lengths):
            t = times[ray_index, None, None].expand(points.shape[:2] + (1, ))
            queries = torch.cat([points, t.to(points.dtype)], dim=-1).reshape(-1, 4)
            values = field(queries).reshape(points.shape[:2])
            return self._thickness(values)

        return march_expected_depth(origins, directions, near, far, self.step, field_thickness,
                                    self.steps_per_chunk, self.min_transmittance)

    @torch.no_grad()
    def render_grid(self, density: torch.Tensor, origins: torch.Tensor,
                    directions: torch.Tensor) -> torch.Tensor:
        """Expected depth of rays through a dense density grid over ``point_cloud_range``.

        Args:
            density: (Z, Y, X) density (1/m), ``inf`` for opaque cells.
            origins: (R, 3) ray origins (m).
            directions: (R, 3) unit directions.

        Returns:
            (R,) expected depth (m), ``min(grid exit, max_depth)`` for rays that cross.
        """
        if self.point_cloud_range is None:
            raise ValueError('ExpectedDepthRenderer.render_grid needs point_cloud_range')
        return render_expected_depth(
            origins,
            directions,
            density,
            self.point_cloud_range,
            self.voxel_size,
            self.step,
            self.max_depth,
            min_transmittance=self.min_transmittance)
