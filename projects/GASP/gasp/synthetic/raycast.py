"""Vectorised ray casting against the ground surface and moving boxes (torch, CPU or CUDA).

Rays carry their own time, so a lidar return is cast against the world exactly as it was when
that beam fired. Boxes are tested only for candidate (ray, box) pairs supplied by a culling step
(azimuth windows for lidar, screen rectangles for cameras), which keeps the work close to linear
in the number of rays.
"""
from dataclasses import dataclass
from typing import Optional

import torch

from .ground import height_at_torch

NO_HIT = -1
GROUND_ID = 0
EGO_ID = 1
FIRST_OBJECT_ID = 2


@dataclass
class SceneTensors:
    """The parts of a scene the ray caster needs, as tensors on one device.

    Args:
        height: (H, W) ground node heights, world frame.
        material: (H, W) ground materials.
        ground_origin_xy: (2,) world position of ground node (0, 0) (python floats).
        z_range: (min, max) ground height.
        prim_obj: (P,) object index of every box.
        prim_center: (P, 3) box centres in their object's frame.
        prim_half: (P, 3) box half sizes.
        prim_material: (P,) box materials.
        obj_states: (O, K, 4) object states (x, y, z, yaw), world frame, on the time grid.
        traj_t0_s, traj_dt_s: the time grid.
        obj_tint: (O, 3) per-object colour multiplier.
    """

    height: torch.Tensor
    material: torch.Tensor
    ground_origin_xy: tuple
    z_range: tuple
    prim_obj: torch.Tensor
    prim_center: torch.Tensor
    prim_half: torch.Tensor
    prim_material: torch.Tensor
    obj_states: torch.Tensor
    traj_t0_s: float
    traj_dt_s: float
    obj_tint: Optional[torch.Tensor] = None

    def object_states(self, obj: torch.Tensor, t_s: torch.Tensor) -> torch.Tensor:
        """States (x, y, z, yaw) of objects ``obj`` (M,) at times ``t_s`` (M,) -> (M, 4)."""
        k = self.obj_states.shape[1]
        u = ((t_s.double() - self.traj_t0_s) / self.traj_dt_s).clamp(0.0, k - 1.0)
        i0 = torch.clamp(torch.floor(u).long(), max=k - 2)
        w = (u - i0.double()).to(self.obj_states.dtype).unsqueeze(-1)
        return self.obj_states[obj, i0] * (1.0 - w) + self.obj_states[obj, i0 + 1] * w

    def prim_world_centers(self, t_s: float) -> torch.Tensor:
        """(P, 3) box centres in the world frame at one time (for culling)."""
        obj = self.prim_obj
        st = self.object_states(obj, torch.full_like(obj, 0, dtype=torch.float64) + t_s)
        return box_world_center(st, self.prim_center)


@dataclass
class RayHits:
    """Nearest hit of every ray.

    Args:
        t: (N,) distance along the unit ray (``inf`` where nothing was hit).
        object_id: (N,) ``NO_HIT``, ``GROUND_ID``, ``EGO_ID`` or ``FIRST_OBJECT_ID + object``.
        prim: (N,) box index of box hits, else -1.
        normal: (N, 3) surface normal at the hit, world frame (zeros where no hit).
        local: (N, 3) hit point in the hit box's frame (box centre at 0; zeros otherwise).
    """

    t: torch.Tensor
    object_id: torch.Tensor
    prim: torch.Tensor
    normal: torch.Tensor
    local: torch.Tensor


def box_world_center(states: torch.Tensor, center_local: torch.Tensor) -> torch.Tensor:
    """World centres (M, 3) of boxes with object ``states`` (M, 4) and local centres (M, 3)."""
    c, s = torch.cos(states[:, 3]), torch.sin(states[:, 3])
    x = states[:, 0] + c * center_local[:, 0] - s * center_local[:, 1]
    y = states[:, 1] + s * center_local[:, 0] + c * center_local[:, 1]
    return torch.stack([x, y, states[:, 2] + center_local[:, 2]], 1)


def slab_intersect(origin_local: torch.Tensor, dir_local: torch.Tensor, half: torch.Tensor):
    """Ray / axis-aligned box intersection (boxes centred at the origin).

    Args:
        origin_local, dir_local: (M, 3) rays in the box frame.
        half: (M, 3) box half sizes.

    Returns:
        t_near: (M,) entry distance (``inf`` if missed or the origin is inside the box).
        axis: (M,) axis of the entry face.
    """
    safe = torch.where(dir_local.abs() < 1e-12, torch.full_like(dir_local, 1e-12), dir_local)
    inv = 1.0 / safe
    t1 = (-half - origin_local) * inv
    t2 = (half - origin_local) * inv
    t_lo, axis = torch.minimum(t1, t2).max(dim=1)
    t_hi = torch.maximum(t1, t2).min(dim=1).values
    hit = (t_lo <= t_hi) & (t_lo > 1e-4)
    return torch.where(hit, t_lo, torch.full_like(t_lo, float('inf'))), axis


def intersect_boxes(scene: SceneTensors, origins: torch.Tensor, dirs: torch.Tensor,
                    times_s: torch.Tensor, ray_idx: torch.Tensor, prim_idx: torch.Tensor):
    """Intersect candidate (ray, box) pairs and keep each ray's nearest box.

    Args:
        scene: scene tensors.
        origins, dirs: (N, 3) rays, world frame (``dirs`` unit).
        times_s: (N,) ray times in seconds since log start.
        ray_idx, prim_idx: (M,) candidate pairs.

    Returns:
        t: (N,) nearest box distance (``inf`` if none); prim: (N,) its box (-1 if none);
        normal: (N, 3) world normal; local: (N, 3) hit point in the box frame.
    """
    n = origins.shape[0]
    dev, dt = origins.device, origins.dtype
    t_best = torch.full((n, ), float('inf'), device=dev, dtype=dt)
    prim_best = torch.full((n, ), -1, device=dev, dtype=torch.long)
    normal = torch.zeros((n, 3), device=dev, dtype=dt)
    local = torch.zeros((n, 3), device=dev, dtype=dt)
    if ray_idx.numel() == 0:
        return t_best, prim_best, normal, local
    t_pair = times_s[ray_idx]
    uniq, inv = torch.unique(t_pair, return_inverse=True)
    n_prim = scene.prim_obj.numel()
    if uniq.numel() * n_prim < ray_idx.numel():
        # Few distinct times (cameras, lidar columns): pose every box once per time.
        st_all = scene.object_states(
            scene.prim_obj.repeat(uniq.numel()), uniq.repeat_interleave(n_prim)).to(dt)
        center_all = box_world_center(st_all, scene.prim_center.repeat(uniq.numel(), 1))
        flat = inv * n_prim + prim_idx
        st, center = st_all[flat], center_all[flat]
    else:
        st = scene.object_states(scene.prim_obj[prim_idx], t_pair).to(dt)
        center = box_world_center(st, scene.prim_center[prim_idx])
    c, s = torch.cos(st[:, 3:4]), torch.sin(st[:, 3:4])

    def to_local(v):
        return torch.cat([c * v[:, :1] + s * v[:, 1:2], -s * v[:, :1] + c * v[:, 1:2], v[:, 2:]], 1)

    o_loc = to_local(origins[ray_idx] - center)
    d_loc = to_local(dirs[ray_idx])
    t_pair, axis = slab_intersect(o_loc, d_loc, scene.prim_half[prim_idx])
    t_best.scatter_reduce_(0, ray_idx, t_pair, reduce='amin')
    win = torch.isfinite(t_pair) & (t_pair == t_best[ray_idx])
    win_idx = torch.nonzero(win).squeeze(1)
    rays = ray_idx[win_idx]
    prim_best[rays] = prim_idx[win_idx]
    p_loc = o_loc[win_idx] + t_pair[win_idx, None] * d_loc[win_idx]
    local[rays] = p_loc
    ax = axis[win_idx]
    n_loc = torch.zeros_like(p_loc)
    n_loc[torch.arange(ax.numel(), device=dev), ax] = -torch.sign(d_loc[win_idx, ax] + 1e-30)
    cw, sw = c[win_idx, 0], s[win_idx, 0]
    normal[rays] = torch.stack(
        [cw * n_loc[:, 0] - sw * n_loc[:, 1], sw * n_loc[:, 0] + cw * n_loc[:, 1], n_loc[:, 2]], 1)
    return t_best, prim_best, normal, local


def intersect_ground(scene: SceneTensors,
                     origins: torch.Tensor,
                     dirs: torch.Tensor,
                     t_max: torch.Tensor,
                     steps: int,
                     bisections: int = 8) -> torch.Tensor:
    """First crossing of each ray with the bilinear ground surface.

    The ray is marched with ``steps`` samples over the distance range where it is inside the
    ground's height band, then the first sign change is refined by bisection.

    Args:
        scene: scene tensors.
        origins, dirs: (N, 3) rays, world frame.
        t_max: (N,) search no further than this (range limit or a closer box hit).
        steps: march samples.
        bisections: bisection iterations.

    Returns:
        (N,) hit distance, ``inf`` where the ray does not reach the ground before ``t_max``.
    """
    zmin, zmax = scene.z_range[0] - 1e-3, scene.z_range[1] + 1e-3
    oz, dz = origins[:, 2], dirs[:, 2]
    down = dz < -1e-9
    safe_dz = torch.where(down, dz, torch.full_like(dz, -1.0))
    t_enter = torch.where(down, ((oz - zmax) / -safe_dz).clamp(min=0.0), torch.zeros_like(oz))
    t_exit = torch.where(down, (oz - zmin) / -safe_dz, t_max)
    t_enter = torch.where(oz > zmax, t_enter, torch.zeros_like(oz))
    t_exit = torch.minimum(t_exit, t_max)
    live = (t_enter < t_exit) & (down | (oz <= zmax))
    idx = torch.nonzero(live).squeeze(1)
    out = torch.full_like(oz, float('inf'))
    if idx.numel() == 0:
        return out
    o, d = origins[idx], dirs[idx]
    ta, tb = t_enter[idx], t_exit[idx]

    def f(t):
        p = o + t[:, None] * d
        return p[:, 2] - height_at_torch(scene.height, scene.ground_origin_xy, p[:, :2])

    lo, hi = ta.clone(), tb.clone()
    found = torch.zeros_like(ta, dtype=torch.bool)
    t_prev = ta
    f_prev = f(ta)
    below_at_start = f_prev <= 0
    hi = torch.where(below_at_start, ta, hi)
    found |= below_at_start
    for k in range(1, steps + 1):
        t_k = ta + (tb - ta) * (k / steps)
        f_k = f(t_k)
        new = (~found) & (f_k <= 0)
        lo = torch.where(new, t_prev, lo)
        hi = torch.where(new, t_k, hi)
        found |= new
        t_prev = t_k
    sel = torch.nonzero(found & ~below_at_start).squeeze(1)
    if sel.numel():
        o, d = o[sel], d[sel]
        a, b = lo[sel], hi[sel]
        fa, fb = f(a), f(b)
        for _ in range(bisections):
            mid = 0.5 * (a + b)
            fm = f(mid)
            above = fm > 0
            a, fa = torch.where(above, mid, a), torch.where(above, fm, fa)
            b, fb = torch.where(above, b, mid), torch.where(above, fb, fm)
        # Final secant step inside the (millimetre-wide) bracket.
        w = (fa / (fa - fb).clamp(min=1e-12)).clamp(0.0, 1.0)
        hi[sel] = a + w * (b - a)
    res = torch.where(found, hi, torch.full_like(hi, float('inf')))
    out[idx] = res
    return out


def cast_rays(scene: SceneTensors, origins: torch.Tensor, dirs: torch.Tensor, times_s: torch.Tensor,
              t_max: torch.Tensor, ray_idx: torch.Tensor, prim_idx: torch.Tensor,
              steps: int) -> RayHits:
    """Nearest hit among candidate boxes and the ground.

    Args:
        scene: scene tensors.
        origins, dirs: (N, 3) rays, world frame (unit directions).
        times_s: (N,) ray times, seconds since log start.
        t_max: (N,) range limits.
        ray_idx, prim_idx: (M,) candidate (ray, box) pairs from a culling step.
        steps: ground march samples.

    Returns:
        The hits.
    """
    t_box, prim, normal, local = intersect_boxes(scene, origins, dirs, times_s, ray_idx, prim_idx)
    t_box = torch.where(t_box <= t_max, t_box, torch.full_like(t_box, float('inf')))
    t_ground = intersect_ground(scene, origins, dirs, torch.minimum(t_box, t_max), steps)
    ground_first = t_ground < t_box
    t = torch.minimum(t_ground, t_box)
    obj_id = torch.where(prim >= 0, scene.prim_obj[prim.clamp(min=0)] + FIRST_OBJECT_ID,
                         torch.full_like(prim, NO_HIT))
    obj_id = torch.where(ground_first, torch.full_like(obj_id, GROUND_ID), obj_id)
    prim = torch.where(ground_first, torch.full_like(prim, -1), prim)
    if ground_first.any():
        gi = torch.nonzero(ground_first).squeeze(1)
        p = origins[gi] + t[gi, None] * dirs[gi]
        normal[gi] = ground_normal(scene, p[:, :2])
        local[gi] = 0.0
    return RayHits(t=t, object_id=obj_id, prim=prim, normal=normal, local=local)


def ground_normal(scene: SceneTensors, xy: torch.Tensor, eps_m: float = 0.05) -> torch.Tensor:
    """(M, 3) unit ground normals from central differences of the surface at (M, 2) points."""
    ex = torch.tensor([eps_m, 0.0], device=xy.device, dtype=xy.dtype)
    ey = torch.tensor([0.0, eps_m], device=xy.device, dtype=xy.dtype)

    def h(q):
        return height_at_torch(scene.height, scene.ground_origin_xy, q)

    gx = (h(xy + ex) - h(xy - ex)) / (2 * eps_m)
    gy = (h(xy + ey) - h(xy - ey)) / (2 * eps_m)
    n = torch.stack([-gx, -gy, torch.ones_like(gx)], 1)
    return n / n.norm(dim=1, keepdim=True)


def pairs_from_counts(starts: torch.Tensor,
                      counts: torch.Tensor,
                      prim_ids: torch.Tensor,
                      order: Optional[torch.Tensor] = None):
    """Expand per-box runs of consecutive rays into (ray, box) pairs.

    Args:
        starts: (B,) first position of each box's run.
        counts: (B,) run lengths.
        prim_ids: (B,) box index of each run.
        order: optional (N,) permutation mapping run positions to ray indices.

    Returns:
        ray_idx, prim_idx: (sum(counts),) pairs.
    """
    counts = counts.clamp(min=0)
    total = int(counts.sum())
    dev = counts.device
    if total == 0:
        empty = torch.zeros(0, dtype=torch.long, device=dev)
        return empty, empty
    run = torch.repeat_interleave(torch.arange(counts.numel(), device=dev), counts)
    first = torch.cumsum(counts, 0) - counts
    pos = starts[run] + (torch.arange(total, device=dev) - first[run])
    ray = pos if order is None else order[pos]
    return ray, prim_ids[run]
