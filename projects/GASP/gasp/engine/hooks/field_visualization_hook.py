"""PNG pictures of the learned fields: occupancy and ego fields over time, feature PCA."""
import os.path as osp
from typing import Sequence

import numpy as np
import torch
from mmdet3d.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.utils import mkdir_or_exist


def pca_rgb(features: np.ndarray) -> np.ndarray:
    """Project (N, D) features onto their first three principal components, scaled to
    [0, 1] per component, as (N, 3) colours."""
    centred = features - features.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    proj = centred @ vt[:3].T
    lo, hi = proj.min(0), proj.max(0)
    return (proj - lo) / np.maximum(hi - lo, 1e-9)


@HOOKS.register_module()
class FieldVisualizationHook(Hook):
    """After each validation, draw the first validation sample's fields into a PNG.

    Row 1: predicted occupancy probability (BEV slice at height ``z``) at each time in
    ``times_s``, with the future lidar returns of that time overlaid (the targets).
    Row 2: the ego-occupancy field at the same times (GASP), with the future ego path.
    Extra panel: a PCA colouring of the predicted features at the feature queries.

    Args:
        times_s: future times to draw (s).
        z: height of the occupancy slice in the reference frame (m).
        out_dir: sub-folder of the work dir for the pictures.
    """

    priority = 'LOW'

    def __init__(self,
                 times_s: Sequence[float] = (0.2, 0.6, 1.0),
                 z: float = 0.5,
                 out_dir: str = 'vis'):
        self.times_s = list(times_s)
        self.z = z
        self.out_dir = out_dir
        self.paths = []

    def before_val_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if batch_idx == 0 and data_batch is not None:
            data_batch['data_samples'][0].set_metainfo(
                dict(render_times_s=self.times_s, render_z=self.z))

    def after_val_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if batch_idx != 0 or not outputs or 'bev_occupancy' not in outputs[0]:
            return
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt

        sample = outputs[0]
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        x0, y0, _, x1, y1, _ = model.decoder.point_cloud_range
        extent = (x0, x1, y0, y1)
        has_ego = 'bev_ego' in sample
        has_feat = 'pred_feature' in sample and 'gt_feature' in sample
        rows = 2 if has_ego else 1
        cols = len(self.times_s) + int(has_feat)
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
        occ = torch.sigmoid(sample.bev_occupancy.float()).cpu().numpy()
        rays = sample.rays
        ends = (rays.origins + rays.directions * rays.depths[:, None]).cpu().numpy()
        times = rays.times_s.cpu().numpy()
        for j, t in enumerate(self.times_s):
            ax = axes[0, j]
            ax.imshow(occ[j], origin='lower', extent=extent, vmin=0, vmax=1, cmap='magma')
            near = (np.abs(times - t) <= 0.11) & (np.abs(ends[:, 2] - self.z) < 1.0)
            ax.scatter(ends[near, 0], ends[near, 1], s=0.3, c='cyan', alpha=0.6)
            ax.set_title(f'occupancy t={t:.1f}s (cyan: lidar)', fontsize=8)
            if has_ego:
                ax = axes[1, j]
                ego = torch.sigmoid(sample.bev_ego.float()).cpu().numpy()
                ax.imshow(ego[j], origin='lower', extent=extent, vmin=0, vmax=1, cmap='viridis')
                path = sample.ego_path
                ax.plot(path.xy[:, 0].cpu(), path.xy[:, 1].cpu(), 'r-', lw=0.8)
                ax.set_title(f'ego field t={t:.1f}s (red: path)', fontsize=8)
        if has_feat:
            ax = axes[0, -1]
            colours = pca_rgb(sample.pred_feature.float().cpu().numpy())
            pts = sample.queries_feature.cpu()
            ax.scatter(pts[:, 0], pts[:, 1], s=1, c=colours)
            ax.set_title('predicted features (PCA)', fontsize=8)
            for r in range(1, rows):
                axes[r, -1].axis('off')
        for ax in axes.flat:
            ax.set_xlim(x0, x1)
            ax.set_ylim(y0, y1)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.suptitle(
            f'{sample.metainfo.get("log_id", "")} @ {sample.metainfo.get("timestamp_ns")}'
            f'  (iter {runner.iter})',
            fontsize=8)
        fig.tight_layout()
        mkdir_or_exist(osp.join(runner.work_dir, self.out_dir))
        path = osp.join(runner.work_dir, self.out_dir, f'fields_iter_{runner.iter}.png')
        fig.savefig(path, dpi=110)
        plt.close(fig)
        self.paths.append(path)
        runner.logger.info(f'FieldVisualizationHook: wrote {path}')
