"""Weighted mean over queries, the reduction shared by GASP's losses."""
from typing import Optional

import torch


def weighted_mean(values: torch.Tensor, weights: Optional[torch.Tensor]) -> torch.Tensor:
    """Mean of ``values`` weighted by ``weights`` (plain mean when None); 0 when all weights are 0.

    Args:
        values: (...) per-query values.
        weights: optional tensor of the same shape.

    Returns:
        Scalar.
    """
    if weights is None:
        return values.mean()
    if weights.shape != values.shape:
        raise ValueError(f'weights {tuple(weights.shape)} must match the per-query losses '
                         f'{tuple(values.shape)}')
    weights = weights.to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp(min=torch.finfo(values.dtype).tiny)
