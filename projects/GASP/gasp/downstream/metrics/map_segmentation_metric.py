"""Map segmentation: IoU per map layer at a probability threshold."""
from typing import Dict, List, Sequence

import numpy as np
from mmdet3d.registry import METRICS
from mmengine.evaluator import BaseMetric


@METRICS.register_module()
class MapSegmentationMetric(BaseMetric):
    """IoU per class of thresholded BEV map predictions, summed over all samples' cells.

    Reads ``pred_map_raster`` (K, H, W) probabilities and ``map_raster`` labels. Reports
    ``IoU_<class>`` and ``mIoU`` (mean over classes with a non-empty union).

    Args:
        class_names: the K layer names in label order.
        threshold: a cell is predicted when its probability is at least this.
    """

    default_prefix = 'map_seg'

    def __init__(self,
                 class_names: Sequence[str],
                 threshold: float = 0.5,
                 collect_device: str = 'cpu',
                 prefix: str = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.class_names = tuple(class_names)
        self.threshold = threshold

    def process(self, data_batch, data_samples: Sequence) -> None:
        for sample in data_samples:
            sample = sample.to_dict() if hasattr(sample, 'to_dict') else sample
            pred = sample['pred_map_raster'].float().cpu().numpy() >= self.threshold
            label = sample['map_raster'].cpu().numpy().astype(bool)
            self.results.append(np.stack([(pred & label).sum((1, 2)), (pred | label).sum((1, 2))]))

    def compute_metrics(self, results: List[np.ndarray]) -> Dict[str, float]:
        inter, union = np.sum(results, axis=0).astype(np.float64)
        with np.errstate(invalid='ignore', divide='ignore'):
            iou = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
        metrics = {f'IoU_{name}': float(v) for name, v in zip(self.class_names, iou)}
        metrics['mIoU'] = float(np.nanmean(iou)) if not np.all(np.isnan(iou)) else float('nan')
        return metrics
