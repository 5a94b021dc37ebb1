"""GASP (and UnO): a BEV encoder plus an implicit field queried at future space-time points."""
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmdet3d.registry import MODELS
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement

from .bev_encoder import BEVEncoderMixin


@MODELS.register_module()
class GASP(BEVEncoderMixin, BaseModel):
    """Self-supervised pre-training of a BEV encoder with an implicit 4D field.

    The encoder is either GASP's own dense BEV CNN (``backbone`` reading ``inputs['bev']``)
    or any mmdet3d chain ``voxel_encoder`` -> ``middle_encoder`` -> ``backbone`` -> ``neck``
    (reading ``inputs['voxels']``). The decoder answers queries (x, y, z, t) with one head
    per target: ``occupancy`` (UnO's and GASP's), ``ego`` and ``feature`` (GASP's).
    UnO is this model with an occupancy head only.

    Args:
        backbone: BEV backbone config.
        decoder: :class:`ImplicitOccupancyDecoder` config; its ``heads`` name the targets.
        losses: head name -> loss config; every batch must bring targets for each.
        voxel_encoder, middle_encoder, neck: optional mmdet3d parts before/after the backbone.
        data_preprocessor: :class:`GASPDataPreprocessor` config.
        decoder_chunk: queries per sample through the decoder trunk at once, the heads' query
            sets together (bounds the memory of inference; 0 = all at once).
    """

    def __init__(self,
                 backbone: dict,
                 decoder: dict,
                 losses: Dict[str, dict],
                 voxel_encoder: Optional[dict] = None,
                 middle_encoder: Optional[dict] = None,
                 neck: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 decoder_chunk: int = 0,
                 init_cfg=None):
        if isinstance(data_preprocessor, dict):  # from mmdet3d's registry, whatever the scope
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.build_encoder(backbone, voxel_encoder, middle_encoder, neck)
        self.decoder = MODELS.build(decoder)
        unknown = set(losses) - set(self.decoder.head_sizes)
        if unknown:
            raise ValueError(f'GASP: losses for {sorted(unknown)} but the decoder has only '
                             f'heads {sorted(self.decoder.head_sizes)}')
        self.losses = torch.nn.ModuleDict({k: MODELS.build(v) for k, v in losses.items()})
        self.decoder_chunk = decoder_chunk

    @property
    def heads(self) -> List[str]:
        return list(self.decoder.head_sizes)

    def query(self, bev: torch.Tensor, queries: torch.Tensor, head: str) -> torch.Tensor:
        """Evaluate ``head`` at (B, Q, 4) queries, in chunks of ``decoder_chunk``."""
        return self.query_heads(bev, {head: queries})[head]

    def query_heads(self, bev: torch.Tensor,
                    queries: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Evaluate several heads, each at its (B, Q_head, 4) queries, through one pass of the
        shared decoder trunk (in chunks of ``decoder_chunk`` queries per sample)."""
        return self.decoder.forward_heads(bev, queries, self.decoder_chunk)

    def loss(self, inputs: dict, data_samples=None) -> Dict[str, torch.Tensor]:
        bev = self.extract_bev(inputs)
        targets = inputs['targets']
        missing = sorted(set(self.losses) - set(targets))
        if missing:
            raise ValueError(
                f'GASP.loss: the batch has no targets for head(s) {missing}. Give the data '
                'preprocessor a sampler for them (ego_sampler, num_feature_queries) and the '
                'pipeline their loader (LoadFutureEgoPath, LoadFeatureTargets), or remove the '
                'head from model.decoder.heads and model.losses.')
        # All heads through one trunk pass: a quarter of the decoder's kernel launches of
        # one call per head and query chunk, on larger matrices.
        preds = self.query_heads(bev, {head: targets[head]['queries'] for head in self.losses})
        return {
            f'loss_{head}': loss_fn(preds[head].float(), targets[head]['labels'])
            for head, loss_fn in self.losses.items()
        }

    def predict(self, inputs: dict, data_samples: Sequence[BaseDataElement]) -> list:
        """Answer every query set of the batch; optionally render dense BEV fields.

        Each returned data sample gains ``pred_<head>`` (Q,) logits / (Q, D) features,
        ``gt_<head>`` labels and ``queries_<head>`` (Q, 4) for every head with targets.
        When a sample's metainfo has ``render_times_s`` (and optionally ``render_z``),
        ``bev_<head>`` holds (T, H', W') logits at the BEV feature cell centres for each
        time (``occupancy`` and ``ego``).
        """
        return self.predict_from_bev(self.extract_bev(inputs), inputs, data_samples)

    def predict_from_bev(self, bev: torch.Tensor, inputs: dict,
                         data_samples: Sequence[BaseDataElement]) -> list:
        """:meth:`predict` on an already computed (B, C, H', W') BEV feature map."""
        for head, target in inputs['targets'].items():
            if head not in self.heads:
                continue
            pred = self.query(bev, target['queries'], head).float()
            for i, sample in enumerate(data_samples):
                sample.set_field(pred[i], f'pred_{head}')
                sample.set_field(target['labels'][i], f'gt_{head}')
                sample.set_field(target['queries'][i], f'queries_{head}')
        for i, sample in enumerate(data_samples):
            times = sample.metainfo.get('render_times_s')
            if times is not None:
                for head in ('occupancy', 'ego'):
                    if head in self.heads:
                        sample.set_field(
                            self.render_bev(bev[i:i + 1], head, times,
                                            sample.metainfo.get('render_z', 0.0)), f'bev_{head}')
        return list(data_samples)

    @torch.no_grad()
    def render_bev(self,
                   bev: torch.Tensor,
                   head: str,
                   times_s: Sequence[float],
                   z: float = 0.0) -> torch.Tensor:
        """Dense (T, H', W') logits of ``head`` at the centres of the BEV feature cells, at
        height ``z`` (m) and each time in ``times_s`` (s)."""
        x0, y0, _, x1, y1, _ = self.decoder.point_cloud_range
        height, width = bev.shape[-2:]
        ys = y0 + (torch.arange(height, device=bev.device) + 0.5) * (y1 - y0) / height
        xs = x0 + (torch.arange(width, device=bev.device) + 0.5) * (x1 - x0) / width
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing='ij')
        out = []
        for t in times_s:
            queries = torch.stack(
                [grid_x, grid_y,
                 torch.full_like(grid_x, z),
                 torch.full_like(grid_x, float(t))],
                dim=-1).view(1, -1, 4)
            out.append(self.query(bev, queries, head).view(height, width))
        return torch.stack(out)

    def forward(self,
                inputs: dict,
                data_samples: Optional[list] = None,
                mode: str = 'tensor') -> Union[Dict[str, torch.Tensor], list, torch.Tensor]:
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.extract_bev(inputs)
        raise ValueError(f'GASP.forward: unknown mode {mode!r} (loss, predict or tensor)')
