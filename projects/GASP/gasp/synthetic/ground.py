"""The ground: gently rolling terrain, roads at terrain height, raised kerbs and sidewalks.

The surface is *defined* as the bilinear interpolation of a height raster (nodes every
``RES_M``), so ray casting, the ground-truth checks and the AV2 ground-height map all evaluate the
same function. A material raster (nearest node) gives paint, asphalt, sidewalk and grass.
"""
from dataclasses import dataclass
from enum import IntEnum

import cv2
import numpy as np
import torch

from .road_network import SIDEWALK_WIDTH_M, RoadNetwork

RES_M = 0.1
KERB_HEIGHT_M = 0.15
#: AV2 stores the ground-height raster at 30 cm (Sim(2) scale 1 / 0.3).
AV2_GROUND_RES_M = 0.3


class GroundMaterial(IntEnum):
    """Material of a ground raster node."""

    ASPHALT = 0
    PAINT_WHITE = 1
    PAINT_YELLOW = 2
    CROSSWALK = 3
    SIDEWALK = 4
    GRASS = 5


@dataclass
class GroundSurface:
    """Height and material rasters over the world.

    Args:
        origin_xy: (2,) world position of node (row 0, col 0), metres.
        height: (H, W) float32 surface height at the nodes, world frame.
        material: (H, W) uint8 :class:`GroundMaterial` per node.
    """

    origin_xy: np.ndarray
    height: np.ndarray
    material: np.ndarray

    @property
    def z_range(self):
        """(min, max) surface height, world frame."""
        return float(self.height.min()), float(self.height.max())

    def height_at(self, xy: np.ndarray) -> np.ndarray:
        """Surface height (float64) at (N, 2) world positions (bilinear; clamped at the edges)."""
        return height_at_torch(
            torch.from_numpy(self.height), self.origin_xy,
            torch.from_numpy(np.asarray(xy, np.float64))).numpy()

    def material_at(self, xy: np.ndarray) -> np.ndarray:
        """:class:`GroundMaterial` of the nearest node for (N, 2) world positions."""
        return material_at_torch(
            torch.from_numpy(self.material), self.origin_xy,
            torch.from_numpy(np.asarray(xy, np.float64))).numpy()


def _grid_uv(origin_xy, xy: torch.Tensor, shape):
    u = (xy[..., 0] - float(origin_xy[0])) / RES_M
    v = (xy[..., 1] - float(origin_xy[1])) / RES_M
    return u.clamp(0.0, shape[1] - 1.0), v.clamp(0.0, shape[0] - 1.0)


def height_at_torch(height: torch.Tensor, origin_xy, xy: torch.Tensor) -> torch.Tensor:
    """Bilinear surface height.

    Args:
        height: (H, W) node heights (any float dtype, any device).
        origin_xy: (2,) world position of node (0, 0).
        xy: (..., 2) world positions.

    Returns:
        (...,) heights in ``xy``'s dtype.
    """
    u, v = _grid_uv(origin_xy, xy, height.shape)
    w = height.shape[1]
    j0 = torch.clamp(u.long(), max=w - 2)
    i0 = torch.clamp(v.long(), max=height.shape[0] - 2)
    fu = (u - j0).to(height.dtype)
    fv = (v - i0).to(height.dtype)
    flat = height.reshape(-1)
    idx = i0 * w + j0
    h0 = torch.lerp(flat[idx], flat[idx + 1], fu)
    h1 = torch.lerp(flat[idx + w], flat[idx + w + 1], fu)
    return torch.lerp(h0, h1, fv).to(xy.dtype)


def material_at_torch(material: torch.Tensor, origin_xy, xy: torch.Tensor) -> torch.Tensor:
    """Nearest-node material for (..., 2) world positions -> (...,) uint8."""
    u, v = _grid_uv(origin_xy, xy, material.shape)
    return material[torch.round(v).long(), torch.round(u).long()]


def _terrain(rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Sum of three long-wavelength sinusoids (slopes below ~7 %), separable evaluation."""
    out = np.zeros((ys.size, xs.size), np.float32)
    for amp, wavelength in ((0.35, 190.0), (0.5, 120.0), (0.2, 70.0)):
        theta = rng.uniform(0, 2 * np.pi)
        k = 2 * np.pi / wavelength
        a, b, phase = k * np.cos(theta), k * np.sin(theta), rng.uniform(0, 2 * np.pi)
        sx, cx = np.sin(a * xs + phase), np.cos(a * xs + phase)
        sy, cy = np.sin(b * ys), np.cos(b * ys)
        # sin(ax + phase + by) = sin(ax + phase) cos(by) + cos(ax + phase) sin(by)
        out += (amp * (np.outer(cy, sx) + np.outer(sy, cx))).astype(np.float32)
    return out


def _to_px(origin_xy, xy: np.ndarray, shift: int = 4) -> np.ndarray:
    px = (np.asarray(xy) - origin_xy) / RES_M
    return np.round(px * (1 << shift)).astype(np.int32)


def _dashes(line: np.ndarray, on_m: float = 3.0, off_m: float = 6.0):
    seg = np.linalg.norm(np.diff(line, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    pieces = []
    for s0 in np.arange(0.0, cum[-1], on_m + off_m):
        s = np.linspace(s0, min(s0 + on_m, cum[-1]), 4)
        pieces.append(np.stack([np.interp(s, cum, line[:, 0]), np.interp(s, cum, line[:, 1])], 1))
    return pieces


def build_ground(net: RoadNetwork, rng: np.random.Generator, half_extent_m: float) -> GroundSurface:
    """Rasterise roads, paint, kerbs and sidewalks over procedural terrain.

    Args:
        net: the road network (drivable polygons, lane segments, crosswalks).
        rng: the log's random generator.
        half_extent_m: the rasters cover [-half_extent_m - 20, half_extent_m + 20]^2.

    Returns:
        The ground surface.
    """
    ext = half_extent_m + 20.0
    n = int(round(2 * ext / RES_M)) + 1
    origin = np.array([-ext, -ext])
    coords = origin[0] + RES_M * np.arange(n)
    shift = 4
    drivable = np.zeros((n, n), np.uint8)
    cv2.fillPoly(
        drivable, [_to_px(origin, p, shift) for p in net.drivable_polygons],
        1,
        lineType=cv2.LINE_8,
        shift=shift)
    dist_m = cv2.distanceTransform(1 - drivable, cv2.DIST_L2, 5) * RES_M
    material = np.where(dist_m <= SIDEWALK_WIDTH_M, GroundMaterial.SIDEWALK,
                        GroundMaterial.GRASS).astype(np.uint8)
    material[drivable == 1] = GroundMaterial.ASPHALT
    paint = np.zeros_like(material)
    for seg in net.lane_segments.values():
        if seg['is_intersection']:
            continue
        for side in ('left', 'right'):
            mark, line = seg[f'{side}_lane_mark_type'], seg[f'{side}_boundary']
            if mark == 'DOUBLE_SOLID_YELLOW':
                nrm = _normals(line)
                lines = [line + 0.12 * nrm, line - 0.12 * nrm]
                value = GroundMaterial.PAINT_YELLOW
            elif mark == 'DASHED_WHITE':
                lines, value = _dashes(line), GroundMaterial.PAINT_WHITE
            else:
                lines, value = [line], GroundMaterial.PAINT_WHITE
            cv2.polylines(
                paint, [_to_px(origin, ln, shift) for ln in lines],
                False,
                int(value),
                thickness=2,
                lineType=cv2.LINE_8,
                shift=shift)
    for edge1, edge2 in net.crossings:
        across = edge1[1] - edge1[0]
        width = np.linalg.norm(across)
        for a in np.arange(0.5, width - 0.5, 1.2):
            u0, u1 = a / width, (a + 0.6) / width
            quad = np.stack([
                edge1[0] + u0 * across, edge1[0] + u1 * across, edge2[0] + u1 * across,
                edge2[0] + u0 * across
            ])
            cv2.fillPoly(
                paint, [_to_px(origin, quad, shift)],
                int(GroundMaterial.CROSSWALK),
                lineType=cv2.LINE_8,
                shift=shift)
    painted = (paint > 0) & (drivable == 1)
    material[painted] = paint[painted]
    height = _terrain(rng, coords, coords) + KERB_HEIGHT_M * (1 - drivable).astype(np.float32)
    return GroundSurface(origin_xy=origin, height=height.astype(np.float32), material=material)


def _normals(line: np.ndarray) -> np.ndarray:
    d = np.gradient(line, axis=0)
    d /= np.linalg.norm(d, axis=1, keepdims=True) + 1e-12
    return np.stack([-d[:, 1], d[:, 0]], 1)
