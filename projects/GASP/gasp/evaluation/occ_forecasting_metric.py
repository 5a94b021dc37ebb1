"""The 4D occupancy forecasting metric as an mmengine ``BaseMetric`` (SPEC s. 5).

Every (log, frame, future step) gives one row of errors
(:func:`~.occ_forecasting_errors.occ_forecasting_step_errors`); each metric is the mean over
all rows (not over rays), as in the challenge's evaluation kit.
"""
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmdet3d.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from ..fileio import dump_json_atomic
from .challenge_json import Predictions
from .chamfer import DEFAULT_CHUNK
from .occ_forecasting_errors import METRIC_NAMES, occ_forecasting_step_errors
from .occ_forecasting_protocol import NEAR_FIELD_RANGE
from .query_rays import OccForecastingFrame

VARIANTS = {
    False: 'plain (L1/AbsRel on unclamped depths)',
    True: 'clamped (depths clamped to the near-field box before L1/AbsRel)'
}


def _tensor(value, dtype=torch.float32) -> torch.Tensor:
    return torch.as_tensor(np.asarray(value) if not torch.is_tensor(value) else value, dtype=dtype)


@METRICS.register_module()
class OccForecastingMetric(BaseMetric):
    """L1, AbsRel, CD and NFCD of expected depths along the benchmark's query rays.

    ``process`` takes data samples (dicts or objects with ``to_dict``), one per (log, frame),
    with keys:

    - ``log_id`` (str) and ``timestamp_ns`` (int, the t = 0 sweep);
    - ``origins``: F arrays (M_k, 3) or (3,) (m), up_lidar frame of t = 0;
    - ``directions``: F arrays (M_k, 3), unit;
    - ``gt_depths`` and ``pred_depths``: F arrays (M_k,) (m); ``pred_depths`` may also be one
      (sum M_k,) array in step order (what :class:`GASPOccForecaster` returns);
    - ``horizon`` ('1s' / '3s'), read only when the metric is given one.

    Args:
        near_field_range: NFCD box (x_min, y_min, z_min, x_max, y_max, z_max) (m).
        clamp_to_box: the paper's variant, which clamps both depths to the box before
            L1/AbsRel.
        chamfer_chunk: query points per cdist call.
        chamfer_backend: nearest-neighbour search: 'auto' (KD-tree on CPU, chunked
            ``torch.cdist`` on GPU), 'cdist' or 'kdtree'; all give the same distances.
        device: where the Chamfer distances run ('cpu' or 'cuda').
        horizon: score only samples of this horizon ('1s' or '3s'; None: every sample), so
            that one test loop over both horizons has one metric (and prefix) per horizon.
        out_file: if set, the metrics, per-step means and every row are written there as
            JSON (atomic write).
        collect_device, prefix: see ``mmengine.evaluator.BaseMetric``.
    """

    default_prefix = 'occ_forecasting'

    def __init__(self,
                 near_field_range: Sequence[float] = NEAR_FIELD_RANGE,
                 clamp_to_box: bool = False,
                 chamfer_chunk: int = DEFAULT_CHUNK,
                 chamfer_backend: str = 'auto',
                 device: str = 'cpu',
                 out_file: Optional[str] = None,
                 horizon: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.near_field_range = tuple(near_field_range)
        self.clamp_to_box = clamp_to_box
        self.chamfer_chunk = chamfer_chunk
        self.chamfer_backend = chamfer_backend
        self.device = device
        self.out_file = out_file
        self.horizon = horizon

    @property
    def variant(self) -> str:
        return VARIANTS[self.clamp_to_box]

    def process(self, data_batch, data_samples: Sequence) -> None:
        """Compute the error rows of each (log, frame) and keep only those (no clouds).

        One entry per data sample (mmengine's ``collect_results`` cuts the list at the dataset
        size), holding that frame's rows; samples of another horizon give an empty entry.
        """
        for sample in data_samples:
            sample = sample.to_dict() if hasattr(sample, 'to_dict') else sample
            rows = []
            if self.horizon is not None and sample.get('horizon') != self.horizon:
                self.results.append(rows)
                continue
            steps = zip(sample['origins'], sample['directions'], sample['gt_depths'],
                        _per_step(sample['pred_depths'], sample['gt_depths']))
            for step, (origin, direction, gt, pred) in enumerate(steps):
                pred = _tensor(pred).to(self.device)
                where = f'log {sample["log_id"]}, frame {sample["timestamp_ns"]}, step {step}'
                if pred.numel() == 0:
                    raise ValueError(f'OccForecastingMetric: no query rays ({where})')
                if not torch.isfinite(pred).all():
                    raise ValueError(f'OccForecastingMetric: non-finite predicted depths '
                                     f'({where}); the renderer must return finite depths')
                row = occ_forecasting_step_errors(
                    _tensor(origin).to(self.device),
                    _tensor(direction).to(self.device),
                    _tensor(gt).to(self.device), pred, self.near_field_range, self.clamp_to_box,
                    self.chamfer_chunk, self.chamfer_backend)
                row.update(
                    log_id=sample['log_id'], timestamp_ns=int(sample['timestamp_ns']), step=step)
                rows.append(row)
            self.results.append(rows)

    def compute_metrics(self, results: List[List[dict]]) -> Dict[str, float]:
        """Mean of every metric over all (log, frame, step) rows; prints a table."""
        results = [row for rows in results for row in rows]
        if not results:
            raise ValueError('OccForecastingMetric: no results; did the evaluation loop run' +
                             (f' over {self.horizon} frames?' if self.horizon else '?'))
        metrics = {name: float(np.mean([r[name] for r in results])) for name in METRIC_NAMES}
        per_step = {}
        for step in sorted({r['step'] for r in results}):
            rows = [r for r in results if r['step'] == step]
            per_step[step] = {
                name: float(np.mean([r[name] for r in rows]))
                for name in METRIC_NAMES
            }
        title = f'[{self.horizon}] ' if self.horizon else ''
        print_log(
            '\n' + title + format_table(metrics, per_step, len(results), self.variant),
            logger='current')
        if self.out_file:
            dump_json_atomic(
                dict(
                    metrics=metrics,
                    horizon=self.horizon,
                    variant=self.variant,
                    near_field_range=list(self.near_field_range),
                    num_rows=len(results),
                    per_step={
                        str(k): v
                        for k, v in per_step.items()
                    },
                    rows=results),
                self.out_file,
                indent=1)
        return metrics


def _per_step(pred_depths, gt_depths) -> list:
    """Predicted depths as one array per step: a flat (sum M_k,) array is cut at the step
    sizes of the ground truth."""
    if len(pred_depths) == len(gt_depths) and all(
            np.ndim(p) == 1 and len(p) == len(g) for p, g in zip(pred_depths, gt_depths)):
        return list(pred_depths)
    sizes = [len(g) for g in gt_depths]
    flat = _tensor(pred_depths)
    if flat.dim() != 1 or flat.numel() != sum(sizes):
        raise ValueError(f'OccForecastingMetric: pred_depths must be one array per step with '
                         f'{sizes} rays, or one array of {sum(sizes)}; got shape '
                         f'{tuple(flat.shape)}')
    return list(flat.split(sizes))


def format_table(metrics: Dict[str, float], per_step: Dict[int, Dict[str, float]], num_rows: int,
                 variant: str) -> str:
    """Text table: one line per future step and the overall means (AbsRel in %)."""
    header = f'{"step":>8} {"L1 (m)":>10} {"AbsRel (%)":>11} {"NFCD (m^2)":>11} {"CD (m^2)":>10}'

    def line(name, values):
        return (f'{name:>8} {values["L1"]:10.3f} {100 * values["AbsRel"]:11.2f} '
                f'{values["NFCD"]:11.3f} {values["CD"]:10.3f}')

    lines = [
        f'4D occupancy forecasting, {num_rows} (log, frame, step) rows, variant: {variant}', header
    ]
    lines += [line(str(step + 1), values) for step, values in per_step.items()]
    lines.append(line('all', metrics))
    return '\n'.join(lines)


def evaluate_frames(gt_frames: List[OccForecastingFrame], predictions: Predictions,
                    **metric_kwargs) -> Dict[str, float]:
    """Score predicted depths against ground-truth frames (e.g. a challenge submission).

    Args:
        gt_frames: frames with ground-truth ``depths``.
        predictions: log_id -> frame_id -> [(M_k,) depths]; must cover every frame.
        **metric_kwargs: passed to :class:`OccForecastingMetric`.

    Returns:
        The metrics (L1, AbsRel, CD, NFCD).

    Raises:
        KeyError: a ground-truth frame has no prediction.
    """
    metric = OccForecastingMetric(**metric_kwargs)
    for frame in gt_frames:
        try:
            pred = predictions[frame.log_id][frame.frame_id]
        except KeyError as err:
            raise KeyError(f'no prediction for log {frame.log_id} frame {frame.frame_id}') from err
        if [len(p) for p in pred] != [len(d) for d in frame.depths]:
            raise ValueError(f'log {frame.log_id} frame {frame.frame_id}: predicted ray counts '
                             f'{[len(p) for p in pred]} differ from the queries '
                             f'{[len(d) for d in frame.depths]}')
        metric.process(None, [
            dict(
                log_id=frame.log_id,
                timestamp_ns=frame.timestamp_ns,
                origins=frame.origins,
                directions=frame.directions,
                gt_depths=frame.depths,
                pred_depths=pred)
        ])
    return metric.compute_metrics(metric.results)
