"""Reduce feature dimension: a PCA matrix fitted on the data, or a fixed subset of channels.

``reduced = (features - mean) @ matrix`` with ``matrix`` (C, D) and ``mean`` (C,). The file
format (``.npz``): ``matrix`` float32 (C, D), ``mean`` float32 (C,), ``method`` str
(``'pca'`` or ``'subset'``), ``explained_variance`` float32 (D,) for PCA.
"""
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..datasets.errors import AV2DataError
from ..fileio import save_npz_atomic


@dataclass
class FeatureReduction:
    """A linear reduction C -> D.

    Args:
        matrix: (C, D) float32, orthonormal columns for PCA.
        mean: (C,) float32 subtracted first.
        method: ``'pca'`` or ``'subset'``.
        explained_variance: (D,) variance along each PCA axis (None for a subset).
    """

    matrix: np.ndarray
    mean: np.ndarray
    method: str
    explained_variance: Optional[np.ndarray] = None

    @property
    def out_dim(self) -> int:
        return int(self.matrix.shape[1])

    @classmethod
    def fit_pca(cls, features: np.ndarray, dim: int) -> 'FeatureReduction':
        """PCA of (N, C) samples (float64 covariance, eigenvectors by decreasing variance)."""
        samples = np.asarray(features, dtype=np.float64)
        if samples.shape[0] < 2 or dim > samples.shape[1]:
            raise ValueError(f'cannot fit a {dim}-d PCA on {samples.shape} samples')
        mean = samples.mean(0)
        cov = np.cov(samples - mean, rowvar=False)
        values, vectors = np.linalg.eigh(cov)
        order = np.argsort(values)[::-1][:dim]
        vectors = vectors[:, order]
        # Fix the sign of each axis (largest component positive) so fits are reproducible.
        vectors *= np.sign(vectors[np.abs(vectors).argmax(0), np.arange(dim)])
        return cls(
            vectors.astype(np.float32), mean.astype(np.float32), 'pca',
            values[order].astype(np.float32))

    @classmethod
    def subset(cls, channels: int, dim: int) -> 'FeatureReduction':
        """Keep ``dim`` evenly spaced channels (the fallback when no PCA matrix is given)."""
        keep = np.linspace(0, channels - 1, dim).round().astype(int)
        matrix = np.zeros((channels, dim), np.float32)
        matrix[keep, np.arange(dim)] = 1.0
        return cls(matrix, np.zeros(channels, np.float32), 'subset')

    def apply(self, features: torch.Tensor) -> torch.Tensor:
        """(N, C) -> (N, D) on the features' device."""
        matrix = torch.as_tensor(self.matrix, device=features.device, dtype=features.dtype)
        mean = torch.as_tensor(self.mean, device=features.device, dtype=features.dtype)
        return (features - mean) @ matrix

    def digest(self) -> str:
        """Hash of the matrix and mean (recorded in cache manifests)."""
        h = hashlib.sha256(np.ascontiguousarray(self.matrix, np.float32).tobytes())
        h.update(np.ascontiguousarray(self.mean, np.float32).tobytes())
        return h.hexdigest()[:16]

    def save(self, path) -> None:
        arrays = dict(matrix=self.matrix, mean=self.mean, method=np.array(self.method))
        if self.explained_variance is not None:
            arrays['explained_variance'] = self.explained_variance
        save_npz_atomic(Path(path), **arrays)

    @classmethod
    def load(cls, path) -> 'FeatureReduction':
        path = Path(path)
        if not path.is_file():
            raise AV2DataError(
                'feature reduction file not found',
                path=str(path),
                fix='create it with tools/generate_dinov3_reduction.py, or '
                'leave the reduction out.')
        with np.load(path) as data:
            return cls(data['matrix'].astype(np.float32), data['mean'].astype(np.float32),
                       str(data['method']),
                       data['explained_variance'] if 'explained_variance' in data else None)
