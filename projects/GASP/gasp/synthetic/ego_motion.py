"""The ego vehicle's drive: a lane route through the intersection and a speed profile.

The ego always approaches on an arm with a green light; it cruises through (straight or
turning) or stops at the stop line for a while and drives on (a pedestrian, a stop sign).
"""
from dataclasses import dataclass

import numpy as np

from .ground import GroundSurface
from .polyline import Polyline2D
from .road_network import RoadNetwork

WHEELBASE_M = 2.9
TRACK_M = 1.6


@dataclass
class EgoDrive:
    """The ego's route and motion.

    Args:
        in_lane, out_lane: lane indices of the route (through one connector).
        turn: ``'straight'``, ``'left'`` or ``'right'``.
        stops: whether the ego stops at the stop line.
        route: centre line of the whole route, world frame.
        states: (K, 6) rear-axle pose samples (x, y, z, yaw, pitch, roll), world frame, on the
            scene's trajectory time grid.
        speed_mps: (K,) speed samples.
    """

    in_lane: int
    out_lane: int
    turn: str
    stops: bool
    route: Polyline2D
    states: np.ndarray
    speed_mps: np.ndarray


def smooth_heading(path: Polyline2D, s: np.ndarray, half_window_m: float = 1.0) -> np.ndarray:
    """Heading of the chord p(s + w) - p(s - w): smooth through polyline vertices."""
    lo = np.clip(s - half_window_m, 0.0, path.length)
    hi = np.clip(s + half_window_m, 0.0, path.length)
    a, _ = path.point_and_heading(lo)
    b, _ = path.point_and_heading(hi)
    d = b - a
    return np.arctan2(d[..., 1], d[..., 0])


def _speed_profile(times: np.ndarray, cruise: float, stop_at_s: float, s0: float, decel: float,
                   accel: float, wait_s: float, stops: bool) -> np.ndarray:
    """Integrated arc length s(t) for a cruise or stop-and-go profile (explicit on the grid)."""
    dt = times[1] - times[0]
    s = np.empty_like(times)
    v = np.empty_like(times)
    s[0], v[0] = s0, cruise
    state, waited = 'cruise', 0.0
    for k in range(1, len(times)):
        vk = v[k - 1]
        if stops and state == 'cruise':
            brake_dist = vk * vk / (2 * decel)
            if s[k - 1] + brake_dist >= stop_at_s:
                state = 'brake'
        if state == 'brake':
            remaining = max(stop_at_s - s[k - 1], 1e-6)
            vk = max(0.0, vk - (vk * vk / (2 * remaining)) * dt)
            if vk < 0.05:
                vk, state = 0.0, 'wait'
        elif state == 'wait':
            vk = 0.0
            waited += dt
            if waited >= wait_s:
                state = 'go'
        elif state == 'go':
            vk = min(cruise, vk + accel * dt)
        v[k] = vk
        s[k] = s[k - 1] + 0.5 * (vk + v[k - 1]) * dt
    return s, v


def plan_ego_drive(net: RoadNetwork, ground: GroundSurface, rng: np.random.Generator,
                   times: np.ndarray, duration_s: float) -> EgoDrive:
    """Pick a route and speed profile and sample the ego pose on the time grid.

    Args:
        net: road network.
        ground: ground surface (heights give z, pitch and roll).
        rng: the log's random generator.
        times: (K,) trajectory time grid, seconds since log start.
        duration_s: log length; the ego reaches the intersection around mid-log.

    Returns:
        The planned drive.
    """
    green_arms = [a.index for a in net.arms if net.is_green(a.index)]
    arm = int(rng.choice(green_arms))
    in_lane = net.arm_lanes(arm, 'incoming')[int(rng.integers(0, net.arms[arm].num_lanes))]
    options = net.routes_from(in_lane.index)
    weights = np.array([{'straight': 3.0, 'left': 1.0, 'right': 1.5}[t] for _, _, t in options])
    _, out_lane, turn = options[int(rng.choice(len(options), p=weights / weights.sum()))]
    route = net.route(in_lane.index, out_lane)
    stops = bool(rng.uniform() < 0.35)
    cruise = rng.uniform(7.0, 12.5)
    stop_at = in_lane.centerline.length - 1.0
    decel, accel, wait = rng.uniform(1.8, 2.8), rng.uniform(1.2, 2.0), rng.uniform(0.8, 2.0)
    if stops:
        lead = cruise * cruise / (2 * decel) + cruise * rng.uniform(0.1, 0.3) * duration_s
        s0 = stop_at - lead
    else:
        s0 = stop_at - cruise * duration_s * rng.uniform(0.3, 0.65)
    s0 = max(s0, 0.0)
    s, v = _speed_profile(times - times[0], cruise, stop_at, s0, decel, accel, wait, stops)
    xy, _ = route.point_and_heading(s)
    yaw = np.unwrap(smooth_heading(route, s))
    z = ground.height_at(xy)
    fwd = np.stack([np.cos(yaw), np.sin(yaw)], 1)
    left = np.stack([-np.sin(yaw), np.cos(yaw)], 1)
    h_front = ground.height_at(xy + WHEELBASE_M * fwd)
    h_left = ground.height_at(xy + 0.5 * TRACK_M * left)
    h_right = ground.height_at(xy - 0.5 * TRACK_M * left)
    pitch = -np.arctan2(h_front - z, WHEELBASE_M)
    roll = np.arctan2(h_left - h_right, TRACK_M)
    states = np.stack([xy[:, 0], xy[:, 1], z, yaw, pitch, roll], axis=1)
    return EgoDrive(in_lane.index, out_lane, turn, stops, route, states, v)
