"""The BEV label grid of the downstream tasks and exact rasterization onto it.

A cell is set when its **centre** lies inside the shape (polygons, boxes) or within half the
line width of a polyline, so a shape of known geometry always gives the same cells. Rows run
along y, columns along x, as in the BEV feature map: cell (row i, column j) has its centre at
``(x_min + (j + 0.5) * cell_size, y_min + (i + 0.5) * cell_size)``.
"""
from dataclasses import dataclass
from typing import Sequence, Tuple

import numpy as np


@dataclass(frozen=True)
class BEVGrid:
    """A square-celled BEV raster over ``range_xy = (x_min, y_min, x_max, y_max)`` (m).

    Args:
        range_xy: region covered, reference frame (m).
        cell_size: side of a cell (m); must divide both extents.
    """
    range_xy: Tuple[float, float, float, float]
    cell_size: float

    def __post_init__(self):
        x_min, y_min, x_max, y_max = self.range_xy
        for extent in (x_max - x_min, y_max - y_min):
            cells = extent / self.cell_size
            if extent <= 0 or abs(cells - round(cells)) > 1e-6:
                raise ValueError(f'BEVGrid: cell_size {self.cell_size} m must divide the extents '
                                 f'of range_xy {tuple(self.range_xy)}')

    @classmethod
    def from_range(cls, point_cloud_range: Sequence[float], cell_size: float) -> 'BEVGrid':
        """Grid over the (x, y) part of a 4- or 6-value range."""
        r = [float(v) for v in point_cloud_range]
        xy = (r[0], r[1], r[2], r[3]) if len(r) == 4 else (r[0], r[1], r[3], r[4])
        return cls(xy, float(cell_size))

    @property
    def shape(self) -> Tuple[int, int]:
        """(H, W) = (cells along y, cells along x)."""
        x_min, y_min, x_max, y_max = self.range_xy
        return (int(round(
            (y_max - y_min) / self.cell_size)), int(round((x_max - x_min) / self.cell_size)))

    def centres_x(self) -> np.ndarray:
        return self.range_xy[0] + (np.arange(self.shape[1]) + 0.5) * self.cell_size

    def centres_y(self) -> np.ndarray:
        return self.range_xy[1] + (np.arange(self.shape[0]) + 0.5) * self.cell_size

    def _window(self, lo_xy: np.ndarray, hi_xy: np.ndarray):
        """Row and column index ranges of the cells whose centres may lie in a bounding box."""
        x_min, y_min = self.range_xy[:2]
        height, width = self.shape
        j0 = max(int(np.floor((lo_xy[0] - x_min) / self.cell_size - 0.5)), 0)
        j1 = min(int(np.ceil((hi_xy[0] - x_min) / self.cell_size - 0.5)) + 1, width)
        i0 = max(int(np.floor((lo_xy[1] - y_min) / self.cell_size - 0.5)), 0)
        i1 = min(int(np.ceil((hi_xy[1] - y_min) / self.cell_size - 0.5)) + 1, height)
        return i0, i1, j0, j1

    def _window_centres(self, i0, i1, j0, j1) -> np.ndarray:
        gx, gy = np.meshgrid(self.centres_x()[j0:j1], self.centres_y()[i0:i1])
        return np.stack([gx, gy], axis=-1)  # (h, w, 2)


def points_in_polygon(points_xy: np.ndarray, polygon_xy: np.ndarray) -> np.ndarray:
    """(N,) mask of points inside a simple polygon (even-odd rule; the closing edge implied).

    Args:
        points_xy: (N, 2) points.
        polygon_xy: (V, 2) vertices, open or closed (first vertex repeated).
    """
    poly = np.asarray(polygon_xy, dtype=np.float64)
    a, b = poly, np.roll(poly, -1, axis=0)
    px, py = points_xy[:, 0:1], points_xy[:, 1:2]  # (N, 1) against (V,) edges
    straddles = (a[:, 1] > py) != (b[:, 1] > py)
    with np.errstate(divide='ignore', invalid='ignore'):
        x_cross = a[:, 0] + (py - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
    return (straddles & (px < x_cross)).sum(axis=1) % 2 == 1


def rasterize_polygon(grid: BEVGrid, polygon_xy: np.ndarray, out: np.ndarray = None) -> np.ndarray:
    """Set the cells of ``out`` (H, W) bool whose centres lie inside the polygon."""
    out = np.zeros(grid.shape, dtype=bool) if out is None else out
    poly = np.asarray(polygon_xy, dtype=np.float64)[:, :2]
    i0, i1, j0, j1 = grid._window(poly.min(0), poly.max(0))
    if i0 >= i1 or j0 >= j1:
        return out
    centres = grid._window_centres(i0, i1, j0, j1)
    inside = points_in_polygon(centres.reshape(-1, 2), poly).reshape(i1 - i0, j1 - j0)
    out[i0:i1, j0:j1] |= inside
    return out


def distance_to_polyline(points_xy: np.ndarray, polyline_xy: np.ndarray) -> np.ndarray:
    """(N,) Euclidean distance of each point to a polyline of (V >= 2, 2) vertices."""
    a, b = polyline_xy[:-1], polyline_xy[1:]  # (S, 2)
    ab = b - a
    length2 = np.maximum((ab**2).sum(1), 1e-12)
    t = np.clip(((points_xy[:, None] - a[None]) * ab[None]).sum(-1) / length2, 0.0, 1.0)
    closest = a[None] + t[..., None] * ab[None]  # (N, S, 2)
    return np.sqrt(((points_xy[:, None] - closest)**2).sum(-1)).min(axis=1)


def rasterize_polyline(grid: BEVGrid,
                       polyline_xy: np.ndarray,
                       width: float,
                       out: np.ndarray = None) -> np.ndarray:
    """Set the cells whose centres lie within ``width / 2`` of the polyline."""
    out = np.zeros(grid.shape, dtype=bool) if out is None else out
    line = np.asarray(polyline_xy, dtype=np.float64)[:, :2]
    if len(line) < 2:
        return out
    half = width / 2.0
    i0, i1, j0, j1 = grid._window(line.min(0) - half, line.max(0) + half)
    if i0 >= i1 or j0 >= j1:
        return out
    centres = grid._window_centres(i0, i1, j0, j1).reshape(-1, 2)
    near = distance_to_polyline(centres, line) <= half
    out[i0:i1, j0:j1] |= near.reshape(i1 - i0, j1 - j0)
    return out


def box_corners_xy(centre_xy: np.ndarray, yaw: float, length: float, width: float) -> np.ndarray:
    """(4, 2) corners of a rotated rectangle (length along its heading ``yaw``)."""
    c, s = np.cos(yaw), np.sin(yaw)
    local = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]]) * [length / 2.0, width / 2.0]
    return centre_xy + local @ np.array([[c, s], [-s, c]])


def rasterize_boxes(grid: BEVGrid,
                    centres_xy: np.ndarray,
                    yaws: np.ndarray,
                    lengths: np.ndarray,
                    widths: np.ndarray,
                    out: np.ndarray = None) -> np.ndarray:
    """Set the cells whose centres lie inside any of the rotated rectangles (boundary included).

    Args:
        centres_xy: (N, 2) box centres; yaws, lengths, widths: (N,) headings (rad) and sizes (m).
    """
    out = np.zeros(grid.shape, dtype=bool) if out is None else out
    for centre, yaw, length, width in zip(centres_xy, yaws, lengths, widths):
        corners = box_corners_xy(
            np.asarray(centre, np.float64), float(yaw), float(length), float(width))
        i0, i1, j0, j1 = grid._window(corners.min(0), corners.max(0))
        if i0 >= i1 or j0 >= j1:
            continue
        local = grid._window_centres(i0, i1, j0, j1) - centre
        c, s = np.cos(yaw), np.sin(yaw)
        along = local[..., 0] * c + local[..., 1] * s
        across = -local[..., 0] * s + local[..., 1] * c
        eps = 1e-9
        out[i0:i1, j0:j1] |= ((np.abs(along) <= length / 2.0 + eps) &
                              (np.abs(across) <= width / 2.0 + eps))
    return out


def points_in_cuboids(points: np.ndarray,
                      ref_from_object: np.ndarray,
                      size_lwh: np.ndarray,
                      margin: float = 0.0) -> np.ndarray:
    """Index of the first cuboid that contains each point, -1 for none.

    Args:
        points: (N, 3) points, reference frame.
        ref_from_object: (M, 4, 4) cuboid poses (centre and axes), reference frame.
        size_lwh: (M, 3) length, width, height (m).
        margin: grow every cuboid by this much on each side (m).

    Returns:
        (N,) int64.
    """
    owner = np.full(len(points), -1, dtype=np.int64)
    for m in range(len(ref_from_object)):
        free = np.flatnonzero(owner < 0)
        if len(free) == 0:
            break
        local = (points[free] - ref_from_object[m, :3, 3]) @ ref_from_object[m, :3, :3]
        inside = np.all(np.abs(local) <= size_lwh[m] / 2.0 + margin, axis=1)
        owner[free[inside]] = m
    return owner
