"""The firing pattern of a spinning lidar, estimated from its own returns.

AV2 does not publish the beam layout, but every return carries ``laser_number`` and
``offset_ns`` (time since the sweep start). For one log the pattern is estimated as:

- each return's direction in its lidar's frame at firing time: AV2 points are
  motion-compensated to the sweep timestamp, so the ego motion between the sweep timestamp
  and ``timestamp + offset_ns`` (interpolated ego poses) is undone first;
- **elevation** of each laser: median elevation of its returns;
- **column period** P: the typical spacing of one laser's consecutive firing times;
- **firing delay** of each laser within a column: circular mean of ``offset mod P``;
- **azimuth** at firing time t: ``azimuth0_l + spin * 2 pi t / T`` with T the sweep
  period and the spin direction (+1 counter-clockwise) chosen by fit.

A firing (laser l, column k) at ``t = delay_l + k P`` fired in every sweep; the ones
without a return are the missing rays (:func:`missing_firings`).
"""
from dataclasses import asdict, dataclass
from typing import Dict, List, Tuple

import numpy as np

from ..datasets.av2_io import LASERS_PER_LIDAR, LIDARS
from .pose_interpolation import PoseInterpolator

TWO_PI = 2 * np.pi


def circular_mean(angles: np.ndarray, groups: np.ndarray, num_groups: int) -> np.ndarray:
    """(G,) circular mean of ``angles`` (rad) per group id (NaN for empty groups)."""
    s = np.bincount(groups, np.sin(angles), num_groups)
    c = np.bincount(groups, np.cos(angles), num_groups)
    out = np.arctan2(s, c)
    out[np.bincount(groups, minlength=num_groups) == 0] = np.nan
    return out


def wrap(angles: np.ndarray) -> np.ndarray:
    """Angles to [-pi, pi)."""
    return (angles + np.pi) % TWO_PI - np.pi


@dataclass
class BeamModel:
    """Firing pattern of one log's lidars (arrays over laser_number 0-63).

    Args:
        elevation_rad: (64,) per laser, in its lidar's frame; NaN when the laser never
            returned in the fitting sweeps (then it is not predicted).
        azimuth0_rad: (64,) azimuth at ``offset_ns = 0`` (lidar frame).
        delay_ns: (64,) firing delay within a column.
        column_period_ns: (2,) per lidar (up, down).
        columns: (2,) firing columns per sweep and lidar.
        spin: +1 (counter-clockwise seen from above) or -1.
        sweep_period_ns: time of one revolution (the sweep spacing).
    """

    elevation_rad: np.ndarray
    azimuth0_rad: np.ndarray
    delay_ns: np.ndarray
    column_period_ns: np.ndarray
    columns: np.ndarray
    spin: float
    sweep_period_ns: float

    def to_json(self) -> dict:
        return {
            k: (v.tolist() if isinstance(v, np.ndarray) else v)
            for k, v in asdict(self).items()
        }

    @classmethod
    def from_json(cls, data: dict) -> 'BeamModel':
        return cls(**{
            k: (np.asarray(v, dtype=np.float64) if isinstance(v, list) else v)
            for k, v in data.items()
        })


def firing_directions_sensor(sweep: Dict[str, np.ndarray], sweep_ns: int, poses: PoseInterpolator,
                             ego_from_lidar: Dict[str, np.ndarray]) -> Tuple[np.ndarray, ...]:
    """Directions of a sweep's returns in their lidar's frame at firing time.

    Args:
        sweep: ``read_sweep`` output (``xyz_ego`` in the ego frame at ``sweep_ns``).
        sweep_ns: sweep timestamp.
        poses: ego poses of the log.
        ego_from_lidar: ``up_lidar`` / ``down_lidar`` -> (4, 4).

    Returns:
        elevation (N,), azimuth (N,) in rad and range (N,) in m.
    """
    offsets, inverse = np.unique(sweep['offset_ns'], return_inverse=True)
    sweep_from_fire = poses.sweep_from_firing(sweep_ns, offsets)[inverse]  # (N, 4, 4)
    unit = (sweep['laser_number'] >= LASERS_PER_LIDAR).astype(np.int64)
    lidar = np.stack([ego_from_lidar[name] for name in LIDARS])[unit]  # (N, 4, 4)
    origin_sweep = (
        np.einsum('nij,nj->ni', sweep_from_fire[:, :3, :3], lidar[:, :3, 3]) +
        sweep_from_fire[:, :3, 3])
    d_sweep = sweep['xyz_ego'].astype(np.float64) - origin_sweep
    d_fire = np.einsum('nji,nj->ni', sweep_from_fire[:, :3, :3], d_sweep)
    d_lidar = np.einsum('nji,nj->ni', lidar[:, :3, :3], d_fire)
    rng = np.linalg.norm(d_lidar, axis=1)
    elevation = np.arcsin(np.clip(d_lidar[:, 2] / np.maximum(rng, 1e-9), -1, 1))
    azimuth = np.arctan2(d_lidar[:, 1], d_lidar[:, 0])
    return elevation, azimuth, rng


def _column_period(offsets: np.ndarray, lasers: np.ndarray, sweep_ids: np.ndarray) -> float:
    """Typical spacing of consecutive firing times of one laser."""
    order = np.lexsort((offsets, lasers, sweep_ids))
    o, key = offsets[order].astype(np.int64), lasers[order] * 100000 + sweep_ids[order]
    same = key[1:] == key[:-1]
    diffs = np.diff(o)[same]
    diffs = diffs[diffs > 0]
    if len(diffs) == 0:
        raise ValueError('cannot estimate the lidar column period: no laser returned twice')
    low = np.percentile(diffs, 5)
    return float(np.median(diffs[(diffs >= 0.5 * low) & (diffs <= 1.5 * low)]))


def fit_beam_model(sweeps: List[Tuple[int, Dict[str, np.ndarray]]],
                   poses: PoseInterpolator,
                   ego_from_lidar: Dict[str, np.ndarray],
                   sweep_period_ns: float,
                   min_range_m: float = 3.0) -> BeamModel:
    """Estimate a log's beam model from some of its sweeps.

    Args:
        sweeps: (timestamp_ns, ``read_sweep`` output) pairs.
        poses: ego poses of the log.
        ego_from_lidar: lidar extrinsics.
        sweep_period_ns: one revolution (median spacing of the sweep timestamps).
        min_range_m: closer returns (the ego body) are not used for the fit.

    Returns:
        The fitted :class:`BeamModel`.
    """
    parts = {k: [] for k in ('el', 'az', 'laser', 'offset', 'sweep')}
    for index, (stamp, sweep) in enumerate(sweeps):
        el, az, rng = firing_directions_sensor(sweep, stamp, poses, ego_from_lidar)
        keep = rng >= min_range_m
        parts['el'].append(el[keep])
        parts['az'].append(az[keep])
        parts['laser'].append(sweep['laser_number'][keep].astype(np.int64))
        parts['offset'].append(sweep['offset_ns'][keep].astype(np.int64))
        parts['sweep'].append(np.full(int(keep.sum()), index))
    el, az, laser, offset, sweep_id = (
        np.concatenate(parts[k]) for k in ('el', 'az', 'laser', 'offset', 'sweep'))
    num = 2 * LASERS_PER_LIDAR
    elevation = np.full(num, np.nan)
    for l_id in np.unique(laser):
        elevation[l_id] = np.median(el[laser == l_id])
    unit = laser >= LASERS_PER_LIDAR
    period = np.array(
        [_column_period(offset[unit == u], laser[unit == u], sweep_id[unit == u]) for u in (0, 1)])
    columns = np.round(sweep_period_ns / period).astype(np.int64)
    phase = TWO_PI * (offset % period[unit.astype(int)]) / period[unit.astype(int)]
    delay = circular_mean(phase, laser, num) % TWO_PI / TWO_PI * np.repeat(period, LASERS_PER_LIDAR)
    omega = TWO_PI / sweep_period_ns
    best = None
    for spin in (1.0, -1.0):
        residual = wrap(az - spin * omega * offset)
        centre = circular_mean(residual, laser, num)
        spread = np.mean(np.abs(wrap(residual - centre[laser])))
        if best is None or spread < best[0]:
            best = (spread, spin, centre)
    _, spin, azimuth0 = best
    return BeamModel(
        elevation_rad=elevation,
        azimuth0_rad=azimuth0,
        delay_ns=delay,
        column_period_ns=period,
        columns=columns,
        spin=spin,
        sweep_period_ns=float(sweep_period_ns))


def missing_firings(model: BeamModel, sweep: Dict[str, np.ndarray], sweep_ns: int,
                    poses: PoseInterpolator,
                    ego_from_lidar: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """The firings of one sweep that have no return.

    A laser's firing times are ``delay_l + phase_s + k P`` (``phase_s``: this sweep's shift
    of the column grid, estimated from its returns); firings inside the span of columns the
    lidar returned in this sweep and without a return of that laser are missing.

    Returns:
        dict with ``directions_ego`` (M, 3) float32 unit vectors in the ego frame at the
        sweep timestamp (rotated by the ego motion to the firing time, as AV2 points are),
        ``laser_number`` (M,) uint8 and ``offset_ns`` (M,) int64 (estimated firing time).
    """
    laser = sweep['laser_number'].astype(np.int64)
    offset = sweep['offset_ns'].astype(np.int64)
    out_laser, out_time = [], []
    for u, name in enumerate(LIDARS):
        period, columns = float(model.column_period_ns[u]), int(model.columns[u])
        lasers = np.arange(u * LASERS_PER_LIDAR, (u + 1) * LASERS_PER_LIDAR)
        lasers = lasers[np.isfinite(model.elevation_rad[lasers])]
        mine = ((laser >= u * LASERS_PER_LIDAR) & (laser < (u + 1) * LASERS_PER_LIDAR)
                & np.isfinite(model.delay_ns[laser]))
        if not mine.any() or len(lasers) == 0:
            continue
        rel = offset[mine] - model.delay_ns[laser[mine]]
        phase = circular_mean(TWO_PI * rel / period, np.zeros(int(mine.sum()), np.int64), 1)[0]
        shift = phase / TWO_PI * period
        column = np.round((rel - shift) / period).astype(np.int64)
        fired = np.zeros((len(lasers), columns), dtype=bool)
        k_lo, k_hi = max(int(column.min()), 0), min(int(column.max()), columns - 1)
        fired[:, k_lo:k_hi + 1] = True
        returned = np.zeros((2 * LASERS_PER_LIDAR, columns), dtype=bool)
        valid = (column >= 0) & (column < columns)
        returned[laser[mine][valid], column[valid]] = True
        miss_l, miss_k = np.nonzero(fired & ~returned[lasers])
        out_laser.append(lasers[miss_l])
        out_time.append(model.delay_ns[lasers[miss_l]] + shift + miss_k * period)
    if not out_laser:
        return dict(
            directions_ego=np.zeros((0, 3), np.float32),
            laser_number=np.zeros(0, np.uint8),
            offset_ns=np.zeros(0, np.int64))
    miss_laser, miss_time = np.concatenate(out_laser), np.concatenate(out_time)
    el = model.elevation_rad[miss_laser]
    az = model.azimuth0_rad[miss_laser] + model.spin * TWO_PI * miss_time / model.sweep_period_ns
    d_lidar = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], 1)
    unit = (miss_laser >= LASERS_PER_LIDAR).astype(np.int64)
    rot_lidar = np.stack([ego_from_lidar[name][:3, :3] for name in LIDARS])[unit]
    d_fire = np.einsum('nij,nj->ni', rot_lidar, d_lidar)
    times = np.round(miss_time).astype(np.int64)
    uniq, inverse = np.unique(times, return_inverse=True)
    rot_motion = poses.sweep_from_firing(sweep_ns, uniq)[inverse, :3, :3]
    d_ego = np.einsum('nij,nj->ni', rot_motion, d_fire)
    d_ego /= np.linalg.norm(d_ego, axis=1, keepdims=True)
    return dict(
        directions_ego=d_ego.astype(np.float32),
        laser_number=miss_laser.astype(np.uint8),
        offset_ns=times)
