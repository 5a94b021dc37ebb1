"""Procedural road network: one intersection with curved arms, lanes, connectors, crosswalks.

All geometry is 2D in the ``world`` frame (intersection centre at the origin); heights are added
by the ground surface when the map is written.

Traffic drives on the right. An arm's ``centerline`` runs outward from the intersection centre;
its outgoing lanes lie to the right of it, its incoming lanes to the left. Lane 0 is always the
innermost lane (next to the centre line), so in the direction of travel lane ``i - 1`` is the left
neighbour of lane ``i``.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from .polyline import Polyline2D, hermite_curve

LANE_WIDTH_M = 3.5
SHOULDER_WIDTH_M = 2.5
CROSSWALK_WIDTH_M = 4.0
SIDEWALK_WIDTH_M = 4.0
SEGMENT_LENGTH_M = 30.0


@dataclass
class Arm:
    """One road leaving the intersection.

    Args:
        index: arm index (counter-clockwise order).
        centerline: outward centre line from the intersection centre, world frame.
        num_lanes: lanes per direction.
        half_width_m: centre line to kerb (lanes plus shoulder).
    """

    index: int
    centerline: Polyline2D
    num_lanes: int

    @property
    def half_width_m(self) -> float:
        """Distance from the centre line to the kerb."""
        return self.num_lanes * LANE_WIDTH_M + SHOULDER_WIDTH_M

    @property
    def angle(self) -> float:
        """Outward heading at the intersection, radians."""
        return float(self.centerline.point_and_heading(0.0)[1])


@dataclass
class Lane:
    """A lane in the direction of travel; split into map lane segments.

    Args:
        index: position in :attr:`RoadNetwork.lanes`.
        kind: ``'incoming'``, ``'outgoing'`` or ``'connector'``.
        arm: arm of an incoming/outgoing lane, else the arm the connector leaves.
        lane_number: 0 = innermost lane (for connectors: the incoming lane's number).
        centerline: centre line in the direction of travel, world frame.
        to_arm: for connectors, the arm entered.
        turn: for connectors, ``'straight'``, ``'left'`` or ``'right'``.
        segment_ids: map lane-segment ids in travel order.
        segment_bounds_s: (len(segment_ids) + 1,) arc lengths where segments start/end.
    """

    index: int
    kind: str
    arm: int
    lane_number: int
    centerline: Polyline2D
    to_arm: Optional[int] = None
    turn: Optional[str] = None
    segment_ids: List[int] = field(default_factory=list)
    segment_bounds_s: Optional[np.ndarray] = None


@dataclass
class RoadNetwork:
    """Roads, lanes and crosswalks of one log's world.

    Args:
        arms: the roads leaving the intersection.
        core_radius_m: radius of the intersection box; crosswalks start here.
        stop_radius_m: where incoming lanes end and outgoing lanes start.
        lanes: arm lanes and intersection connectors.
        connectors: (incoming lane index, outgoing lane index) -> connector lane index.
        lane_segments: map lane-segment id -> dict of 2D geometry and topology (see
            :func:`gasp.synthetic.av2_writer.write_map`).
        crossings: list of (edge1 (2, 2), edge2 (2, 2)) crosswalk edges, world frame.
        drivable_polygons: list of (K, 2) polygons (not closed), world frame.
        green_axis: arms ``green_axis`` and ``green_axis + 2`` have a green light all log.
    """

    arms: List[Arm]
    core_radius_m: float
    stop_radius_m: float
    lanes: List[Lane] = field(default_factory=list)
    connectors: Dict[Tuple[int, int], int] = field(default_factory=dict)
    lane_segments: Dict[int, dict] = field(default_factory=dict)
    crossings: List[Tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    drivable_polygons: List[np.ndarray] = field(default_factory=list)
    green_axis: int = 0

    def arm_lanes(self, arm: int, kind: str) -> List[Lane]:
        """Lanes of ``arm`` of one kind, ordered by lane number."""
        lanes = [ln for ln in self.lanes if ln.arm == arm and ln.kind == kind]
        return sorted(lanes, key=lambda ln: ln.lane_number)

    def is_green(self, arm: int) -> bool:
        """Whether traffic entering from ``arm`` has a green light."""
        return arm % 2 == self.green_axis % 2

    def route(self, in_lane: int, out_lane: int) -> Polyline2D:
        """Centre line of incoming lane -> connector -> outgoing lane, in travel order."""
        conn = self.lanes[self.connectors[(in_lane, out_lane)]]
        return (self.lanes[in_lane].centerline.concat(conn.centerline).concat(
            self.lanes[out_lane].centerline))

    def routes_from(self, in_lane: int) -> List[Tuple[int, int, str]]:
        """(incoming lane, outgoing lane, turn) for every connector leaving ``in_lane``."""
        return [(i, o, self.lanes[c].turn) for (i, o), c in self.connectors.items() if i == in_lane]


def _turn_kind(in_heading: float, out_heading: float) -> str:
    delta = (out_heading - in_heading + np.pi) % (2 * np.pi) - np.pi
    if abs(delta) < np.pi / 4:
        return 'straight'
    return 'left' if delta > 0 else 'right'


def _arm_centerline(angle: float, length_m: float, rng: np.random.Generator) -> Polyline2D:
    """Straight for a while, then a gentle constant-curvature bend."""
    straight_m = rng.uniform(35.0, 60.0)
    curvature = rng.uniform(-1.0, 1.0) / rng.uniform(150.0, 400.0)
    s = np.arange(0.0, length_m + 2.0, 2.0)
    kappa = np.where(s > straight_m, curvature, 0.0)
    heading = angle + np.concatenate([[0.0], np.cumsum(kappa[:-1] * 2.0)])
    xy = np.concatenate(
        [[[0.0, 0.0]],
         np.cumsum(2.0 * np.stack([np.cos(heading[:-1]), np.sin(heading[:-1])], 1), 0)])
    return Polyline2D(xy)


def build_road_network(rng: np.random.Generator, half_extent_m: float,
                       first_segment_id: int) -> RoadNetwork:
    """Lay out a four-arm intersection with curved arms.

    Args:
        rng: random generator (the log's).
        half_extent_m: arms reach this far from the intersection centre.
        first_segment_id: first map lane-segment id (AV2 ids are large integers).

    Returns:
        The road network with lanes, connectors, map lane segments, crosswalks and drivable areas.
    """
    base = rng.uniform(-np.pi, np.pi)
    angles = base + np.arange(4) * np.pi / 2 + rng.uniform(-0.2, 0.2, size=4)
    arms = [
        Arm(a, _arm_centerline(angles[a], half_extent_m + 25.0, rng),
            int(rng.choice([1, 2], p=[0.4, 0.6]))) for a in range(4)
    ]
    arms[0].num_lanes = arms[2].num_lanes = max(arms[0].num_lanes, arms[2].num_lanes)
    min_gap = np.min(np.diff(np.concatenate([angles, angles[:1] + 2 * np.pi])))
    max_hw = max(arm.half_width_m for arm in arms)
    core = max_hw / np.tan(min_gap / 2) + 2.0
    net = RoadNetwork(
        arms=arms,
        core_radius_m=core,
        stop_radius_m=core + CROSSWALK_WIDTH_M + 1.0,
        green_axis=int(rng.integers(0, 2)))
    _add_arm_lanes(net)
    _add_connectors(net)
    _add_map_segments(net, first_segment_id)
    _add_crossings_and_drivable(net)
    return net


def _add_arm_lanes(net: RoadNetwork) -> None:
    for arm in net.arms:
        end = arm.centerline.length
        for i in range(arm.num_lanes):
            off = (i + 0.5) * LANE_WIDTH_M
            out_line = arm.centerline.offset(-off).slice(net.stop_radius_m, end)
            in_line = arm.centerline.offset(off).slice(net.stop_radius_m, end).reversed()
            for kind, line in (('outgoing', out_line), ('incoming', in_line)):
                net.lanes.append(Lane(len(net.lanes), kind, arm.index, i, line))


def _add_connectors(net: RoadNetwork) -> None:
    for arm in net.arms:
        for lane_in in net.arm_lanes(arm.index, 'incoming'):
            p0, yaw0 = lane_in.centerline.point_and_heading(lane_in.centerline.length)
            n_in = arm.num_lanes
            for other in net.arms:
                if other.index == arm.index:
                    continue
                outs = net.arm_lanes(other.index, 'outgoing')
                p1, yaw1 = outs[0].centerline.point_and_heading(0.0)
                turn = _turn_kind(float(yaw0), float(yaw1))
                if turn == 'right' and lane_in.lane_number != n_in - 1:
                    continue
                if turn == 'left' and lane_in.lane_number != 0:
                    continue
                if turn == 'right':
                    lane_out = outs[-1]
                elif turn == 'left':
                    lane_out = outs[0]
                else:
                    lane_out = outs[min(lane_in.lane_number, len(outs) - 1)]
                p1, yaw1 = lane_out.centerline.point_and_heading(0.0)
                curve = hermite_curve(p0, float(yaw0), p1, float(yaw1), num=16)
                conn = Lane(
                    len(net.lanes),
                    'connector',
                    arm.index,
                    lane_in.lane_number,
                    curve,
                    to_arm=other.index,
                    turn=turn)
                net.lanes.append(conn)
                net.connectors[(lane_in.index, lane_out.index)] = conn.index


def _mark_types(lane: Lane, num_lanes: int) -> Tuple[str, str]:
    if lane.kind == 'connector':
        return 'NONE', 'NONE'
    left = 'DOUBLE_SOLID_YELLOW' if lane.lane_number == 0 else 'DASHED_WHITE'
    right = 'SOLID_WHITE' if lane.lane_number == num_lanes - 1 else 'DASHED_WHITE'
    return left, right


def _add_map_segments(net: RoadNetwork, first_id: int) -> None:
    next_id = first_id
    for lane in net.lanes:
        length = lane.centerline.length
        n_seg = 1 if lane.kind == 'connector' else max(1, int(round(length / SEGMENT_LENGTH_M)))
        lane.segment_bounds_s = np.linspace(0.0, length, n_seg + 1)
        lane.segment_ids = list(range(next_id, next_id + n_seg))
        next_id += n_seg
    for lane in net.lanes:
        left_mark, right_mark = _mark_types(lane, net.arms[lane.arm].num_lanes)
        siblings = {} if lane.kind == 'connector' else {
            ln.lane_number: ln
            for ln in net.arm_lanes(lane.arm, lane.kind)
        }
        for k, seg_id in enumerate(lane.segment_ids):
            s0, s1 = lane.segment_bounds_s[k], lane.segment_bounds_s[k + 1]
            center = lane.centerline.slice(s0, s1, spacing_m=2.0)
            left_nb = siblings.get(lane.lane_number - 1)
            right_nb = siblings.get(lane.lane_number + 1)
            net.lane_segments[seg_id] = dict(
                id=seg_id,
                is_intersection=lane.kind == 'connector',
                lane_type='VEHICLE',
                left_boundary=center.offset(LANE_WIDTH_M / 2).xy,
                right_boundary=center.offset(-LANE_WIDTH_M / 2).xy,
                left_lane_mark_type=left_mark,
                right_lane_mark_type=right_mark,
                left_neighbor_id=None if left_nb is None else left_nb.segment_ids[k],
                right_neighbor_id=None if right_nb is None else right_nb.segment_ids[k],
                predecessors=[lane.segment_ids[k - 1]] if k > 0 else [],
                successors=[lane.segment_ids[k + 1]] if k + 1 < len(lane.segment_ids) else [],
                lane_index=lane.index,
            )
    for (lane_in, lane_out), conn in net.connectors.items():
        last_in = net.lanes[lane_in].segment_ids[-1]
        first_out = net.lanes[lane_out].segment_ids[0]
        conn_id = net.lanes[conn].segment_ids[0]
        net.lane_segments[last_in]['successors'].append(conn_id)
        net.lane_segments[conn_id]['predecessors'].append(last_in)
        net.lane_segments[conn_id]['successors'].append(first_out)
        net.lane_segments[first_out]['predecessors'].append(conn_id)


def _add_crossings_and_drivable(net: RoadNetwork) -> None:
    corners = []
    for arm in net.arms:
        hw = arm.half_width_m
        normals = arm.centerline.vertex_normals()
        line = arm.centerline
        edges = []
        for s in (net.core_radius_m, net.core_radius_m + CROSSWALK_WIDTH_M):
            c, yaw = line.point_and_heading(s)
            n = np.array([-np.sin(yaw), np.cos(yaw)])
            edges.append(np.stack([c - hw * n, c + hw * n]))
        net.crossings.append((edges[0], edges[1]))
        # Arm strip from just inside the intersection box to the arm's end.
        s_start = net.core_radius_m - 0.5
        keep = line.cum_s > s_start
        c0, yaw0 = line.point_and_heading(s_start)
        n0 = np.array([-np.sin(yaw0), np.cos(yaw0)])
        left = np.concatenate([[c0 + hw * n0], line.xy[keep] + hw * normals[keep]])
        right = np.concatenate([[c0 - hw * n0], line.xy[keep] - hw * normals[keep]])
        net.drivable_polygons.append(np.concatenate([right, left[::-1]], axis=0))
        c, yaw = line.point_and_heading(net.core_radius_m)
        n = np.array([-np.sin(yaw), np.cos(yaw)])
        corners.extend([c - hw * n, c + hw * n])
    net.drivable_polygons.insert(0, np.array(corners))
