"""How surfaces look: camera colour with class-specific textures, and lidar intensity.

Each object class has its own base colour and texture (window bands on vehicles, window grids on
buildings, stripes on bollards and cones, ...), so image features carry the class.
"""
import torch

from .ground import GroundMaterial
from .object_catalog import ObjectMaterial

M = ObjectMaterial
G = GroundMaterial

#: RGB in [0, 1] per object material.
OBJECT_RGB = {
    M.CAR_BODY: (0.75, 0.12, 0.10),
    M.SUV_BODY: (0.12, 0.25, 0.70),
    M.TRUCK_BODY: (0.92, 0.90, 0.82),
    M.BUS_BODY: (0.95, 0.75, 0.10),
    M.GLASS: (0.10, 0.14, 0.20),
    M.SHIRT: (0.70, 0.20, 0.70),
    M.TROUSERS: (0.15, 0.15, 0.30),
    M.SKIN: (0.85, 0.65, 0.50),
    M.BIKE_FRAME: (0.05, 0.05, 0.05),
    M.RIDER: (0.95, 0.50, 0.05),
    M.BUILDING: (0.80, 0.72, 0.58),
    M.WALL: (0.60, 0.30, 0.22),
    M.POLE: (0.40, 0.42, 0.45),
    M.BOLLARD: (0.95, 0.85, 0.10),
    M.CONE: (1.00, 0.45, 0.05),
    M.SIGN: (0.10, 0.35, 0.80),
    M.STOP_SIGN: (0.85, 0.05, 0.05),
    M.TRUNK: (0.40, 0.26, 0.13),
    M.FOLIAGE: (0.15, 0.50, 0.15),
    M.BARREL: (0.95, 0.40, 0.05),
    M.EGO_BODY: (0.3, 0.3, 0.3),
}
#: Lidar reflectivity (0-255 scale before the incidence factor) per object material.
OBJECT_INTENSITY = {
    M.CAR_BODY: 22,
    M.SUV_BODY: 20,
    M.TRUCK_BODY: 35,
    M.BUS_BODY: 40,
    M.GLASS: 6,
    M.SHIRT: 12,
    M.TROUSERS: 8,
    M.SKIN: 10,
    M.BIKE_FRAME: 30,
    M.RIDER: 14,
    M.BUILDING: 30,
    M.WALL: 25,
    M.POLE: 45,
    M.BOLLARD: 120,
    M.CONE: 160,
    M.SIGN: 230,
    M.STOP_SIGN: 230,
    M.TRUNK: 12,
    M.FOLIAGE: 9,
    M.BARREL: 150,
    M.EGO_BODY: 5,
}
GROUND_RGB = {
    G.ASPHALT: (0.30, 0.30, 0.32),
    G.PAINT_WHITE: (0.92, 0.92, 0.90),
    G.PAINT_YELLOW: (0.90, 0.78, 0.15),
    G.CROSSWALK: (0.95, 0.95, 0.95),
    G.SIDEWALK: (0.62, 0.60, 0.58),
    G.GRASS: (0.25, 0.45, 0.18),
}
GROUND_INTENSITY = {
    G.ASPHALT: 10,
    G.PAINT_WHITE: 90,
    G.PAINT_YELLOW: 80,
    G.CROSSWALK: 95,
    G.SIDEWALK: 28,
    G.GRASS: 7
}
SKY_TOP = (0.35, 0.55, 0.85)
SKY_HORIZON = (0.80, 0.87, 0.95)
SUN_DIR = (0.35, 0.25, 0.90)


def _table(mapping, device, dtype=torch.float32):
    size = max(int(k) for k in mapping) + 1
    out = torch.zeros(
        (size, ) + ((3, ) if isinstance(next(iter(mapping.values())), tuple) else ()),
        device=device,
        dtype=dtype)
    for k, v in mapping.items():
        out[int(k)] = torch.tensor(v, device=device, dtype=dtype)
    return out


def _hash_noise(p: torch.Tensor, scale: float) -> torch.Tensor:
    """Deterministic value noise in [0, 1) from positions (M, 3) on a ``scale``-metre lattice."""
    q = torch.floor(p / scale).to(torch.int64)
    h = (q[:, 0] * 73856093) ^ (q[:, 1] * 19349663) ^ (q[:, 2] * 83492791)
    return ((h % 1000).abs().to(p.dtype)) / 1000.0


def object_texture(material: torch.Tensor, local: torch.Tensor, half: torch.Tensor,
                   tint: torch.Tensor) -> torch.Tensor:
    """Colour (M, 3) of object hits from material, hit point in the box frame and box size."""
    rgb = _table(OBJECT_RGB, local.device, local.dtype)[material] * tint
    z_rel = (local[:, 2] + half[:, 2]) / (2 * half[:, 2])
    on_side = (local[:, 2] < half[:, 2] - 1e-3)
    along = torch.where(local[:, 0].abs() > half[:, 0] - 1e-3, local[:, 1], local[:, 0])
    dark = torch.tensor([0.12, 0.15, 0.22], device=local.device, dtype=local.dtype)
    # Buildings: window grid; bus: window band; stripes on bollards, cones and barrels.
    win_b = ((material == M.BUILDING) & on_side & (torch.remainder(along, 3.0) > 1.2)
             & (torch.remainder(local[:, 2] + half[:, 2], 3.2) > 1.1) & (z_rel > 0.08))
    win_bus = (material == M.BUS_BODY) & on_side & (z_rel > 0.55) & (z_rel < 0.85)
    stripes = ((material == M.BOLLARD) | (material == M.CONE) | (material == M.BARREL)) & (
        torch.remainder(local[:, 2] + half[:, 2], 0.3) < 0.12)
    brick = (material == M.WALL) & (torch.remainder(local[:, 2] + half[:, 2], 0.25) < 0.03)
    rgb = torch.where((win_b | win_bus)[:, None], dark, rgb)
    rgb = torch.where(
        stripes[:, None],
        torch.where(material[:, None] == M.BOLLARD, torch.zeros_like(rgb),
                    torch.ones_like(rgb) * 0.95), rgb)
    rgb = torch.where(brick[:, None], rgb * 0.6 + 0.3, rgb)
    leaf = (material == M.FOLIAGE)[:, None]
    rgb = torch.where(leaf, rgb * (0.7 + 0.6 * _hash_noise(local, 0.4))[:, None], rgb)
    return rgb


def ground_texture(material: torch.Tensor, p_world: torch.Tensor) -> torch.Tensor:
    """Colour (M, 3) of ground hits from the ground material and world position."""
    rgb = _table(GROUND_RGB, p_world.device, p_world.dtype)[material.long()]
    noise = 0.85 + 0.3 * _hash_noise(
        p_world * torch.tensor([1.0, 1.0, 0.0], device=p_world.device, dtype=p_world.dtype), 0.25)
    grass = material == G.GRASS
    noise = torch.where(grass, 0.7 + 0.6 * _hash_noise(p_world, 0.15), noise)
    return rgb * noise[:, None]


def shade(rgb: torch.Tensor, normal: torch.Tensor) -> torch.Tensor:
    """Lambert shading with ambient light; returns (M, 3) in [0, 1]."""
    sun = torch.tensor(SUN_DIR, device=rgb.device, dtype=rgb.dtype)
    sun = sun / sun.norm()
    lambert = (normal * sun).sum(1).clamp(min=0.0)
    return (rgb * (0.45 + 0.6 * lambert)[:, None]).clamp(0.0, 1.0)


def sky(dirs: torch.Tensor) -> torch.Tensor:
    """Sky colour (M, 3) for ray directions (M, 3) that hit nothing."""
    top = torch.tensor(SKY_TOP, device=dirs.device, dtype=dirs.dtype)
    hor = torch.tensor(SKY_HORIZON, device=dirs.device, dtype=dirs.dtype)
    w = dirs[:, 2].clamp(0.0, 1.0).sqrt()[:, None]
    return hor * (1 - w) + top * w


def lidar_intensity(is_ground: torch.Tensor, material: torch.Tensor, cos_incidence: torch.Tensor,
                    range_m: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """uint8 intensity from material reflectivity, incidence angle and range.

    Args:
        is_ground: (M,) whether the hit is ground (``material`` is a GroundMaterial) or a box.
        material: (M,) material code.
        cos_incidence: (M,) |cos| of the angle between ray and normal.
        range_m: (M,) range.
        noise: (M,) values in [0, 1) for a small deterministic variation.
    """
    dev = material.device
    g = _table(GROUND_INTENSITY, dev)
    o = _table(OBJECT_INTENSITY, dev)
    base = torch.where(is_ground, g[material.clamp(max=g.numel() - 1)],
                       o[material.clamp(max=o.numel() - 1)])
    value = base * (0.35 + 0.65 * cos_incidence) * (1.0 + 0.25 * (noise - 0.5))
    value = value * (1.0 - 0.2 * (range_m / 200.0).clamp(0, 1))
    return value.round().clamp(0, 255).to(torch.uint8)
