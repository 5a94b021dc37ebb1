"""Static scenery: buildings, walls, street lights, signs, bollards and trees along the arms."""
import numpy as np

from .ground import GroundMaterial, GroundSurface
from .object_catalog import make_shape
from .road_network import SIDEWALK_WIDTH_M, RoadNetwork
from .traffic import Population


def _static_states(xy, yaw, ground: GroundSurface, num: int) -> np.ndarray:
    z = float(ground.height_at(np.asarray(xy, np.float64)[None])[0])
    return np.tile(np.array([xy[0], xy[1], z, yaw]), (num, 1))


def _footprint_ok(ground: GroundSurface, xy, yaw, length, width, allowed) -> bool:
    """All of a rotated rectangle's sample points lie on ``allowed`` ground materials."""
    u = np.linspace(-0.5, 0.5, 5)
    gx, gy = np.meshgrid(u * length, u * width)
    c, s = np.cos(yaw), np.sin(yaw)
    pts = np.stack([xy[0] + c * gx - s * gy, xy[1] + s * gx + c * gy], -1).reshape(-1, 2)
    return bool(np.isin(ground.material_at(pts), allowed).all())


class _Occupancy:
    """Circles already taken by static objects (keeps scenery from overlapping)."""

    def __init__(self):
        self.circles = []

    def take(self, xy, radius) -> bool:
        for cxy, r in self.circles:
            if np.hypot(xy[0] - cxy[0], xy[1] - cxy[1]) < r + radius:
                return False
        self.circles.append((np.asarray(xy, np.float64), radius))
        return True


def populate_scenery(pop: Population, net: RoadNetwork, ground: GroundSurface,
                     rng: np.random.Generator, num_samples: int, preset) -> None:
    """Add static scenery to ``pop``.

    Args:
        pop: population to extend.
        net: road network.
        ground: ground surface (placement checks and heights).
        rng: the log's random generator.
        num_samples: K, length of the trajectory time grid.
        preset: :class:`gasp.synthetic.presets.SyntheticPreset` (counts).
    """
    occ = _Occupancy()
    grass = [GroundMaterial.GRASS]
    offroad = [GroundMaterial.GRASS, GroundMaterial.SIDEWALK]

    def along(arm, lateral, s):
        line = arm.centerline
        c, yaw = line.point_and_heading(s)
        n = np.array([-np.sin(yaw), np.cos(yaw)])
        return c + lateral * n, float(yaw)

    # Buildings set back behind the sidewalk, walls along the sidewalk's back edge.
    placed, tries = 0, 0
    while placed < preset.num_buildings and tries < preset.num_buildings * 8:
        tries += 1
        arm = net.arms[int(rng.integers(0, 4))]
        side = rng.choice([-1.0, 1.0])
        length, depth, height = rng.uniform(10, 30), rng.uniform(8, 16), rng.uniform(5, 22)
        lateral = side * (arm.half_width_m + SIDEWALK_WIDTH_M + rng.uniform(2.0, 8.0) + depth / 2)
        xy, yaw = along(arm, lateral, rng.uniform(net.core_radius_m, arm.centerline.length))
        if not _footprint_ok(ground, xy, yaw, length + 2, depth + 2, grass):
            continue
        if not occ.take(xy, 0.5 * np.hypot(length, depth)):
            continue
        shape = make_shape('building', rng, length=length, width=depth, height=height)
        pop.add(shape, _static_states(xy, yaw, ground, num_samples), False)
        placed += 1
    for _ in range(max(1, preset.num_buildings // 3)):
        arm = net.arms[int(rng.integers(0, 4))]
        side = rng.choice([-1.0, 1.0])
        length = rng.uniform(8, 20)
        xy, yaw = along(arm, side * (arm.half_width_m + SIDEWALK_WIDTH_M + 0.4),
                        rng.uniform(net.stop_radius_m + 5, arm.centerline.length))
        if _footprint_ok(ground, xy, yaw, length, 0.3, offroad) and occ.take(xy, length / 2):
            shape = make_shape('wall', rng, length=length, width=0.3, height=rng.uniform(1.2, 2.6))
            pop.add(shape, _static_states(xy, yaw, ground, num_samples), False)
    # Street furniture.
    budget = preset.num_street_furniture
    for arm in net.arms:
        if net.is_green(arm.index):
            continue
        hw = arm.half_width_m
        # Bollards at the crosswalk corners and a stop sign at the stop line of red arms.
        for side in (-1.0, 1.0):
            for k in range(2):
                xy, yaw = along(arm, side * (hw + 0.5), net.core_radius_m + 0.8 + 2.4 * k)
                if occ.take(xy, 0.2):
                    pop.add(
                        make_shape('bollard', rng), _static_states(xy, yaw, ground, num_samples),
                        False)
        xy, yaw = along(arm, hw + 0.7, net.stop_radius_m + 0.5)
        if occ.take(xy, 0.3):
            pop.add(make_shape('pole', rng), _static_states(xy, yaw, ground, num_samples), False)
            sign = make_shape('stop_sign', rng)
            pop.add(
                sign,
                _static_states(xy + 0.2 * np.array([np.cos(yaw), np.sin(yaw)]), yaw, ground,
                               num_samples), False)
    tries = 0
    while budget > 0 and tries < 10 * preset.num_street_furniture:
        tries += 1
        arm = net.arms[int(rng.integers(0, 4))]
        side = rng.choice([-1.0, 1.0])
        kind = str(rng.choice(['pole', 'sign', 'tree', 'bollard'], p=[0.35, 0.2, 0.35, 0.1]))
        lateral = {
            'pole': 0.6,
            'sign': 0.8,
            'bollard': 0.4,
            'tree': SIDEWALK_WIDTH_M + rng.uniform(1.5, 4.0)
        }[kind]
        xy, yaw = along(arm, side * (arm.half_width_m + lateral),
                        rng.uniform(net.stop_radius_m + 3, arm.centerline.length - 5))
        allowed = grass if kind == 'tree' else offroad
        radius = 2.0 if kind == 'tree' else 0.4
        if not _footprint_ok(ground, xy, yaw, 0.5, 0.5, allowed) or not occ.take(xy, radius):
            continue
        if kind == 'sign':
            pop.add(make_shape('pole', rng), _static_states(xy, yaw, ground, num_samples), False)
            xy = xy + 0.2 * np.array([np.cos(yaw), np.sin(yaw)])
            yaw = yaw + np.pi if side > 0 else yaw
        pop.add(make_shape(kind, rng), _static_states(xy, yaw, ground, num_samples), False)
        budget -= 1
