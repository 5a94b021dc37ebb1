"""4D semantic occupancy: IoU per class from a confusion matrix over the queries."""
from typing import Dict, List, Sequence

import numpy as np
from mmdet3d.registry import METRICS
from mmengine.evaluator import BaseMetric


def iou_from_confusion(confusion: np.ndarray) -> np.ndarray:
    """(C,) IoU = TP / (TP + FP + FN) per class of a (C, C) confusion matrix (rows: truth,
    columns: prediction); NaN for a class absent from both."""
    tp = np.diag(confusion).astype(np.float64)
    denom = confusion.sum(0) + confusion.sum(1) - tp
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(denom > 0, tp / np.maximum(denom, 1), np.nan)


@METRICS.register_module()
class SemanticOccupancyMetric(BaseMetric):
    """mIoU of the class predicted at (x, y, z, t) queries.

    Reads ``pred_semantic_labels`` and ``semantic_labels`` (Q,) of each data sample. Reports
    ``IoU_<class>`` for every class, ``mIoU`` (mean over all classes present) and
    ``mIoU_occupied`` (mean over every class but ``free``).

    Args:
        class_names: the C class names in label order (first ``free``).
    """

    default_prefix = 'semantic_occ'

    def __init__(self, class_names: Sequence[str], collect_device: str = 'cpu', prefix: str = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.class_names = tuple(class_names)

    def process(self, data_batch, data_samples: Sequence) -> None:
        num = len(self.class_names)
        for sample in data_samples:
            sample = sample.to_dict() if hasattr(sample, 'to_dict') else sample
            pred = sample['pred_semantic_labels'].cpu().numpy().astype(np.int64)
            gt = sample['semantic_labels'].cpu().numpy().astype(np.int64)
            confusion = np.bincount(gt * num + pred, minlength=num * num).reshape(num, num)
            self.results.append(confusion)

    def compute_metrics(self, results: List[np.ndarray]) -> Dict[str, float]:
        iou = iou_from_confusion(np.sum(results, axis=0))
        metrics = {f'IoU_{name}': float(v) for name, v in zip(self.class_names, iou)}
        metrics['mIoU'] = float(np.nanmean(iou)) if not np.all(np.isnan(iou)) else float('nan')
        occupied = [v for name, v in zip(self.class_names, iou) if name != 'free']
        metrics['mIoU_occupied'] = (
            float(np.nanmean(occupied)) if not np.all(np.isnan(occupied)) else float('nan'))
        return metrics
