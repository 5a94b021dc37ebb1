"""GASP's custom ops. Each op has a plain PyTorch reference (its specification) and one
dispatch function that picks the fast path where one exists."""
from .bev_voxelize import bev_grid_shape, bev_voxelize, bev_voxelize_reference
from .deformable_bev_gather import (deformable_bev_gather, deformable_bev_gather_reference,
                                    metric_to_normalized)
from .dynamic_scatter import dynamic_scatter, dynamic_scatter_reference
from .ray_marching import (march_expected_depth, ray_box_intersection, render_expected_depth,
                           render_expected_depth_reference)

__all__ = [
    'dynamic_scatter', 'dynamic_scatter_reference', 'bev_voxelize', 'bev_voxelize_reference',
    'bev_grid_shape', 'deformable_bev_gather', 'deformable_bev_gather_reference',
    'metric_to_normalized', 'render_expected_depth', 'render_expected_depth_reference',
    'march_expected_depth', 'ray_box_intersection'
]
