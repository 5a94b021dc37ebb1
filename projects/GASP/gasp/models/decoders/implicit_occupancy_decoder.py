"""Implicit decoder: answers continuous space-time queries from the BEV feature map."""
import math
from typing import Dict, Sequence

import torch
from mmdet3d.registry import MODELS
from mmengine.model import BaseModule
from torch import nn

from gasp_ops import deformable_bev_gather, metric_to_normalized


@MODELS.register_module()
class ImplicitOccupancyDecoder(BaseModule):
    """GASP / UnO implicit field over the BEV feature map.

    Per query q = (x, y, z, t):

    1. bilinear BEV feature at (x, y) and Fourier embedding of (x, y, z, t) -> query MLP -> h;
    2. h -> ``num_points`` metric (x, y) offsets per attention head and softmax attention
       weights (over the points of a head);
    3. deformable gather: head i reads its channel group of the BEV map at (x, y) + offset and
       sums the samples with its weights (:func:`gasp_ops.deformable_bev_gather`);
    4. h + projection of the gathered feature -> residual MLP blocks (the shared trunk);
    5. one linear output layer per configured head.

    Heads are named in ``heads`` with their output size; only configured heads have parameters
    (UnO: ``heads=dict(occupancy=1)``). Heads listed in ``planar_heads`` ignore z: their queries'
    z is set to 0 before anything else (ego occupancy is a field over (x, y, t)).

    Args:
        in_channels: C of the BEV feature map; must be divisible by ``num_heads``.
        point_cloud_range: (x_min, y_min, z_min, x_max, y_max, z_max) covered by the BEV map, in
            the reference frame (ego frame at t0), metres.
        time_range: (t_min, t_max) of query times, seconds after t0 (normalises the embedding).
        embedding: config of the query embedding; ``point_cloud_range`` and ``time_range`` are
            filled in from this decoder's unless given. Its module needs ``out_channels``.
        hidden_channels: width of the query MLP and the trunk.
        num_heads: attention heads of the deformable gather.
        num_points: sampling points K per head.
        offset_scale: metres per unit of the offset layer's output; the offsets start on rings of
            radius (k + 1) * offset_scale, k = 0 .. K - 1, one direction per head.
        num_res_blocks: residual MLP blocks of the trunk.
        heads: output head name -> output size; a size of 1 returns (B, Q) logits.
        planar_heads: heads whose queries are (x, y, t) (z zeroed).
        init_cfg: mmengine initialisation config.
    """

    def __init__(self,
                 in_channels: int = 128,
                 point_cloud_range: Sequence[float] = (-70.0, -70.0, -4.5, 70.0, 70.0, 4.5),
                 time_range: Sequence[float] = (0.0, 3.0),
                 embedding: dict = dict(type='FourierEmbedding', num_frequencies=8),
                 hidden_channels: int = 256,
                 num_heads: int = 4,
                 num_points: int = 8,
                 offset_scale: float = 1.0,
                 num_res_blocks: int = 3,
                 heads: Dict[str, int] = dict(occupancy=1, ego=1, feature=64),
                 planar_heads: Sequence[str] = ('ego', ),
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if in_channels % num_heads != 0:
            raise ValueError(f'ImplicitOccupancyDecoder: in_channels={in_channels} must be '
                             f'divisible by num_heads={num_heads}')
        if not heads:
            raise ValueError('ImplicitOccupancyDecoder: configure at least one output head, '
                             'e.g. heads=dict(occupancy=1)')
        self.point_cloud_range = tuple(point_cloud_range)
        self.num_heads = num_heads
        self.num_points = num_points
        self.offset_scale = offset_scale
        self.head_sizes = dict(heads)
        self.planar_heads = tuple(planar_heads)

        embedding = dict(embedding)
        embedding.setdefault('point_cloud_range', point_cloud_range)
        embedding.setdefault('time_range', time_range)
        self.embedding = MODELS.build(embedding)
        self.query_mlp = nn.Sequential(
            nn.Linear(in_channels + self.embedding.out_channels, hidden_channels), nn.ReLU(),
            nn.Linear(hidden_channels, hidden_channels), nn.ReLU())
        self.sampling_offsets = nn.Linear(hidden_channels, num_heads * num_points * 2)
        self.attention_weights = nn.Linear(hidden_channels, num_heads * num_points)
        self.gathered_proj = nn.Linear(in_channels, hidden_channels)
        self.res_blocks = nn.Sequential(*[
            MODELS.build(dict(type='ResidualMLPBlock', channels=hidden_channels))
            for _ in range(num_res_blocks)
        ])
        self.output_layers = nn.ModuleDict({
            name: nn.Linear(hidden_channels, size)
            for name, size in heads.items()
        })
        self._init_sampling()

    def init_weights(self) -> None:
        """Apply ``init_cfg``, then restore the sampling initialisation it may overwrite."""
        super().init_weights()
        self._init_sampling()

    def _init_sampling(self) -> None:
        """Offsets start on rings, one direction per head (as MultiScaleDeformableAttention);
        attention starts uniform."""
        nn.init.zeros_(self.sampling_offsets.weight)
        angles = torch.arange(self.num_heads, dtype=torch.float32) * (2 * math.pi / self.num_heads)
        directions = torch.stack([angles.cos(), angles.sin()], dim=-1)
        directions = directions / directions.abs().max(dim=-1, keepdim=True).values
        radii = torch.arange(1, self.num_points + 1, dtype=torch.float32)
        bias = directions[:, None, :] * radii[None, :, None]  # (num_heads, K, 2)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(bias.flatten())
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)

    def trunk(self, bev_feats: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """Shared per-query features.

        Args:
            bev_feats: (B, C, H, W) BEV feature map over ``point_cloud_range``.
            queries: (B, Q, 4) metric x, y, z and t (seconds after t0) in the reference frame.

        Returns:
            (B, Q, hidden_channels) trunk features.
        """
        batch, num_queries = queries.shape[:2]
        xy = queries[..., :2]
        centre_locations = metric_to_normalized(xy, self.point_cloud_range)
        centre_feats = deformable_bev_gather(bev_feats, centre_locations[:, :, None, None, :],
                                             queries.new_ones(batch, num_queries, 1, 1))
        hidden = self.query_mlp(torch.cat([centre_feats, self.embedding(queries)], dim=-1))

        offsets_m = self.sampling_offsets(hidden).view(batch, num_queries, self.num_heads,
                                                       self.num_points, 2) * self.offset_scale
        sample_xy = xy[:, :, None, None, :] + offsets_m
        weights = self.attention_weights(hidden).view(batch, num_queries, self.num_heads,
                                                      self.num_points).softmax(dim=-1)
        gathered = deformable_bev_gather(bev_feats,
                                         metric_to_normalized(sample_xy, self.point_cloud_range),
                                         weights)
        return self.res_blocks(hidden + self.gathered_proj(gathered))

    def forward(self,
                bev_feats: torch.Tensor,
                queries: torch.Tensor,
                head: str = 'occupancy') -> torch.Tensor:
        """Evaluate one head of the field at the query points.

        Args:
            bev_feats: (B, C, H, W) BEV feature map over ``point_cloud_range`` (rows along y,
                columns along x).
            queries: (B, Q, 4) metric x, y, z and t (seconds after t0) in the reference frame
                (ego frame at t0). For planar heads z is ignored.
            head: name of a configured head, e.g. 'occupancy', 'ego' or 'feature'.

        Returns:
            (B, Q) logits for a head of size 1, else (B, Q, size) (e.g. distilled features).
        """
        return self.forward_heads(bev_feats, {head: queries})[head]

    def forward_heads(self,
                      bev_feats: torch.Tensor,
                      queries: Dict[str, torch.Tensor],
                      chunk: int = 0) -> Dict[str, torch.Tensor]:
        """Evaluate several heads, each at its own query points, through one pass of the
        shared trunk over all of them (row for row the same as one :meth:`forward` per head,
        with fewer and larger kernels).

        Args:
            bev_feats: (B, C, H, W) BEV feature map, as in :meth:`forward`.
            queries: head name -> (B, Q_head, 4) queries, as in :meth:`forward`.
            chunk: at most this many queries per sample go through the trunk at once (bounds
                the memory of inference); 0: all at once.

        Returns:
            head name -> (B, Q_head) logits or (B, Q_head, size) outputs.
        """
        for head, points in queries.items():
            if head not in self.output_layers:
                raise ValueError(f'ImplicitOccupancyDecoder: head {head!r} is not configured; '
                                 f'configured heads: {sorted(self.head_sizes)}')
            if points.dim() != 3 or points.shape[-1] != 4 or points.shape[0] != bev_feats.shape[0]:
                raise ValueError(
                    'ImplicitOccupancyDecoder: expected queries (B, Q, 4) = (x, y, z, t) with '
                    f'the batch of bev_feats {tuple(bev_feats.shape)}, got '
                    f'{tuple(points.shape)} for head {head!r}')
        if bev_feats.is_cuda:
            # The GPU gather reads a bilinear corner as one contiguous run of channels: convert
            # once here for all gathers of this call (a no-op when the map already is).
            bev_feats = bev_feats.contiguous(memory_format=torch.channels_last)
        parts = [
            torch.cat([q[..., :2], torch.zeros_like(q[..., 2:3]), q[..., 3:]], dim=-1)
            if head in self.planar_heads else q for head, q in queries.items()
        ]
        flat = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        if chunk and flat.shape[1] > chunk:
            trunk = torch.cat([self.trunk(bev_feats, c) for c in flat.split(chunk, dim=1)], dim=1)
        else:
            trunk = self.trunk(bev_feats, flat)
        out = {}
        for head, feats in zip(queries, trunk.split([q.shape[1] for q in parts], dim=1)):
            pred = self.output_layers[head](feats)
            out[head] = pred.squeeze(-1) if self.head_sizes[head] == 1 else pred
        return out
