"""AV2-like lidar: two stacked 32-beam spinning units, 10 Hz, motion-compensated ego-frame sweeps.

Each firing column has its own time (``offset_ns`` since the sweep start); its rays are cast
against the world at that time from the sensor pose at that time, and the returns are expressed
in the ego frame at the sweep timestamp, as in AV2. Rays that hit nothing within range produce no
point; they are reported (beam, azimuth, time, direction) in the ground-truth sidecar.
"""
import math
from dataclasses import dataclass
from typing import Dict

import numpy as np
import pandas as pd
import torch

from .appearance import lidar_intensity
from .ground import material_at_torch
from .object_catalog import make_shape
from .raycast import (EGO_ID, GROUND_ID, NO_HIT, SceneTensors, cast_rays, pairs_from_counts,
                      slab_intersect)
from .scene import Scene
from .transforms import invert_se3, make_se3

#: Velodyne VLP-32C elevation angles in laser order, degrees.
VLP32C_ELEVATION_DEG = (-25.0, -1.0, -1.667, -15.639, -11.31, 0.0, -0.667, -8.843, -7.254, 0.333,
                        -0.333, -6.148, -5.333, 1.333, 0.667, -4.0, -4.667, 1.667, 1.0, -3.667,
                        -3.333, 3.333, 2.333, -2.667, -3.0, 7.0, 4.667, -2.333, -2.0, 15.0, 10.333,
                        -1.333)
UP_LIDAR_XYZ = (1.35, 0.0, 1.95)
DOWN_LIDAR_XYZ = (1.35, 0.0, 1.75)
#: Ego body centre in the ego (rear-axle) frame, for self returns.
EGO_BODY_CENTER_X = 1.435
SWEEP_PERIOD_NS = 100_000_000
MIN_RANGE_M = 0.5


@dataclass
class LidarRig:
    """Beam layout and mounting of the two lidar units.

    Args:
        elevation_rad: (64,) beam elevation per laser_number in its unit's frame
            (0-31 ``up_lidar``, 32-63 ``down_lidar``).
        ego_from_sensor: sensor name -> (4, 4) mounting pose.
        azimuth_steps: firing columns per revolution.
        max_range_m: returns beyond this range are dropped (missing rays).
    """

    elevation_rad: np.ndarray
    ego_from_sensor: Dict[str, np.ndarray]
    azimuth_steps: int
    max_range_m: float

    @property
    def column_offset_ns(self) -> np.ndarray:
        """(A,) firing time of every column since the sweep start."""
        return (np.arange(self.azimuth_steps) * SWEEP_PERIOD_NS // self.azimuth_steps)

    @property
    def column_azimuth_rad(self) -> np.ndarray:
        """(A,) azimuth of every column in the sensor frame (clockwise spin, starting behind)."""
        az = np.pi - 2 * np.pi * np.arange(self.azimuth_steps) / self.azimuth_steps
        return (az + np.pi) % (2 * np.pi) - np.pi


def av2_lidar_rig(azimuth_steps: int, max_range_m: float) -> LidarRig:
    """The AV2-like rig: two upright VLP-32C units stacked on the roof.

    The lower unit's beams are shifted down by 1/6 degree so the two units interleave.
    """
    up = np.deg2rad(np.array(VLP32C_ELEVATION_DEG))
    down = np.deg2rad(np.array(VLP32C_ELEVATION_DEG) - 1.0 / 6.0)
    eye = np.eye(3)
    return LidarRig(
        elevation_rad=np.concatenate([up, down]),
        ego_from_sensor={
            'up_lidar': make_se3(eye, UP_LIDAR_XYZ),
            'down_lidar': make_se3(eye, DOWN_LIDAR_XYZ)
        },
        azimuth_steps=azimuth_steps,
        max_range_m=max_range_m)


@dataclass
class SimulatedSweep:
    """One sweep in AV2 columns plus its ground truth.

    Args:
        frame: AV2 sweep table (x, y, z float16 ego frame; intensity, laser_number uint8;
            offset_ns int32).
        object_id: (N,) int32 id of what each return hit (0 ground, 1 ego, 2 + object index).
        missing: arrays describing the rays that returned nothing: ``laser_number`` (M,) uint8,
            ``azimuth_rad`` (M,) float32 in the sensor frame, ``offset_ns`` (M,) int32,
            ``direction_ego`` (M, 3) float32 unit directions in the ego frame at the sweep time.
    """

    frame: pd.DataFrame
    object_id: np.ndarray
    missing: Dict[str, np.ndarray]


def _beam_dirs_sensor(rig: LidarRig) -> np.ndarray:
    """(A, 64, 3) unit beam directions in each unit's sensor frame."""
    az = rig.column_azimuth_rad[:, None]
    el = rig.elevation_rad[None, :]
    return np.stack(
        np.broadcast_arrays(np.cos(el) * np.cos(az),
                            np.cos(el) * np.sin(az), np.sin(el)), -1)


def _azimuth_pairs(tensors: SceneTensors, dirs: torch.Tensor, origin: torch.Tensor, t0: float,
                   t1: float, max_range: float, ego_motion_m: float):
    """Candidate (ray, box) pairs: rays whose world azimuth falls in a box's angular window."""
    az = torch.atan2(dirs[:, 1], dirs[:, 0])
    az_sorted, order = torch.sort(az)
    c0 = tensors.prim_world_centers(t0)
    c1 = tensors.prim_world_centers(t1)
    center = 0.5 * (c0 + c1)
    radius = (tensors.prim_half.norm(dim=1) + 0.5 * (c1 - c0).norm(dim=1) + ego_motion_m + 0.3)
    rel = center[:, :2] - origin[:2]
    dist = rel.norm(dim=1)
    keep = dist - radius < max_range
    half = torch.asin((radius / dist.clamp(min=1e-6)).clamp(max=1.0))
    full = radius >= dist
    half = torch.where(full, torch.full_like(half, math.pi), half)
    mid = torch.atan2(rel[:, 1], rel[:, 0])
    prims = torch.nonzero(keep).squeeze(1)
    starts, counts, ids = [], [], []
    for shift in (-2 * math.pi, 0.0, 2 * math.pi):
        lo = (mid[prims] - half[prims] + shift).clamp(-math.pi, math.pi)
        hi = (mid[prims] + half[prims] + shift).clamp(-math.pi, math.pi)
        i_lo = torch.searchsorted(az_sorted, lo.contiguous())
        i_hi = torch.searchsorted(az_sorted, hi.contiguous(), right=True)
        if shift == 0.0:
            i_lo = torch.where(full[prims], torch.zeros_like(i_lo), i_lo)
            i_hi = torch.where(full[prims], torch.full_like(i_hi, az.numel()), i_hi)
        else:
            i_hi = torch.where(full[prims], i_lo, i_hi)
        starts.append(i_lo)
        counts.append(i_hi - i_lo)
        ids.append(prims)
    return pairs_from_counts(torch.cat(starts), torch.cat(counts), torch.cat(ids), order)


def simulate_sweep(scene: Scene,
                   tensors: SceneTensors,
                   rig: LidarRig,
                   sweep_index: int,
                   steps: int,
                   ray_chunk: int = 1 << 17) -> SimulatedSweep:
    """Cast one sweep.

    Args:
        scene: the log's scene.
        tensors: ``scene.tensors(device)``.
        rig: lidar rig.
        sweep_index: index into ``scene.sweep_ns``.
        steps: ground march samples per ray.
        ray_chunk: rays per ray-casting call (bounds memory).

    Returns:
        The sweep table and its ground truth.
    """
    dev = tensors.height.device
    a, nb = rig.azimuth_steps, rig.elevation_rad.size
    sweep_ns = int(scene.sweep_ns[sweep_index])
    col_ns = rig.column_offset_ns
    t_cols = scene.seconds(sweep_ns + col_ns)  # (A,)
    world_from_ego_t = scene.world_from_ego(t_cols)  # (A, 4, 4)
    dirs_s = _beam_dirs_sensor(rig)  # (A, 64, 3)
    units = ['up_lidar'] * 32 + ['down_lidar'] * (nb - 32)
    ego_from_s = np.stack([rig.ego_from_sensor[u] for u in units])  # (64, 4, 4)
    dirs_ego = np.einsum('bij,abj->abi', ego_from_s[:, :3, :3], dirs_s)
    orig_ego = np.broadcast_to(ego_from_s[:, :3, 3], (a, nb, 3))
    rot = world_from_ego_t[:, None, :3, :3]
    dirs_w = np.einsum('abij,abj->abi', rot, dirs_ego)
    orig_w = np.einsum('abij,abj->abi', rot, orig_ego) + world_from_ego_t[:, None, :3, 3]
    times = np.broadcast_to(t_cols[:, None], (a, nb))
    # Self returns on the ego body (fixed in the ego frame).
    body = make_shape('ego', np.random.default_rng(0))
    t_self = np.full((a, nb), np.inf)
    for c, h in zip(body.centers, body.half_sizes):
        o_loc = torch.from_numpy((orig_ego - c - [EGO_BODY_CENTER_X, 0, 0]).reshape(-1, 3))
        d_loc = torch.from_numpy(dirs_ego.reshape(-1, 3))
        t_box, _ = slab_intersect(o_loc, d_loc, torch.from_numpy(np.tile(h, (a * nb, 1))))
        t_self = np.minimum(t_self, t_box.numpy().reshape(a, nb))

    def tt(x):
        return torch.as_tensor(
            np.ascontiguousarray(x.reshape(-1, *x.shape[2:])), device=dev, dtype=torch.float32)

    o_all, d_all = tt(orig_w), tt(dirs_w)
    time_all = torch.as_tensor(times.reshape(-1), device=dev, dtype=torch.float64)
    t_all = torch.full((a * nb, ), float('inf'), device=dev)
    id_all = torch.full((a * nb, ), NO_HIT, device=dev, dtype=torch.long)
    mat_all = torch.zeros((a * nb, ), device=dev, dtype=torch.long)
    cos_all = torch.zeros((a * nb, ), device=dev)
    ego_motion = float(np.linalg.norm(world_from_ego_t[-1, :3, 3] - world_from_ego_t[0, :3, 3]))
    for lo in range(0, a * nb, ray_chunk):
        sl = slice(lo, min(lo + ray_chunk, a * nb))
        o, d, tm = o_all[sl], d_all[sl], time_all[sl]
        ray_idx, prim_idx = _azimuth_pairs(tensors, d, o.mean(0), float(t_cols[0]),
                                           float(t_cols[-1]), rig.max_range_m, ego_motion)
        t_max = torch.full((o.shape[0], ), rig.max_range_m, device=dev)
        hits = cast_rays(tensors, o, d, tm, t_max, ray_idx, prim_idx, steps)
        t_all[sl] = hits.t
        id_all[sl] = hits.object_id
        p = o + hits.t.clamp(max=1e6)[:, None] * d
        is_ground = hits.object_id == GROUND_ID
        gmat = material_at_torch(tensors.material, tensors.ground_origin_xy, p[:, :2]).long()
        omat = tensors.prim_material[hits.prim.clamp(min=0)]
        mat_all[sl] = torch.where(is_ground, gmat, omat)
        cos_all[sl] = (hits.normal * d).sum(1).abs()
    # Ego body blocks (and returns) rays that reach it first.
    t_self_t = torch.as_tensor(t_self.reshape(-1), device=dev, dtype=torch.float32)
    self_first = t_self_t < t_all
    t_all = torch.where(self_first, t_self_t, t_all)
    id_all = torch.where(self_first, torch.full_like(id_all, EGO_ID), id_all)
    valid = torch.isfinite(t_all) & (t_all >= MIN_RANGE_M) & (t_all <= rig.max_range_m)
    # Points: world at firing time -> ego frame at the sweep timestamp (float64 on CPU).
    t_np = t_all.cpu().numpy().astype(np.float64)
    valid_np = valid.cpu().numpy()
    p_w = (orig_w.reshape(-1, 3) + np.where(valid_np, t_np, 0.0)[:, None] * dirs_w.reshape(-1, 3))
    ego_from_world = invert_se3(scene.world_from_ego(scene.seconds(sweep_ns)))
    p_ego = p_w @ ego_from_world[:3, :3].T + ego_from_world[:3, 3]
    # Self returns are computed in the ego frame at firing time; keep them rigid with the car.
    self_np = self_first.cpu().numpy() & valid_np
    p_self = orig_ego.reshape(-1,
                              3) + np.where(self_np, t_np, 0.0)[:, None] * dirs_ego.reshape(-1, 3)
    p_ego[self_np] = p_self[self_np]
    laser = np.broadcast_to(np.arange(nb, dtype=np.uint8)[None], (a, nb)).reshape(-1)
    offs = np.broadcast_to(col_ns[:, None], (a, nb)).reshape(-1).astype(np.int32)
    noise = torch.as_tensor(
        ((np.arange(a * nb) * 2654435761) % 1000) / 1000.0, device=dev, dtype=torch.float32)
    intensity = lidar_intensity(id_all == GROUND_ID, mat_all, cos_all, t_all.clamp(max=1e3), noise)
    intensity = torch.where(self_first, torch.full_like(intensity, 4), intensity).cpu().numpy()
    # AV2 row order: by unit, then firing time, then beam.
    unit_of_row = (laser >= 32).astype(np.int64)
    order = np.lexsort((laser, offs, unit_of_row))
    keep = order[valid_np[order]]
    frame = pd.DataFrame({
        'x': p_ego[keep, 0].astype(np.float16),
        'y': p_ego[keep, 1].astype(np.float16),
        'z': p_ego[keep, 2].astype(np.float16),
        'intensity': intensity[keep].astype(np.uint8),
        'laser_number': laser[keep].astype(np.uint8),
        'offset_ns': offs[keep].astype(np.int32)
    })
    miss = order[~valid_np[order]]
    ego_ts_from_ego_t = np.einsum('ij,ajk->aik', ego_from_world[:3, :3],
                                  world_from_ego_t[:, :3, :3])  # (A, 3, 3)
    dir_ego_ts = np.einsum('aij,abj->abi', ego_ts_from_ego_t, dirs_ego).reshape(-1, 3)
    col_of_row = np.broadcast_to(np.arange(a)[:, None], (a, nb)).reshape(-1)
    missing = {
        'laser_number': laser[miss].astype(np.uint8),
        'azimuth_rad': rig.column_azimuth_rad[col_of_row[miss]].astype(np.float32),
        'offset_ns': offs[miss].astype(np.int32),
        'direction_ego': dir_ego_ts[miss].astype(np.float32)
    }
    return SimulatedSweep(
        frame=frame, object_id=id_all.cpu().numpy()[keep].astype(np.int32), missing=missing)
