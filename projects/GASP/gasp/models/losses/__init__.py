"""Training losses of the implicit field's heads."""
from .feature_distillation_loss import FeatureDistillationLoss
from .occupancy_bce_loss import OccupancyBCELoss
from .weighted_mean import weighted_mean

__all__ = ['FeatureDistillationLoss', 'OccupancyBCELoss', 'weighted_mean']
