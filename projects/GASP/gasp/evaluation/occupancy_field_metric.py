"""How well the implicit field answers held-out queries: AUROC and feature cosine."""
from typing import Dict, List, Sequence

import numpy as np
import torch
from mmdet3d.registry import METRICS
from mmengine.evaluator import BaseMetric
from scipy.stats import rankdata


def binary_auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U; ties count half). NaN with one class."""
    labels = labels.astype(bool)
    num_pos, num_neg = int(labels.sum()), int((~labels).sum())
    if num_pos == 0 or num_neg == 0:
        return float('nan')
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - num_pos * (num_pos + 1) / 2) / (num_pos * num_neg))


@METRICS.register_module()
class OccupancyFieldMetric(BaseMetric):
    """AUROC of the occupancy and ego heads, mean cosine similarity of the feature head.

    Reads ``pred_<head>`` / ``gt_<head>`` written by :meth:`GASP.predict`.

    Args:
        binary_heads: heads scored by AUROC.
        feature_heads: heads scored by the mean cosine similarity to the target features.
    """

    default_prefix = 'field'

    def __init__(self,
                 binary_heads: Sequence[str] = ('occupancy', 'ego'),
                 feature_heads: Sequence[str] = ('feature', ),
                 collect_device: str = 'cpu',
                 prefix: str = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.binary_heads = tuple(binary_heads)
        self.feature_heads = tuple(feature_heads)

    def process(self, data_batch, data_samples: Sequence) -> None:
        for sample in data_samples:
            sample = sample.to_dict() if hasattr(sample, 'to_dict') else sample
            result = {}
            for head in self.binary_heads:
                if f'pred_{head}' in sample:
                    result[head] = (sample[f'pred_{head}'].float().cpu().numpy(),
                                    sample[f'gt_{head}'].float().cpu().numpy())
            for head in self.feature_heads:
                if f'pred_{head}' in sample:
                    cos = torch.nn.functional.cosine_similarity(
                        sample[f'pred_{head}'].float(), sample[f'gt_{head}'].float(), dim=-1)
                    result[head] = cos.cpu().numpy()
            self.results.append(result)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        metrics = {}
        for head in self.binary_heads:
            pairs = [r[head] for r in results if head in r]
            if pairs:
                scores = np.concatenate([p[0] for p in pairs])
                labels = np.concatenate([p[1] for p in pairs])
                metrics[f'{head}_auroc'] = binary_auroc(scores, labels)
        for head in self.feature_heads:
            values = [r[head] for r in results if head in r]
            if values:
                metrics[f'{head}_cosine'] = float(np.concatenate(values).mean())
        return metrics
