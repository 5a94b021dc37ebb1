"""Labelled occupancy queries from future lidar rays (UnO/GASP targets)."""
from typing import Dict, Optional, Sequence

import torch
from mmdet3d.registry import TASK_UTILS

from .batched_rows import draw_rows, host_ints_to_device


@TASK_UTILS.register_module()
class OccupancyQuerySampler:
    """Sample (x, y, z, t) queries with occupancy labels along future rays.

    For a ray from ``o`` with unit direction ``u`` and return depth ``r`` at time ``t``:
    positives lie at ``s ~ U[r, r + positive_margin]`` (just behind the surface), negatives at
    ``s ~ U[0, r - negative_margin]`` (free space before it). Rays are picked uniformly;
    positives and negatives come in equal numbers. Rays that returned nothing
    (``missing_rays``) give extra negatives ``s ~ U[0, missing_range]``.

    Args:
        num_queries: queries per sample (half positive, half negative).
        positive_margin: depth band behind the return that counts as occupied (m).
        negative_margin: band before the return left unlabelled (m).
        missing_ray_fraction: share of the negatives taken from missing rays, when given.
        missing_range: free-space range along a missing ray (m).
    """

    def __init__(self,
                 num_queries: int = 2**17,
                 positive_margin: float = 0.3,
                 negative_margin: float = 0.3,
                 missing_ray_fraction: float = 0.0,
                 missing_range: float = 70.0):
        if num_queries % 2:
            raise ValueError(f'num_queries must be even, got {num_queries}')
        self.num_queries = num_queries
        self.positive_margin = positive_margin
        self.negative_margin = negative_margin
        self.missing_ray_fraction = missing_ray_fraction
        self.missing_range = missing_range

    def __call__(self,
                 rays: Dict[str, torch.Tensor],
                 generator: Optional[torch.Generator] = None,
                 missing_rays: Optional[Dict[str, torch.Tensor]] = None,
                 missing_ray_fraction: Optional[float] = None):
        """Sample one sample's queries.

        Args:
            rays: ``origins`` (R, 3), ``directions`` (R, 3) unit, ``depths`` (R,),
                ``times_s`` (R,), all in the reference frame.
            generator: random generator (on the rays' device) for reproducible sampling.
            missing_rays: optional ``origins`` (M, 3), ``directions`` (M, 3), ``times_s`` (M,).
            missing_ray_fraction: overrides the configured fraction for this call (the data
                preprocessor passes 0 for evaluation samples, whose pipelines need no
                missing-ray cache).

        Returns:
            queries: (Q, 4) float32 (x, y, z, t); labels: (Q,) float32 in {0, 1}.
        """
        queries, labels = self.sample_batch([rays], generator,
                                            None if missing_rays is None else [missing_rays],
                                            missing_ray_fraction)
        return queries[0], labels[0]

    def sample_batch(self,
                     rays: Sequence[Dict[str, torch.Tensor]],
                     generator: Optional[torch.Generator] = None,
                     missing_rays: Optional[Sequence[Dict[str, torch.Tensor]]] = None,
                     missing_ray_fraction: Optional[float] = None,
                     names: Optional[Sequence[str]] = None):
        """:meth:`__call__` for B samples at once, in a fixed number of GPU kernels and
        without host synchronisation (one call per sample cost ~30 small kernels each).

        ``rays`` and ``missing_rays`` hold one dict per sample; ``names`` (e.g. log and
        timestamp) label the samples in errors. A sample whose missing rays are empty gets
        all its negatives from its returns. Returns queries (B, Q, 4) and labels (B, Q).
        """
        names = names or [f'sample {i}' for i in range(len(rays))]
        counts = [r['depths'].shape[0] for r in rays]
        for name, count in zip(names, counts):
            if count == 0:
                raise ValueError(f'OccupancyQuerySampler: {name} has no future rays')
        fraction = missing_ray_fraction
        if fraction is None:
            fraction = self.missing_ray_fraction
        if fraction > 0 and missing_rays is None:
            raise ValueError(f'OccupancyQuerySampler: missing_ray_fraction={fraction} but the '
                             'training sample has no missing rays; add LoadMissingRays to the '
                             'training pipeline or set the fraction to 0')
        missing_counts = ([m['times_s'].shape[0] for m in missing_rays]
                          if missing_rays is not None else [0] * len(rays))
        half = self.num_queries // 2
        num_missing = int(round(half * fraction)) if any(missing_counts) else 0
        device = rays[0]['depths'].device
        batch = len(rays)

        def cat(dicts, key):
            return torch.cat([d[key] for d in dicts])

        rows = draw_rows(counts, self.num_queries, device, generator)
        origins = cat(rays, 'origins')[rows]
        directions = cat(rays, 'directions')[rows]
        depths = cat(rays, 'depths')[rows]
        times = cat(rays, 'times_s')[rows]
        u = torch.rand(batch, self.num_queries, generator=generator, device=device)
        # Positives just behind the return, negatives in the free space before it.
        along = torch.cat([
            depths[:, :half] + self.positive_margin * u[:, :half],
            (depths[:, half:] - self.negative_margin).clamp(min=0) * u[:, half:]
        ], 1)
        if num_missing:
            # The last negatives of each sample with missing rays come from them instead.
            rows = draw_rows(missing_counts, num_missing, device, generator)
            has = host_ints_to_device(missing_counts, device).view(batch, 1) > 0
            tail = slice(self.num_queries - num_missing, None)
            missing_along = self.missing_range * torch.rand(
                batch, num_missing, generator=generator, device=device)
            origins[:, tail] = torch.where(has[..., None], cat(missing_rays, 'origins')[rows],
                                           origins[:, tail])
            directions[:, tail] = torch.where(has[..., None],
                                              cat(missing_rays, 'directions')[rows],
                                              directions[:, tail])
            times[:, tail] = torch.where(has, cat(missing_rays, 'times_s')[rows], times[:, tail])
            along[:, tail] = torch.where(has, missing_along, along[:, tail])
        xyz = origins + directions * along[..., None]
        queries = torch.cat([xyz, times[..., None]], dim=-1).float()
        labels = torch.zeros(batch, self.num_queries, device=device)
        labels[:, :half] = 1.0
        return queries, labels
