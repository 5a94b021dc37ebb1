"""DINOv3 targets: fit a PCA reduction on the data, and compute reduced features on the fly.

``fit_feature_reduction`` samples sweeps across the data, computes full-dimensional features
at their points (the same projection and sampling as the cached targets) and fits a PCA.
``OnlineFeatureTargets`` runs the ViT on the training device during training and reduces the
sampled features with that matrix, or keeps a fixed subset of channels without one.
"""
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from mmdet3d.registry import MODELS
from torch import nn
from tqdm import tqdm

from .extract_features import compute_features_for_jobs
from .feature_extractor import DINOFeatureExtractor, build_backbone
from .feature_reduction import FeatureReduction
from .feature_sampling import sample_feature_map
from .sweep_jobs import jobs_from_infos, jobs_from_root


def fit_feature_reduction(data_dir,
                          output_path,
                          weights: Optional[str],
                          backbone: str = 'dinov3_vits16',
                          dim: int = 64,
                          info_files: Sequence[str] = (),
                          splits: Sequence[str] = ('train', ),
                          num_sweeps: int = 64,
                          points_per_sweep: int = 2048,
                          image_short_side: int = 448,
                          device: Optional[str] = None,
                          seed: int = 0,
                          show_progress: bool = True,
                          backbone_overrides: Optional[dict] = None) -> FeatureReduction:
    """Fit and save a PCA reduction of a backbone's features at lidar points.

    Args:
        data_dir: the folder that contains ``sensor/``.
        output_path: ``.npz`` to write (:class:`FeatureReduction` format).
        weights: local official checkpoint (None: random weights, tests only).
        backbone: hub name (DINOv3 or DINOv2).
        dim: output dimension D.
        info_files: sample sweeps from these info files' future sweeps (else from the root).
        splits: splits used without info files.
        num_sweeps: sweeps sampled evenly across all sweeps.
        points_per_sweep: random points kept per sweep.
        image_short_side: ViT input short side.
        device: torch device (cuda when available).
        seed: sampling seed.
        show_progress: progress bar.
        backbone_overrides: architecture overrides (tests).

    Returns:
        The fitted reduction (also written to ``output_path``).
    """
    device = torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    model, _ = build_backbone(backbone, weights, **(backbone_overrides or {}))
    extractor = DINOFeatureExtractor(model, image_short_side).to(device).eval()
    jobs, logs = (
        jobs_from_infos(info_files, data_dir) if info_files else jobs_from_root(data_dir, splits))
    pick = np.unique(np.linspace(0, len(jobs) - 1, min(num_sweeps, len(jobs))).astype(int))
    rng = np.random.default_rng(seed)
    samples = []
    for index in tqdm(pick, desc='features for PCA', disable=not show_progress):
        result = compute_features_for_jobs(extractor, [jobs[index]], logs, device)[0]
        feats = result['features']
        if len(feats) > points_per_sweep:
            feats = feats[rng.choice(len(feats), points_per_sweep, replace=False)]
        samples.append(feats)
    reduction = FeatureReduction.fit_pca(np.concatenate(samples), dim)
    reduction.save(Path(output_path))
    return reduction


@MODELS.register_module()
class OnlineFeatureTargets(nn.Module):
    """Feature targets computed on the training device from images (e.g. DINOv3).

    Args:
        backbone: hub name (``dinov3_vits16`` ...).
        weights: local official checkpoint (None: random weights, tests only).
        reduction: ``.npz`` PCA matrix; None keeps ``feature_dim`` evenly spaced channels.
        feature_dim: D when no reduction file is given.
        image_short_side: ViT input short side.
        backbone_overrides: architecture overrides (tests).
    """

    def __init__(self,
                 backbone: str = 'dinov3_vits16',
                 weights: Optional[str] = None,
                 reduction: Optional[str] = None,
                 feature_dim: int = 64,
                 image_short_side: int = 448,
                 backbone_overrides: Optional[dict] = None):
        super().__init__()
        model, self.weights_sha256 = build_backbone(backbone, weights, **(backbone_overrides or {}))
        self.extractor = DINOFeatureExtractor(model, image_short_side).eval()
        self.extractor.requires_grad_(False)
        self.reduction = (
            FeatureReduction.load(reduction) if reduction else FeatureReduction.subset(
                int(model.embed_dims), feature_dim))

    @torch.no_grad()
    def forward(self, images: torch.Tensor, uv: torch.Tensor,
                image_index: torch.Tensor) -> torch.Tensor:
        """Reduced features at pixels.

        Args:
            images: (B, 3, H, W) RGB 0-255 (same size).
            uv: (P, 2) pixel coordinates (column, row; centres at integers).
            image_index: (P,) which image each pixel is in.

        Returns:
            (P, D) float32.
        """
        maps = self.extractor(images)
        out = torch.zeros((uv.shape[0], maps.shape[1]), device=maps.device)
        for b in range(maps.shape[0]):
            rows = torch.nonzero(image_index == b).squeeze(1)
            if rows.numel():
                out[rows] = sample_feature_map(maps[b], uv[rows].float(), images.shape[-2],
                                               images.shape[-1])
        return self.reduction.apply(out)
