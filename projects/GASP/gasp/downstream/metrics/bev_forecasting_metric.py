"""BEV semantic forecasting: average precision and soft-IoU per class."""
from typing import Dict, List, Sequence

import numpy as np
from mmdet3d.registry import METRICS
from mmengine.evaluator import BaseMetric


def binned_average_precision(pos_hist: np.ndarray, neg_hist: np.ndarray) -> float:
    """Average precision from score histograms of positives and negatives.

    Thresholds run over the bins from the highest score down; AP = sum over thresholds of
    precision x recall increase (scikit-learn's step rule; scores in one bin count as tied).
    NaN when there is no positive.

    Args:
        pos_hist, neg_hist: (num_bins,) counts per score bin, bin 0 = lowest scores.
    """
    tp = np.cumsum(pos_hist[::-1].astype(np.float64))
    fp = np.cumsum(neg_hist[::-1].astype(np.float64))
    if tp[-1] == 0:
        return float('nan')
    used = (pos_hist[::-1] + neg_hist[::-1]) > 0
    precision = tp[used] / (tp[used] + fp[used])
    recall = tp[used] / tp[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


@METRICS.register_module()
class BEVForecastingMetric(BaseMetric):
    """mAP and soft-IoU of per-class BEV occupancy forecasts.

    Reads ``pred_bev_semantics`` (T, C, H, W) probabilities and ``bev_semantics`` labels of
    each data sample. Over all cells, times and samples:

    - AP per class from score histograms (``num_bins`` bins over [0, 1]);
      ``mAP`` = mean over classes with positives;
    - soft-IoU per class = sum(p * y) / sum(p + y - p * y); ``soft_IoU`` = mean over classes
      with positives;
    - ``soft_IoU@<t>s``: mean over classes at each forecast time, when ``times_s`` is given.

    Args:
        class_names: the C class names, in label order.
        times_s: the T forecast times (for per-time results), optional.
        num_bins: score bins of the AP histograms.
    """

    default_prefix = 'bev_forecast'

    def __init__(self,
                 class_names: Sequence[str],
                 times_s: Sequence[float] = (),
                 num_bins: int = 1000,
                 collect_device: str = 'cpu',
                 prefix: str = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.class_names = tuple(class_names)
        self.times_s = tuple(times_s)
        self.num_bins = num_bins

    def process(self, data_batch, data_samples: Sequence) -> None:
        for sample in data_samples:
            sample = sample.to_dict() if hasattr(sample, 'to_dict') else sample
            prob = np.asarray(sample['pred_bev_semantics'].float().cpu().numpy(), np.float64)
            label = sample['bev_semantics'].cpu().numpy().astype(bool)
            self.results.append(self.accumulate(prob, label))

    def accumulate(self, prob: np.ndarray, label: np.ndarray) -> dict:
        """Sufficient statistics of one sample: (T, C, H, W) probabilities and labels."""
        num_classes = prob.shape[1]
        bins = np.minimum((prob * self.num_bins).astype(np.int64), self.num_bins - 1)
        hist = np.zeros((num_classes, 2, self.num_bins), dtype=np.int64)
        for c in range(num_classes):
            b, y = bins[:, c].ravel(), label[:, c].ravel()
            hist[c, 0] = np.bincount(b[y], minlength=self.num_bins)
            hist[c, 1] = np.bincount(b[~y], minlength=self.num_bins)
        axes = (2, 3)
        inter = (prob * label).sum(axes)  # (T, C)
        union = (prob + label - prob * label).sum(axes)
        return dict(hist=hist, inter=inter, union=union, label_count=label.sum(axes))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        hist = np.sum([r['hist'] for r in results], axis=0)
        inter = np.sum([r['inter'] for r in results], axis=0)
        union = np.sum([r['union'] for r in results], axis=0)
        label_count = np.sum([r['label_count'] for r in results], axis=0)  # (T, C)
        metrics = {}
        aps, ious = [], []
        for c, name in enumerate(self.class_names):
            ap = binned_average_precision(hist[c, 0], hist[c, 1])
            has_positives = hist[c, 0].sum() > 0
            iou = inter[:, c].sum() / union[:, c].sum() if has_positives else float('nan')
            metrics[f'AP_{name}'] = ap
            metrics[f'soft_IoU_{name}'] = float(iou)
            aps.append(ap)
            ious.append(iou)
        metrics['mAP'] = float(np.nanmean(aps)) if not np.all(np.isnan(aps)) else float('nan')
        metrics['soft_IoU'] = (
            float(np.nanmean(ious)) if not np.all(np.isnan(ious)) else float('nan'))
        for k, t in enumerate(self.times_s):
            with np.errstate(invalid='ignore', divide='ignore'):
                per_class = np.where(label_count[k] > 0, inter[k] / union[k], np.nan)
            if not np.all(np.isnan(per_class)):
                metrics[f'soft_IoU@{t:g}s'] = float(np.nanmean(per_class))
        return metrics
