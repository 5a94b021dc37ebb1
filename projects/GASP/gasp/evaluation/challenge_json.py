"""Files of the Argoverse 2 4D occupancy forecasting challenge: queries, ground truth and
submissions.

The layout mirrors the challenge's evaluation kit (CVPR 2023 workshop): one JSON object::

    {
      "queries": [{
        "horizon": "1s" | "3s",
        "rays": {
          "<log_id>": {
            "<frame_id>": [            # frame_id = "<t=0 lidar timestamp_ns>.feather"
              [[ox, oy, oz, dx, dy, dz], ...],   # future frame 1: one row per query ray
              ...                                # future frames 2..F
            ]}}}],
      "gasp": {...}                    # our metadata, ignored by the challenge's evaluator
    }

Rows by file kind:

- ``queries``: ``[ox, oy, oz, dx, dy, dz]``: origin (m) and unit direction, up_lidar frame of
  t = 0;
- ``ground_truth``: ``[ox, oy, oz, dx, dy, dz, d]`` with the measured depth d (m);
- ``submission``: ``[d]``: the predicted expected depth along the query ray, same order.

The ``gasp`` block holds ``format_version``, ``kind``, ``frame`` and per log and frame the past
and future timestamps (``timestamps[log_id][frame_id] = {"past_ns": [...], "future_ns":
[...]}``), so that a method can read its input sweeps from a queries file alone. Files ending
in ``.gz`` are gzip-compressed. Values are rounded to ``decimals`` places (default 5: 10 um on
origins and depths, 1e-5 on unit directions).
"""
from typing import Dict, List, Tuple

import numpy as np

from ..fileio import dump_json_atomic, load_json
from .query_rays import OccForecastingFrame

FORMAT_VERSION = 1
KINDS = ('queries', 'ground_truth', 'submission')
FRAME_DESCRIPTION = 'up_lidar frame of the t = 0 sweep; metres'
DEFAULT_DECIMALS = 5
QUERY_COLUMNS = 6  # ox, oy, oz, dx, dy, dz
GT_COLUMNS = 7  # ... + depth

#: Predicted depths: log_id -> frame_id -> one (M_k,) array per future frame.
Predictions = Dict[str, Dict[str, List[np.ndarray]]]


def _rows(columns: List[np.ndarray], decimals: int) -> list:
    arrays = [np.asarray(c, np.float64) for c in columns]
    table = np.concatenate([a[:, None] if a.ndim == 1 else a for a in arrays], axis=1)
    return np.round(table, decimals).tolist()


def _frame_id_to_ns(frame_id: str) -> int:
    return int(frame_id.split('.')[0])


def write_challenge_rays(frames: List[OccForecastingFrame],
                         path,
                         horizon: str,
                         kind: str = 'queries',
                         decimals: int = DEFAULT_DECIMALS):
    """Write query rays (``kind='queries'``) or ground truth (``'ground_truth'``) of frames.

    Args:
        frames: benchmark frames; ``depths`` must be set for ground truth.
        path: output ``.json`` or ``.json.gz`` (written atomically).
        horizon: '1s' or '3s'.
        kind: 'queries' or 'ground_truth'.
        decimals: rounding of every value.

    Returns:
        The written path.
    """
    if kind not in KINDS[:2]:
        raise ValueError(f'kind must be one of {KINDS[:2]}, got {kind!r}')
    rays: Dict[str, Dict[str, list]] = {}
    stamps: Dict[str, Dict[str, dict]] = {}
    for frame in frames:
        if kind == 'ground_truth' and frame.depths is None:
            raise ValueError(f'frame {frame.frame_id} of log {frame.log_id} has no depths; '
                             'ground truth needs them')
        steps = []
        for k in range(len(frame.directions)):
            columns = [frame.origins[k], frame.directions[k]]
            if kind == 'ground_truth':
                columns.append(frame.depths[k])
            steps.append(_rows(columns, decimals))
        rays.setdefault(frame.log_id, {})[frame.frame_id] = steps
        stamps.setdefault(frame.log_id, {})[frame.frame_id] = dict(
            past_ns=[int(t) for t in frame.past_timestamps_ns],
            future_ns=[int(t) for t in frame.future_timestamps_ns])
    return dump_json_atomic(
        dict(
            queries=[dict(horizon=horizon, rays=rays)],
            gasp=dict(
                format_version=FORMAT_VERSION,
                kind=kind,
                frame=FRAME_DESCRIPTION,
                timestamps=stamps)), path)


def read_challenge_rays(path) -> Tuple[str, List[OccForecastingFrame]]:
    """Read a queries or ground-truth file (ours or the challenge kit's).

    Returns:
        horizon label and the frames, sorted by (log_id, timestamp); ``depths`` is set when the
        rows carry a depth (ground truth). Without our ``gasp`` block the timestamps lists are
        empty.

    Raises:
        ValueError: the file does not have the challenge layout.
    """
    data = load_json(path)
    try:
        block = data['queries'][0]
        horizon, rays = block['horizon'], block['rays']
    except (KeyError, IndexError, TypeError) as err:
        raise ValueError(f'{path}: not a 4D occupancy forecasting challenge file (expected '
                         '{"queries": [{"horizon", "rays"}]})') from err
    stamps = data.get('gasp', {}).get('timestamps', {})
    frames = []
    for log_id in sorted(rays):
        for frame_id in sorted(rays[log_id], key=_frame_id_to_ns):
            steps = [np.asarray(s, np.float64) for s in rays[log_id][frame_id]]
            width = next((s.shape[1] for s in steps if s.size), QUERY_COLUMNS)
            if width not in (QUERY_COLUMNS, GT_COLUMNS):
                raise ValueError(f'{path}: log {log_id} frame {frame_id} has rows of {width} '
                                 f'values; queries have {QUERY_COLUMNS}, ground truth '
                                 f'{GT_COLUMNS}')
            steps = [s.reshape(-1, width) for s in steps]
            times = stamps.get(log_id, {}).get(frame_id, {})
            frames.append(
                OccForecastingFrame(
                    log_id=log_id,
                    timestamp_ns=_frame_id_to_ns(frame_id),
                    past_timestamps_ns=times.get('past_ns', []),
                    future_timestamps_ns=times.get('future_ns', []),
                    origins=[s[:, :3].astype(np.float32) for s in steps],
                    directions=[s[:, 3:6].astype(np.float32) for s in steps],
                    depths=([s[:, 6].astype(np.float32)
                             for s in steps] if width == GT_COLUMNS else None)))
    return horizon, frames


def write_submission(predictions: Predictions,
                     path,
                     horizon: str,
                     decimals: int = DEFAULT_DECIMALS):
    """Write predicted depths in the challenge's submission layout (one ``[d]`` per ray).

    Args:
        predictions: log_id -> frame_id -> one (M_k,) array per future frame, rays in the
            order of the queries file.
        path: output ``.json`` or ``.json.gz`` (written atomically).
        horizon: '1s' or '3s'.

    Returns:
        The written path.
    """
    rays = {
        log_id: {
            frame_id: [_rows([d], decimals) for d in steps]
            for frame_id, steps in frames.items()
        }
        for log_id, frames in predictions.items()
    }
    return dump_json_atomic(
        dict(
            queries=[dict(horizon=horizon, rays=rays)],
            gasp=dict(format_version=FORMAT_VERSION, kind='submission', frame=FRAME_DESCRIPTION)),
        path)


def read_submission(path) -> Tuple[str, Predictions]:
    """Read a submission: horizon label and log_id -> frame_id -> [(M_k,) float32 depths]."""
    data = load_json(path)
    try:
        block = data['queries'][0]
        horizon, rays = block['horizon'], block['rays']
    except (KeyError, IndexError, TypeError) as err:
        raise ValueError(f'{path}: not a 4D occupancy forecasting submission (expected '
                         '{"queries": [{"horizon", "rays"}]})') from err
    return horizon, {
        log_id: {
            frame_id: [np.asarray(s, np.float32).reshape(-1) for s in steps]
            for frame_id, steps in frames.items()
        }
        for log_id, frames in rays.items()
    }
