"""The BEV encoder shared by pre-training (:class:`GASP`) and fine-tuning models."""
from typing import Optional

import torch
from mmdet3d.registry import MODELS


class BEVEncoderMixin:
    """Builds and runs the encoder: GASP's own dense BEV CNN (``backbone`` reading
    ``inputs['bev']``) or any mmdet3d chain ``voxel_encoder`` -> ``middle_encoder`` ->
    ``backbone`` -> ``neck`` (reading ``inputs['voxels']``).

    The parts keep these attribute names in every model, so a pre-training checkpoint's
    encoder weights load into a fine-tuning model by name.
    """

    def build_encoder(self,
                      backbone: dict,
                      voxel_encoder: Optional[dict] = None,
                      middle_encoder: Optional[dict] = None,
                      neck: Optional[dict] = None) -> None:
        self.voxel_encoder = MODELS.build(voxel_encoder) if voxel_encoder else None
        self.middle_encoder = MODELS.build(middle_encoder) if middle_encoder else None
        self.backbone = MODELS.build(backbone)
        self.neck = MODELS.build(neck) if neck else None

    def extract_bev(self, inputs: dict) -> torch.Tensor:
        """(B, C, H', W') BEV feature map over the decoder's ``point_cloud_range``."""
        if self.voxel_encoder is not None:
            voxels = inputs['voxels']
            feats = self.voxel_encoder(voxels['voxels'], voxels['num_points'], voxels['coors'])
            batch_size = len(inputs['points'])
            x = self.middle_encoder(feats, voxels['coors'], batch_size)
        else:
            x = inputs['bev']
        x = self.backbone(x)
        if self.neck is not None:
            x = self.neck(x)
        return x[0] if isinstance(x, (list, tuple)) else x
