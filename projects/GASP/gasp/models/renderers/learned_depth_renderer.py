"""UnO's learned depth renderer: an MLP reads the occupancy sampled along a ray and predicts
where the ray ends.

The field is sampled at ``num_samples`` depths spread evenly over the ray's part inside the
region, ``d_j = near + (j + 0.5) (far - near) / N``. The MLP maps the occupancy probabilities
(and the ray's length inside the region) to N + 1 logits: a distribution over the sample
depths and the ray's far end. The predicted depth is its mean,

    depth = sum_j w_j d_j + w_out far,    w = softmax(MLP(p_1 .. p_N, (far - near) / max_depth)),

so it always lies in [near, far]. It is trained with an L1 loss against lidar depths of the
training split while the field stays frozen (:class:`GASPOccForecaster` with
``freeze_field=True``); the field is therefore always evaluated without gradients here.
"""
from typing import Optional, Sequence

import torch
from mmdet3d.registry import MODELS
from mmengine.model import BaseModule
from torch import nn
from torch.nn import functional as F

from gasp_ops import ray_box_intersection
from ...evaluation.expected_depth_renderer import OccupancyField
from ...evaluation.occ_forecasting_protocol import NEAR_FIELD_RANGE


@MODELS.register_module()
class LearnedDepthRenderer(BaseModule):
    """Depth of rays from the occupancy probabilities sampled along them (UnO).

    Args:
        num_samples: occupancy samples N per ray.
        hidden_channels: width of the MLP.
        num_layers: hidden layers of the MLP.
        max_depth: rays end here (m), or at the exit of ``point_cloud_range`` when closer.
        point_cloud_range: region (x_min, y_min, z_min, x_max, y_max, z_max) of the field
            (m); None: rays run from their origin to ``max_depth``.
        field_output: whether the field returns 'logits' or 'probabilities'.
        loss_weight: weight of the L1 depth loss.
        init_cfg: mmengine initialisation config.
    """

    def __init__(self,
                 num_samples: int = 128,
                 hidden_channels: int = 128,
                 num_layers: int = 2,
                 max_depth: float = 100.0,
                 point_cloud_range: Optional[Sequence[float]] = NEAR_FIELD_RANGE,
                 field_output: str = 'logits',
                 loss_weight: float = 1.0,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if field_output not in ('logits', 'probabilities'):
            raise ValueError("LearnedDepthRenderer: field_output must be 'logits' or "
                             f"'probabilities', got {field_output!r}")
        self.num_samples = num_samples
        self.max_depth = max_depth
        self.point_cloud_range = tuple(point_cloud_range) if point_cloud_range else None
        self.field_output = field_output
        self.loss_weight = loss_weight
        layers, width = [], num_samples + 1
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden_channels), nn.ReLU()]
            width = hidden_channels
        layers.append(nn.Linear(width, num_samples + 1))
        self.mlp = nn.Sequential(*layers)

    def ray_limits(self, origins: torch.Tensor, directions: torch.Tensor):
        """(near, far) distances (R,) of the rays' part inside the region, capped at
        ``max_depth``."""
        if self.point_cloud_range is None:
            near = origins.new_zeros(origins.shape[0])
            return near, near + self.max_depth
        near, far = ray_box_intersection(origins, directions, self.point_cloud_range)
        far = far.clamp(max=self.max_depth)
        return near, torch.maximum(far, near)

    def sample_depths(self, near: torch.Tensor, far: torch.Tensor) -> torch.Tensor:
        """(R, N) evenly spread sample depths in [near, far]."""
        fractions = (torch.arange(self.num_samples, device=near.device, dtype=near.dtype) +
                     0.5) / self.num_samples
        return near[:, None] + (far - near)[:, None] * fractions

    def forward(self, field: OccupancyField, origins: torch.Tensor, directions: torch.Tensor,
                times: torch.Tensor) -> torch.Tensor:
        """Predicted depth of each ray (differentiable in the MLP's parameters).

        Args:
            field: maps (N, 4) points (x, y, z, t) to (N,) occupancy logits or probabilities.
            origins: (R, 3) ray origins (m), in the field's frame.
            directions: (R, 3) unit directions.
            times: (R,) or scalar time of each ray (s, relative to t = 0).

        Returns:
            (R,) depth (m), within each ray's [near, far].
        """
        origins, directions = origins.float(), directions.float()
        directions = directions / directions.norm(dim=1, keepdim=True)
        times = torch.as_tensor(
            times, dtype=origins.dtype, device=origins.device).expand(origins.shape[0])
        near, far = self.ray_limits(origins, directions)
        depths = self.sample_depths(near, far)  # (R, N)
        points = origins[:, None] + depths[..., None] * directions[:, None]
        queries = torch.cat([points, times[:, None, None].expand(-1, self.num_samples, 1)], -1)
        with torch.no_grad():  # the field is frozen; only the MLP learns
            values = field(queries.reshape(-1, 4)).float().reshape(depths.shape)
            occupancy = torch.sigmoid(values) if self.field_output == 'logits' else values
        span = ((far - near) / self.max_depth)[:, None]
        weights = self.mlp(torch.cat([occupancy, span], dim=1)).softmax(dim=1)
        return (weights[:, :-1] * depths).sum(dim=1) + weights[:, -1] * far

    def loss(self, pred_depths: torch.Tensor, gt_depths: torch.Tensor) -> torch.Tensor:
        """Weighted mean L1 error (m) between predicted and lidar depths."""
        return self.loss_weight * F.l1_loss(pred_depths, gt_depths.to(pred_depths.dtype))
