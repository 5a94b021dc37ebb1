"""Road users: moving and queued vehicles, parked vehicles, pedestrians and cyclists.

Arms with a green light carry flowing traffic; on the others vehicles queue at the stop line and
pedestrians use the crosswalks. Every agent follows a polyline at a constant speed; its states are
sampled on the scene's time grid as (x, y, z, yaw) in the world frame.
"""
from dataclasses import dataclass, field
from typing import List

import numpy as np

from .ego_motion import EgoDrive, smooth_heading
from .ground import GroundSurface
from .object_catalog import ObjectShape, make_shape
from .polyline import Polyline2D
from .road_network import LANE_WIDTH_M, SIDEWALK_WIDTH_M, RoadNetwork


@dataclass
class Population:
    """Objects of one log: shapes and (K, 4) state samples, plus whether they ever move."""

    shapes: List[ObjectShape] = field(default_factory=list)
    states: List[np.ndarray] = field(default_factory=list)
    dynamic: List[bool] = field(default_factory=list)

    def add(self, shape: ObjectShape, states: np.ndarray, dynamic: bool) -> None:
        """Append one object."""
        self.shapes.append(shape)
        self.states.append(states)
        self.dynamic.append(dynamic)


def path_states(path: Polyline2D,
                s: np.ndarray,
                ground: GroundSurface,
                reverse_heading: bool = False) -> np.ndarray:
    """(K, 4) states (x, y, z, yaw) of an object at arc lengths ``s`` along ``path``."""
    s = np.clip(s, 0.0, path.length)
    xy, _ = path.point_and_heading(s)
    yaw = np.unwrap(smooth_heading(path, s) + (np.pi if reverse_heading else 0.0))
    return np.concatenate([xy, ground.height_at(xy)[:, None], yaw[:, None]], axis=1)


def _vehicle_kind(rng: np.random.Generator) -> str:
    return str(rng.choice(['sedan', 'suv', 'box_truck', 'bus'], p=[0.55, 0.3, 0.1, 0.05]))


def populate_traffic(pop: Population, net: RoadNetwork, ground: GroundSurface, ego: EgoDrive,
                     rng: np.random.Generator, times: np.ndarray, preset) -> None:
    """Add moving, queued and parked vehicles, cyclists and pedestrians to ``pop``.

    Args:
        pop: population to extend.
        net: road network.
        ground: ground surface (object heights).
        ego: the ego's drive (its lanes stay free of other vehicles).
        rng: the log's random generator.
        times: (K,) trajectory time grid, seconds since log start.
        preset: :class:`gasp.synthetic.presets.SyntheticPreset` (agent counts).
    """
    t = times - times[0]
    span = t[-1]
    # Moving vehicles: green arms, not on the ego's lanes; one speed per incoming lane.
    lanes_in = [
        ln for ln in net.lanes
        if ln.kind == 'incoming' and net.is_green(ln.arm) and ln.index != ego.in_lane
    ]
    lane_speed = {ln.index: rng.uniform(7.0, 12.0) for ln in lanes_in}
    used = {ln.index: [] for ln in lanes_in}
    for _ in range(preset.num_moving_vehicles * 3):
        if sum(len(v) for v in used.values()) >= preset.num_moving_vehicles or not lanes_in:
            break
        lane = lanes_in[int(rng.integers(0, len(lanes_in)))]
        options = [
            o for o in net.routes_from(lane.index) if o[1] != ego.out_lane and o[2] != 'left'
        ]
        if not options:
            continue
        _, out_lane, _ = options[int(rng.integers(0, len(options)))]
        route = net.route(lane.index, out_lane)
        speed = lane_speed[lane.index]
        s0 = rng.uniform(0.0, max(1.0, route.length - speed * span - 10.0))
        if any(abs(s0 - other) < 14.0 for other in used[lane.index]):
            continue
        used[lane.index].append(s0)
        pop.add(
            make_shape(_vehicle_kind(rng), rng), path_states(route, s0 + speed * t, ground), True)
    # Queued vehicles: red arms, standing at the stop line.
    for ln in net.lanes:
        if ln.kind != 'incoming' or net.is_green(ln.arm):
            continue
        gap = 0.0
        for _ in range(int(rng.integers(0, 4))):
            shape = make_shape(str(rng.choice(['sedan', 'suv'])), rng)
            half = shape.cuboid()[1][0] / 2
            s = ln.centerline.length - 1.5 - gap - half
            gap += 2 * half + rng.uniform(1.5, 3.0)
            pop.add(shape, path_states(ln.centerline, np.full_like(t, s), ground), True)
    _add_shoulder_users(pop, net, ground, rng, t, preset)
    _add_pedestrians(pop, net, ground, rng, t, preset)


def _add_shoulder_users(pop, net, ground, rng, t, preset) -> None:
    """Parked vehicles on the incoming-side shoulder, cyclists on the outgoing side."""
    slots = []
    for arm in net.arms:
        offset = arm.num_lanes * LANE_WIDTH_M + 1.25
        line = arm.centerline.offset(offset)
        for s in np.arange(net.stop_radius_m + 12.0, line.length - 10.0, 7.5):
            slots.append((arm.index, line, s))
    order = rng.permutation(len(slots))
    n_parked = min(preset.num_parked_vehicles, len(slots))
    for k in order[:n_parked]:
        arm, line, s = slots[k]
        kind = str(rng.choice(['sedan', 'suv', 'box_truck'], p=[0.6, 0.32, 0.08]))
        if rng.uniform() < 0.08:
            kind = 'bicycle'
        shape = make_shape(kind, rng)
        states = path_states(
            line, np.full_like(t, s + rng.uniform(-0.5, 0.5)), ground, reverse_heading=True)
        pop.add(shape, states, False)
    # Construction cones and barrels in a few of the remaining slots.
    for k in order[n_parked:n_parked + max(1, preset.num_street_furniture // 12)]:
        arm, line, s = slots[k]
        for j in range(3):
            kind = 'barrel' if j == 1 else 'cone'
            pop.add(
                make_shape(kind, rng), path_states(line, np.full_like(t, s - 2.5 + 2.5 * j),
                                                   ground), False)
    for _ in range(preset.num_cyclists):
        arm = net.arms[int(rng.integers(0, len(net.arms)))]
        line = arm.centerline.offset(-(arm.num_lanes * LANE_WIDTH_M + 1.0))
        speed = rng.uniform(3.5, 6.5)
        s0 = rng.uniform(net.stop_radius_m, max(net.stop_radius_m + 1, line.length - 40.0))
        pop.add(make_shape('bicyclist', rng), path_states(line, s0 + speed * t, ground), True)


def _add_pedestrians(pop, net, ground, rng, t, preset) -> None:
    """Pedestrians crossing at red-arm crosswalks and walking along sidewalks."""
    n_cross = (preset.num_pedestrians + 1) // 2
    red_arms = [a for a in net.arms if not net.is_green(a.index)]
    for k in range(n_cross):
        arm = red_arms[k % len(red_arms)]
        edge1, edge2 = net.crossings[arm.index]
        frac = rng.uniform(0.2, 0.8)
        a = edge1[0] + frac * (edge2[0] - edge1[0])
        b = edge1[1] + frac * (edge2[1] - edge1[1])
        across = (b - a) / np.linalg.norm(b - a)
        path = Polyline2D(np.stack([a - 2.5 * across, b + 2.5 * across]))
        if rng.uniform() < 0.5:
            path = path.reversed()
        speed = rng.uniform(1.1, 1.6)
        s0 = rng.uniform(-0.5 * speed * t[-1], 0.6 * path.length)
        pop.add(make_shape('pedestrian', rng), path_states(path, s0 + speed * t, ground), True)
    for _ in range(preset.num_pedestrians - n_cross):
        arm = net.arms[int(rng.integers(0, len(net.arms)))]
        side = rng.choice([-1.0, 1.0])
        lateral = side * (arm.half_width_m + rng.uniform(1.0, SIDEWALK_WIDTH_M - 1.0))
        line = arm.centerline.offset(lateral)
        speed = rng.uniform(0.9, 1.6)
        s0 = rng.uniform(net.stop_radius_m + 5.0, line.length - 20.0)
        if rng.uniform() < 0.5:
            s = s0 + speed * t
            pop.add(make_shape('pedestrian', rng), path_states(line, s, ground), True)
        else:
            rev = line.reversed()
            s = (rev.length - s0) + speed * t
            pop.add(make_shape('pedestrian', rng), path_states(rev, s, ground), True)
