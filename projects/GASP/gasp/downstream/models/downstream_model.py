"""A GASP encoder with a task head: the model of every downstream fine-tuning config."""
from typing import Dict, Optional, Union

import torch
from mmdet3d.registry import MODELS
from mmengine.model import BaseModel

from ...models.bev_encoder import BEVEncoderMixin


@MODELS.register_module()
class DownstreamModel(BEVEncoderMixin, BaseModel):
    """BEV encoder + one task head.

    The encoder parts carry the names of :class:`GASP`'s (``voxel_encoder``,
    ``middle_encoder``, ``backbone``, ``neck``), so ``load_from`` a GASP or UnO pre-training
    checkpoint loads exactly the encoder weights: the pre-training decoder (``decoder.*``)
    has no counterpart here and the task head (``head.*``) starts from its initialisation.

    Args:
        backbone, voxel_encoder, middle_encoder, neck: the encoder, as in :class:`GASP`.
        head: the task head config; it provides ``loss(bev, data_samples)`` and
            ``predict(bev, data_samples)``.
        data_preprocessor: a :class:`GASPDataPreprocessor` config without query samplers.
        freeze_encoder: train the head only (linear-probe style).
    """

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 voxel_encoder: Optional[dict] = None,
                 middle_encoder: Optional[dict] = None,
                 neck: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 freeze_encoder: bool = False,
                 init_cfg=None):
        if isinstance(data_preprocessor, dict):  # from mmdet3d's registry, whatever the scope
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.build_encoder(backbone, voxel_encoder, middle_encoder, neck)
        self.head = MODELS.build(head)
        self.freeze_encoder = freeze_encoder
        if freeze_encoder:
            for part in self.encoder_parts():
                part.requires_grad_(False)

    def encoder_parts(self):
        return [
            m for m in (self.voxel_encoder, self.middle_encoder, self.backbone, self.neck)
            if m is not None
        ]

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_encoder:  # frozen norm statistics too
            for part in self.encoder_parts():
                part.eval()
        return self

    def forward(self,
                inputs: dict,
                data_samples: Optional[list] = None,
                mode: str = 'tensor') -> Union[Dict[str, torch.Tensor], list, torch.Tensor]:
        if mode == 'tensor':
            return self.extract_bev(inputs)
        bev = self.extract_bev(inputs)
        if mode == 'loss':
            return self.head.loss(bev, data_samples)
        if mode == 'predict':
            self.head.predict(bev, data_samples)
            return list(data_samples)
        raise ValueError(f'DownstreamModel.forward: unknown mode {mode!r} (loss, predict or '
                         'tensor)')
