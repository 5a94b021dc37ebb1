"""Binary cross-entropy on occupancy logits (general and ego occupancy)."""
from typing import Optional

import torch
import torch.nn.functional as F
from mmdet3d.registry import MODELS
from torch import nn

from .weighted_mean import weighted_mean


@MODELS.register_module()
class OccupancyBCELoss(nn.Module):
    """Binary cross-entropy with logits, averaged over (valid) queries.

    ``loss = loss_weight * sum_i w_i * BCE(logit_i, target_i) / sum_i w_i`` with ``w = 1``
    when no weights are given. Used for general occupancy and for ego occupancy.

    Args:
        loss_weight: factor on the loss.
    """

    def __init__(self, loss_weight: float = 1.0):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self,
                logits: torch.Tensor,
                targets: torch.Tensor,
                weights: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Compute the loss.

        Args:
            logits: (B, Q) occupancy logits.
            targets: (B, Q) labels in [0, 1] (1 = occupied).
            weights: optional (B, Q) per-query weights, e.g. 0 for padding queries.

        Returns:
            Scalar loss.
        """
        if targets.shape != logits.shape:
            raise ValueError(f'OccupancyBCELoss: logits {tuple(logits.shape)} and targets '
                             f'{tuple(targets.shape)} must have the same shape')
        losses = F.binary_cross_entropy_with_logits(
            logits, targets.to(logits.dtype), reduction='none')
        return self.loss_weight * weighted_mean(losses, weights)
