"""PNG pictures of rendered against true depth of the benchmark's query rays."""
import os.path as osp
from typing import Dict, Optional

import numpy as np
from mmdet3d.registry import HOOKS
from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from ..fileio import atomic_open


def _numpy(value) -> np.ndarray:
    return value.detach().cpu().numpy() if hasattr(value, 'detach') else np.asarray(value)


def draw_occ_forecasting_frame(sample: Dict, path: str, bev_range_m: float = 40.0) -> str:
    """One PNG per frame: for the first and the last future step, a bird's-eye view of the
    true (grey) and rendered (red) ray end points and the depth of every ray against its
    azimuth.

    Args:
        sample: a data sample as a dict: ``origins``, ``directions``, ``gt_depths`` (F lists,
            up_lidar frame at t = 0), ``pred_depths`` (F arrays or one flat array),
            ``log_id``, ``timestamp_ns``, ``horizon``, ``future_timestamps_ns``.
        path: where the PNG goes (written atomically).
        bev_range_m: half width of the bird's-eye view (m).

    Returns:
        ``path``.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from .occ_forecasting_metric import _per_step
    gts = [_numpy(g) for g in sample['gt_depths']]
    preds = [_numpy(p) for p in _per_step(sample['pred_depths'], sample['gt_depths'])]
    steps = sorted({0, len(gts) - 1})
    fig, axes = plt.subplots(len(steps), 2, figsize=(10, 4.4 * len(steps)), squeeze=False)
    stamp = int(sample['timestamp_ns'])
    legend = [
        Line2D([], [], ls='', marker='o', color='0.45', label='true'),
        Line2D([], [], ls='', marker='o', color='tab:red', label='rendered'),
    ]
    for row, k in enumerate(steps):
        origins = np.broadcast_to(_numpy(sample['origins'][k]), (len(gts[k]), 3))
        directions = _numpy(sample['directions'][k])
        true_pts = origins + directions * gts[k][:, None]
        pred_pts = origins + directions * preds[k][:, None]
        t_s = (int(sample['future_timestamps_ns'][k]) - stamp) * 1e-9
        l1 = float(np.abs(preds[k] - gts[k]).mean()) if len(gts[k]) else float('nan')
        ax = axes[row, 0]
        ax.scatter(true_pts[:, 0], true_pts[:, 1], s=0.5, c='0.45')
        ax.scatter(pred_pts[:, 0], pred_pts[:, 1], s=0.5, c='tab:red', alpha=0.6)
        ax.plot(origins[:1, 0], origins[:1, 1], 'b*', ms=8)
        ax.set_xlim(-bev_range_m, bev_range_m)
        ax.set_ylim(-bev_range_m, bev_range_m)
        ax.set_aspect('equal')
        ax.set_xlabel('x (m)')
        ax.set_ylabel('y (m)')
        ax.legend(
            handles=legend + [Line2D([], [], ls='', marker='*', color='b', label='ray origin')],
            loc='upper right',
            fontsize=7)
        ax.set_title(
            f'step {k + 1}, t = {t_s:.1f} s: end points (up_lidar frame, t = 0)', fontsize=9)
        ax = axes[row, 1]
        azimuth = np.degrees(np.arctan2(directions[:, 1], directions[:, 0]))
        ax.scatter(azimuth, gts[k], s=0.8, c='0.45')
        ax.scatter(azimuth, preds[k], s=0.8, c='tab:red', alpha=0.6)
        ax.set_xlim(-180, 180)
        ax.set_xlabel('ray azimuth (deg)')
        ax.set_ylabel('depth (m)')
        ax.legend(handles=legend, loc='upper right', fontsize=7)
        ax.set_title(f'step {k + 1}: {len(gts[k])} rays, L1 {l1:.2f} m', fontsize=9)
    fig.suptitle(f'4D occupancy forecasting {sample.get("horizon", "")}: log '
                 f'{sample["log_id"]} @ {stamp}')
    fig.tight_layout()
    with atomic_open(path, 'wb') as f:
        fig.savefig(f, format='png', dpi=100)
    plt.close(fig)
    return path


@HOOKS.register_module()
class OccForecastingVisualizationHook(Hook):
    """Draw the first ``num_frames`` test frames of each horizon (main process only) with
    :func:`draw_occ_forecasting_frame` into ``<work_dir>/<out_dir>/``.

    Args:
        num_frames: frames drawn per horizon.
        out_dir: sub-folder of the work dir.
        bev_range_m: half width of the bird's-eye view (m).
    """

    priority = 'LOW'

    def __init__(self,
                 num_frames: int = 2,
                 out_dir: str = 'occ_forecasting_vis',
                 bev_range_m: float = 40.0):
        self.num_frames = num_frames
        self.out_dir = out_dir
        self.bev_range_m = bev_range_m
        self.drawn: Dict[Optional[str], int] = {}
        self.paths = []

    def after_test_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not is_main_process() or not outputs:
            return
        for sample in outputs:
            if 'pred_depths' not in sample or 'gt_depths' not in sample:
                continue
            sample = sample.to_dict()
            horizon = sample.get('horizon')
            if self.drawn.get(horizon, 0) >= self.num_frames:
                continue
            self.drawn[horizon] = self.drawn.get(horizon, 0) + 1
            name = f'{horizon or "frame"}_{sample["log_id"]}_{sample["timestamp_ns"]}.png'
            path = draw_occ_forecasting_frame(sample, osp.join(runner.work_dir, self.out_dir, name),
                                              self.bev_range_m)
            self.paths.append(path)
            runner.logger.info(f'OccForecastingVisualizationHook: wrote {path}')
