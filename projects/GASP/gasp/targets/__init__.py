"""Targets computed ahead of training: DINO feature targets, DINOv3 reductions, missing rays.

- :mod:`~gasp.targets.dinov2_vit`, :mod:`~gasp.targets.dinov2_checkpoint`: DINOv2 on
  mmpretrain, loaded from the official checkpoint files.
- :mod:`~gasp.targets.dinov3_vit`: a faithful DINOv3 ViT (official parameter names).
- :mod:`~gasp.targets.extract_features`: project future sweeps into the ring cameras, sample
  the feature maps, cache per sweep (:mod:`~gasp.targets.feature_cache`).
- :mod:`~gasp.targets.feature_reduction`, :mod:`~gasp.targets.dinov3_reduction`: PCA /
  channel-subset reductions and on-the-fly DINOv3 targets.
- :mod:`~gasp.targets.beam_model`, :mod:`~gasp.targets.missing_rays`: rays that returned
  nothing.
"""
from .beam_model import BeamModel, fit_beam_model, missing_firings
from .dinov2_checkpoint import convert_dinov2_keys, load_dinov2_checkpoint
from .dinov2_vit import DINOV2_ARCHS, DINOv2ViT, build_dinov2
from .dinov3_reduction import OnlineFeatureTargets, fit_feature_reduction
from .dinov3_vit import DINOV3_ARCHS, DINOv3ViT, build_dinov3
from .extract_features import extract_dino_features
from .feature_cache import read_sweep_features
from .feature_denoiser import FeatureDenoiser
from .feature_extractor import DINOFeatureExtractor, build_backbone
from .feature_reduction import FeatureReduction
from .missing_rays import extract_missing_rays, read_missing_rays

__all__ = [
    'BeamModel', 'fit_beam_model', 'missing_firings', 'convert_dinov2_keys',
    'load_dinov2_checkpoint', 'DINOV2_ARCHS', 'DINOv2ViT', 'build_dinov2', 'DINOV3_ARCHS',
    'DINOv3ViT', 'build_dinov3', 'extract_dino_features', 'read_sweep_features', 'FeatureDenoiser',
    'DINOFeatureExtractor', 'build_backbone', 'FeatureReduction', 'extract_missing_rays',
    'read_missing_rays', 'OnlineFeatureTargets', 'fit_feature_reduction'
]
