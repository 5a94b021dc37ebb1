"""Fourier (sinusoidal) embedding of space-time query points."""
from typing import Sequence

import torch
from mmdet3d.registry import MODELS
from mmengine.model import BaseModule


@MODELS.register_module()
class FourierEmbedding(BaseModule):
    """Embed metric query points (x, y, z, t) with sines and cosines of growing frequency.

    Each coordinate is first normalised to [-1, 1] over its range: x, y, z over
    ``point_cloud_range`` and t over ``time_range``. With ``u`` the normalised coordinate, the
    embedding is ``[u, sin(2^0 pi u), cos(2^0 pi u), ..., sin(2^(L-1) pi u), cos(2^(L-1) pi u)]``
    per coordinate (``u`` itself only with ``include_input``), ordered frequency-major within each
    coordinate and coordinate-major overall.

    Args:
        point_cloud_range: (x_min, y_min, z_min, x_max, y_max, z_max) of the query region in the
            reference frame, metres.
        time_range: (t_min, t_max) of the query times, seconds relative to t0.
        num_frequencies: L, number of octaves per coordinate.
        include_input: also output the normalised coordinates themselves.
        init_cfg: mmengine initialisation config (the layer has no parameters).
    """

    def __init__(self,
                 point_cloud_range: Sequence[float] = (-70.0, -70.0, -4.5, 70.0, 70.0, 4.5),
                 time_range: Sequence[float] = (0.0, 3.0),
                 num_frequencies: int = 8,
                 include_input: bool = True,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        lower = [*point_cloud_range[:3], time_range[0]]
        upper = [*point_cloud_range[3:], time_range[1]]
        if any(hi <= lo for lo, hi in zip(lower, upper)):
            raise ValueError('FourierEmbedding: every range must have max > min, got '
                             f'point_cloud_range={tuple(point_cloud_range)}, '
                             f'time_range={tuple(time_range)}')
        self.num_frequencies = num_frequencies
        self.include_input = include_input
        self.register_buffer('lower', torch.tensor(lower), persistent=False)
        self.register_buffer('upper', torch.tensor(upper), persistent=False)
        self.register_buffer(
            'frequencies', torch.pi * 2.0**torch.arange(num_frequencies), persistent=False)

    @property
    def out_channels(self) -> int:
        """Size of the embedding of one 4-D query point."""
        return 4 * (int(self.include_input) + 2 * self.num_frequencies)

    def normalize(self, queries: torch.Tensor) -> torch.Tensor:
        """Map metric (x, y, z, t) to [-1, 1] over the configured ranges.

        Args:
            queries: (..., 4) metric x, y, z in the reference frame and t in seconds.

        Returns:
            (..., 4) normalised coordinates.
        """
        lower, upper = self.lower.to(queries.dtype), self.upper.to(queries.dtype)
        return 2.0 * (queries - lower) / (upper - lower) - 1.0

    def forward(self, queries: torch.Tensor) -> torch.Tensor:
        """Embed query points.

        Args:
            queries: (..., 4) metric x, y, z in the reference frame and t in seconds.

        Returns:
            (..., out_channels) embedding.
        """
        if queries.shape[-1] != 4:
            raise ValueError('FourierEmbedding: expected queries (..., 4) = (x, y, z, t), got '
                             f'{tuple(queries.shape)}')
        coords = self.normalize(queries)
        angles = coords.unsqueeze(-1) * self.frequencies.to(coords.dtype)  # (..., 4, L)
        parts = [torch.sin(angles), torch.cos(angles)]
        # (..., 4, L, 2) -> frequency-major sin/cos pairs per coordinate.
        features = torch.stack(parts, dim=-1).flatten(-2)
        if self.include_input:
            features = torch.cat([coords.unsqueeze(-1), features], dim=-1)
        return features.flatten(-2)
