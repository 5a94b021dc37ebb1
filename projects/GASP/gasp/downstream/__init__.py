"""Downstream fine-tuning of a pre-trained GASP encoder (SPEC s. 5), with label fractions.

Tasks, each a head + label transforms + metric + ``configs/downstream/<task>_av2.py``:

- BEV semantic forecasting: :class:`LoadFutureCuboids` -> :class:`BEVSemanticTargets`,
  :class:`BEVSemanticForecastHead`, :class:`BEVForecastingMetric` (mAP, soft-IoU);
- 4D semantic occupancy: :class:`LoadFutureRays` + :class:`LoadFutureCuboids` ->
  :class:`SemanticOccupancyTargets`, :class:`SemanticOccupancyHead`,
  :class:`SemanticOccupancyMetric` (mIoU);
- map segmentation: :class:`MapRasterTargets`, :class:`MapSegmentationHead`,
  :class:`MapSegmentationMetric` (IoU per class);
- ego trajectory: :class:`LoadFutureEgoPath` -> :class:`EgoWaypointTargets`,
  :class:`EgoTrajectoryHead`, :class:`EgoTrajectoryMetric` (L2, m).

:class:`DownstreamModel` holds the encoder under GASP's names (``load_from`` a pre-training
checkpoint loads it) and :class:`AV2DownstreamDataset` keeps a seeded ``label_fraction``.
"""
from .av2_classes import AV2_CLASS_GROUPS
from .av2_downstream_dataset import AV2DownstreamDataset, label_fraction_indices
from .bev_grid import BEVGrid
from .metrics import *  # noqa: F401,F403
from .models import *  # noqa: F401,F403
from .transforms import *  # noqa: F401,F403

__all__ = ['AV2_CLASS_GROUPS', 'AV2DownstreamDataset', 'label_fraction_indices', 'BEVGrid']
