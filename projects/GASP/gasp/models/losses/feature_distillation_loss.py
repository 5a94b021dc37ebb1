"""L1 + cosine loss between predicted and distilled vision-foundation-model features."""
from typing import Optional

import torch
import torch.nn.functional as F
from mmdet3d.registry import MODELS
from torch import nn

from .weighted_mean import weighted_mean


@MODELS.register_module()
class FeatureDistillationLoss(nn.Module):
    """L1 + cosine distillation: ``loss_weight * mean_q(l1_weight * L1_q + cosine_weight * cos_q)``.

    Per query ``L1_q = mean_d |pred_qd - target_qd|`` and
    ``cos_q = 1 - cos(pred_q, target_q)``; the mean over queries is weighted by ``weights`` when
    given.

    Args:
        l1_weight: weight of the L1 term.
        cosine_weight: weight of the cosine term.
        loss_weight: factor on the whole loss.
        eps: lower bound of the vector norms in the cosine similarity.
    """

    def __init__(self,
                 l1_weight: float = 1.0,
                 cosine_weight: float = 1.0,
                 loss_weight: float = 1.0,
                 eps: float = 1e-8):
        super().__init__()
        self.l1_weight = l1_weight
        self.cosine_weight = cosine_weight
        self.loss_weight = loss_weight
        self.eps = eps

    def forward(self,
                pred: torch.Tensor,
                target: torch.Tensor,
                weights: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Compute the loss.

        Args:
            pred: (B, Q, D) predicted features.
            target: (B, Q, D) target (e.g. DINOv2, reduced) features.
            weights: optional (B, Q) per-query weights, e.g. 0 for padding queries.

        Returns:
            Scalar loss.
        """
        if pred.shape != target.shape:
            raise ValueError(f'FeatureDistillationLoss: pred {tuple(pred.shape)} and target '
                             f'{tuple(target.shape)} must have the same shape')
        target = target.to(pred.dtype)
        l1 = (pred - target).abs().mean(dim=-1)
        cosine = 1.0 - F.cosine_similarity(pred, target, dim=-1, eps=self.eps)
        per_query = self.l1_weight * l1 + self.cosine_weight * cosine
        return self.loss_weight * weighted_mean(per_query, weights)
