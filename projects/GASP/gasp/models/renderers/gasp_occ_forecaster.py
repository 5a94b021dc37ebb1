"""GASP / UnO as a 4D occupancy forecaster: the implicit field rendered into depth along rays."""
from typing import Callable, Dict

import torch
from mmdet3d.registry import MODELS

from ..gasp_model import GASP


@MODELS.register_module()
class GASPOccForecaster(GASP):
    """A pre-trained GASP (or UnO) model plus a depth renderer (SPEC s. 5).

    At test time every data sample with ``query_rays`` (``origins`` (M, 3), ``directions``
    (M, 3) unit and ``times_s`` (M,), in the model's reference frame: the ego frame at t = 0)
    gains ``pred_depths`` (M,): the renderer's depth of each ray through the field of
    ``render_head``. Everything else :meth:`GASP.predict` does stays as it is.

    The renderer is :class:`~gasp.evaluation.ExpectedDepthRenderer` (ray marching, no
    parameters) or :class:`LearnedDepthRenderer` (UnO's MLP). The learned one is trained with
    ``freeze_field=True``: the encoder and decoder keep their (loaded) weights and stay in
    eval mode, and the only loss is the renderer's L1 depth error on the future lidar ``rays``
    of the training batch (``LoadFutureRays`` in the pipeline).

    The parameters of the field have the same names as in :class:`GASP`, so a GASP checkpoint
    loads into this model (the renderer's own weights are the only missing keys).

    Args:
        renderer: config of the depth renderer, called as
            ``renderer(field, origins, directions, times) -> (R,) depths``.
        freeze_field: train only the renderer (see above).
        render_head: the decoder head whose logits the renderer reads.
        rays_per_render: rays rendered per renderer call (bounds memory).
        **kwargs: see :class:`GASP`.
    """

    def __init__(self,
                 renderer: dict,
                 freeze_field: bool = False,
                 render_head: str = 'occupancy',
                 rays_per_render: int = 2**14,
                 **kwargs):
        super().__init__(**kwargs)
        if render_head not in self.heads:
            raise ValueError(f'GASPOccForecaster: render_head {render_head!r} is not a decoder '
                             f'head (heads: {self.heads})')
        self.renderer = MODELS.build(renderer)
        self.render_head = render_head
        self.rays_per_render = rays_per_render
        self.freeze_field = freeze_field
        if freeze_field:
            if not any(True for _ in self.renderer.parameters()):
                raise ValueError(
                    f'GASPOccForecaster: freeze_field=True trains only the renderer, but '
                    f'{type(self.renderer).__name__} has no parameters; use '
                    'LearnedDepthRenderer, or set freeze_field=False')
            for name, param in self.named_parameters():
                if not name.startswith('renderer.'):
                    param.requires_grad_(False)

    def train(self, mode: bool = True):
        """With ``freeze_field`` the field (and its batch norms) always stays in eval mode."""
        super().train(mode)
        if self.freeze_field:
            for name, child in self.named_children():
                if name not in ('renderer', 'data_preprocessor'):
                    child.eval()
        return self

    def field(self, bev: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """The ``render_head`` field of one sample: (N, 4) points -> (N,) logits.

        Args:
            bev: (1, C, H', W') BEV feature map of the sample.
        """
        return lambda points: self.query(bev, points[None].to(bev.dtype), self.render_head)[0]

    def render_depths(self, bev: torch.Tensor, origins: torch.Tensor, directions: torch.Tensor,
                      times_s: torch.Tensor) -> torch.Tensor:
        """(M,) depths of one sample's rays, ``rays_per_render`` at a time.

        Args:
            bev: (1, C, H', W') BEV feature map of the sample.
            origins, directions: (M, 3) rays in the reference frame; times_s: (M,) (s).
        """
        field = self.field(bev)
        chunks = [
            self.renderer(field, o, d, t) for o, d, t in zip(
                origins.split(self.rays_per_render), directions.split(self.rays_per_render),
                times_s.split(self.rays_per_render))
        ]
        return torch.cat(chunks) if chunks else origins.new_zeros(0)

    def loss(self, inputs: dict, data_samples=None) -> Dict[str, torch.Tensor]:
        """GASP's field losses, or with ``freeze_field`` the renderer's depth loss."""
        if not self.freeze_field:
            return super().loss(inputs, data_samples)
        with torch.no_grad():
            bev = self.extract_bev(inputs)
        preds, gts = [], []
        for i, sample in enumerate(data_samples):
            if 'rays' not in sample:
                raise ValueError(
                    f'GASPOccForecaster: sample of log {sample.metainfo.get("log_id")} at '
                    f'{sample.metainfo.get("timestamp_ns")} has no future rays to train the '
                    'renderer on; add LoadFutureRays to the train pipeline')
            rays = sample.rays
            preds.append(
                self.render_depths(bev[i:i + 1], rays.origins, rays.directions, rays.times_s))
            gts.append(rays.depths)
        return dict(loss_depth=self.renderer.loss(torch.cat(preds), torch.cat(gts)))

    def predict(self, inputs: dict, data_samples) -> list:
        """Render ``pred_depths`` for samples with ``query_rays``, then :meth:`GASP.predict`."""
        bev = self.extract_bev(inputs)
        for i, sample in enumerate(data_samples):
            if 'query_rays' in sample:
                rays = sample.query_rays
                depths = self.render_depths(bev[i:i + 1], rays.origins, rays.directions,
                                            rays.times_s)
                sample.set_field(depths.float(), 'pred_depths')
        return self.predict_from_bev(bev, inputs, data_samples)
