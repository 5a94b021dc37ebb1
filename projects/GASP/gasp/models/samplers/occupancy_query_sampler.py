"""Labelled occupancy queries from future lidar rays (UnO/GASP targets)."""
from typing import Dict, Optional

import torch
from mmdet3d.registry import TASK_UTILS


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
        device = rays['depths'].device
        num_rays = rays['depths'].shape[0]
        if num_rays == 0:
            raise ValueError('OccupancyQuerySampler: the sample has no future rays')
        half = self.num_queries // 2
        fraction = missing_ray_fraction
        if fraction is None:
            fraction = self.missing_ray_fraction
        if fraction > 0 and missing_rays is None:
            raise ValueError(f'OccupancyQuerySampler: missing_ray_fraction={fraction} but the '
                             'training sample has no missing rays; add LoadMissingRays to the '
                             'training pipeline or set the fraction to 0')
        num_missing = (
            int(round(half * fraction))
            if missing_rays is not None and missing_rays['times_s'].numel() else 0)

        def uniform(n):
            return torch.rand(n, generator=generator, device=device)

        def pick(n, count):
            return torch.randint(count, (n, ), generator=generator, device=device)

        pos = pick(half, num_rays)
        depth_pos = rays['depths'][pos] + self.positive_margin * uniform(half)
        neg = pick(half - num_missing, num_rays)
        depth_neg = (rays['depths'][neg] - self.negative_margin).clamp(min=0) * uniform(half -
                                                                                        num_missing)
        origins = [rays['origins'][pos], rays['origins'][neg]]
        directions = [rays['directions'][pos], rays['directions'][neg]]
        depths = [depth_pos, depth_neg]
        times = [rays['times_s'][pos], rays['times_s'][neg]]
        if num_missing:
            miss = pick(num_missing, missing_rays['times_s'].shape[0])
            origins.append(missing_rays['origins'][miss])
            directions.append(missing_rays['directions'][miss])
            depths.append(self.missing_range * uniform(num_missing))
            times.append(missing_rays['times_s'][miss])
        xyz = torch.cat(origins) + torch.cat(directions) * torch.cat(depths)[:, None]
        queries = torch.cat([xyz, torch.cat(times)[:, None]], dim=1).float()
        labels = torch.cat([torch.ones(half, device=device), torch.zeros(half, device=device)])
        return queries, labels
