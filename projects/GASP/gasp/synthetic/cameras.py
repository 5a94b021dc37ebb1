"""AV2-like camera rig (7 ring + 2 stereo) and ray-cast rendering of ring-camera images.

Camera frame: x right, y down, z forward (AV2). Pixel (u, v) = (column, row) is the projection
``u = fx x / z + cx``, ``v = fy y / z + cy``, the model av2's ``PinholeCamera`` uses; each pixel
is rendered by casting the ray through its integer coordinates, nearest hit wins (depth test).
"""
from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np
import torch

from .appearance import ground_texture, object_texture, shade, sky
from .ground import material_at_torch
from .raycast import (FIRST_OBJECT_ID, GROUND_ID, NO_HIT, SceneTensors, box_world_center, cast_rays,
                      pairs_from_counts)
from .scene import Scene
from .transforms import invert_se3, make_se3

#: name -> (x, y, z in the ego frame, yaw in degrees, full-resolution (H, W), fx in pixels).
CAMERA_LAYOUT: Dict[str, Tuple[Tuple[float, float, float], float, Tuple[int, int], float]] = {
    'ring_front_center': ((1.65, 0.0, 1.40), 0.0, (2048, 1550), 1773.0),
    'ring_front_left': ((1.55, 0.30, 1.40), 45.0, (1550, 2048), 1686.0),
    'ring_front_right': ((1.55, -0.30, 1.40), -45.0, (1550, 2048), 1686.0),
    'ring_side_left': ((1.10, 0.85, 1.40), 99.0, (1550, 2048), 1686.0),
    'ring_side_right': ((1.10, -0.85, 1.40), -99.0, (1550, 2048), 1686.0),
    'ring_rear_left': ((0.0, 0.55, 1.40), 153.0, (1550, 2048), 1686.0),
    'ring_rear_right': ((0.0, -0.55, 1.40), -153.0, (1550, 2048), 1686.0),
    'stereo_front_left': ((1.60, 0.15, 1.55), 0.0, (1550, 2048), 1600.0),
    'stereo_front_right': ((1.60, -0.15, 1.55), 0.0, (1550, 2048), 1600.0),
}
RENDER_RANGE_M = 300.0


@dataclass
class CameraModel:
    """Undistorted pinhole camera mounted on the ego vehicle.

    Args:
        name: AV2 sensor name.
        ego_from_cam: (4, 4) mounting pose.
        fx, fy, cx, cy: intrinsics in pixels.
        height, width: image size in pixels.
    """

    name: str
    ego_from_cam: np.ndarray
    fx: float
    fy: float
    cx: float
    cy: float
    height: int
    width: int


def camera_rig(scale: float) -> Dict[str, CameraModel]:
    """The 9 AV2 cameras with resolution and intrinsics scaled by ``scale``.

    The principal point is the image centre; focal lengths scale with the image size, so a
    scaled camera sees the same field of view.
    """
    rig = {}
    for name, (xyz, yaw_deg, (h, w), f) in CAMERA_LAYOUT.items():
        hs, ws = max(8, int(round(h * scale))), max(8, int(round(w * scale)))
        yaw = np.deg2rad(yaw_deg)
        # Columns: camera x (right), y (down), z (forward) expressed in the ego frame.
        rot = np.array([[np.sin(yaw), 0.0, np.cos(yaw)], [-np.cos(yaw), 0.0,
                                                          np.sin(yaw)], [0.0, -1.0, 0.0]])
        rig[name] = CameraModel(
            name=name,
            ego_from_cam=make_se3(rot, xyz),
            fx=f * ws / w,
            fy=f * hs / h,
            cx=(ws - 1) / 2.0,
            cy=(hs - 1) / 2.0,
            height=hs,
            width=ws)
    return rig


def _screen_pairs(tensors: SceneTensors, cam_from_world: torch.Tensor, t_s: torch.Tensor,
                  intr: torch.Tensor, rows: torch.Tensor, ray_offset: torch.Tensor):
    """Candidate (pixel, box) pairs for R requests: pixels inside each box's projected rectangle.

    Args:
        tensors: scene tensors.
        cam_from_world: (R, 4, 4) camera poses.
        t_s: (R,) request times.
        intr: (R, 6) fx, fy, cx, cy, width, height.
        rows: (R, 2) row band [first, end) of each request.
        ray_offset: (R,) index of each request's first pixel in the batch.

    Returns:
        ray_idx, prim_idx: (M,) pairs (ray indices into the batch).
    """
    dev = cam_from_world.device
    n_req, n_prim = t_s.numel(), tensors.prim_obj.numel()
    obj = tensors.prim_obj.repeat(n_req)
    st = tensors.object_states(obj, t_s.repeat_interleave(n_prim)).to(cam_from_world.dtype)
    center = box_world_center(st, tensors.prim_center.repeat(n_req, 1))  # (R * P, 3)
    signs = torch.tensor([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)],
                         device=dev,
                         dtype=center.dtype)
    local = signs[None] * tensors.prim_half.repeat(n_req, 1)[:, None]  # (R * P, 8, 3)
    c, s = torch.cos(st[:, 3])[:, None], torch.sin(st[:, 3])[:, None]
    corners = torch.stack([
        center[:, None, 0] + c * local[..., 0] - s * local[..., 1], center[:, None, 1] +
        s * local[..., 0] + c * local[..., 1], center[:, None, 2] + local[..., 2]
    ], -1).reshape(n_req, n_prim * 8, 3)
    pc = (corners @ cam_from_world[:, :3, :3].transpose(1, 2) + cam_from_world[:, None, :3, 3])
    pc = pc.reshape(n_req, n_prim, 8, 3)
    fx, fy, cx, cy, w, h = (intr[:, k, None] for k in range(6))
    z = pc[..., 2]
    behind = (z <= 0.05).all(2)
    straddle = (z <= 0.05).any(2) & ~behind
    zs = z.clamp(min=0.05)
    u = fx[..., None] * pc[..., 0] / zs + cx[..., None]
    v = fy[..., None] * pc[..., 1] / zs + cy[..., None]
    u_min, u_max = u.min(2).values, u.max(2).values
    v_min, v_max = v.min(2).values, v.max(2).values
    outside = (u_max < 0) | (u_min > w - 1) | (v_max < 0) | (v_min > h - 1)
    zero = torch.zeros_like(u_min)
    u0 = torch.where(straddle, zero, torch.maximum(torch.floor(u_min), zero))
    u1 = torch.where(straddle, w - 1 + zero, torch.minimum(torch.ceil(u_max), w - 1))
    v0 = torch.where(straddle, zero, torch.floor(v_min))
    v1 = torch.where(straddle, h - 1 + zero, torch.ceil(v_max))
    v0 = torch.maximum(v0, rows[:, :1].to(v0.dtype))
    v1 = torch.minimum(v1, rows[:, 1:].to(v1.dtype) - 1)
    far = z.min(2).values > RENDER_RANGE_M
    keep = ~behind & (straddle | ~outside) & ~far & (v1 >= v0) & (u1 >= u0)
    req, prims = torch.nonzero(keep, as_tuple=True)
    u0, u1, v0, v1 = (a[req, prims].long() for a in (u0, u1, v0, v1))
    n_rows = v1 - v0 + 1
    first = torch.cumsum(n_rows, 0) - n_rows
    k = torch.arange(int(n_rows.sum()), device=dev) - torch.repeat_interleave(first, n_rows)
    req_r = torch.repeat_interleave(req, n_rows)
    row = torch.repeat_interleave(v0, n_rows) + k
    width = intr[req_r, 4].long()
    starts = (
        ray_offset[req_r] + (row - rows[req_r, 0]) * width + torch.repeat_interleave(u0, n_rows))
    counts = torch.repeat_interleave(u1 - u0 + 1, n_rows)
    return pairs_from_counts(starts, counts, torch.repeat_interleave(prims, n_rows))


_PIXEL_DIRS: Dict[tuple, torch.Tensor] = {}


def _pixel_dirs_cam(cam: CameraModel, rows: Tuple[int, int], dev) -> torch.Tensor:
    """(rows * W, 3) unit ray directions in the camera frame (cached per camera and band)."""
    key = (cam.name, cam.width, cam.height, cam.fx, rows, str(dev))
    if key not in _PIXEL_DIRS:
        vv, uu = torch.meshgrid(
            torch.arange(rows[0], rows[1], device=dev, dtype=torch.float32),
            torch.arange(cam.width, device=dev, dtype=torch.float32),
            indexing='ij')
        d = torch.stack([(uu - cam.cx) / cam.fx, (vv - cam.cy) / cam.fy,
                         torch.ones_like(uu)], -1).reshape(-1, 3)
        if len(_PIXEL_DIRS) > 64:
            _PIXEL_DIRS.clear()
        _PIXEL_DIRS[key] = d / d.norm(dim=1, keepdim=True)
    return _PIXEL_DIRS[key]


def render_images(scene: Scene, tensors: SceneTensors, requests: List[Tuple[CameraModel, int,
                                                                            Tuple[int, int]]],
                  steps: int) -> List[Tuple[np.ndarray, np.ndarray]]:
    """Render several images (or row bands of images) in one ray-casting batch.

    Args:
        scene: the log's scene.
        tensors: ``scene.tensors(device)``.
        requests: (camera model, image timestamp in ns, (first row, end row)); the ego pose and
            the world are taken at each image's own timestamp.
        steps: ground march samples per ray.

    Returns:
        Per request: rgb (rows, W, 3) uint8 and object_id (rows, W) int32 (``NO_HIT`` = sky,
        ``GROUND_ID``, or ``FIRST_OBJECT_ID + object``).
    """
    dev = tensors.height.device
    t_req = scene.seconds([ts for _, ts, _ in requests])
    ego_from_cam = np.stack([c.ego_from_cam for c, _, _ in requests])
    world_from_cam = scene.world_from_ego(t_req) @ ego_from_cam
    cam_from_world = torch.as_tensor(invert_se3(world_from_cam), device=dev, dtype=torch.float32)
    rot = torch.as_tensor(world_from_cam[:, :3, :3], device=dev, dtype=torch.float32)
    pos = torch.as_tensor(world_from_cam[:, :3, 3], device=dev, dtype=torch.float32)
    sizes = [(r1 - r0) * cam.width for cam, _, (r0, r1) in requests]
    size_t = torch.as_tensor(sizes, device=dev)
    req_of_ray = torch.repeat_interleave(torch.arange(len(requests), device=dev), size_t)
    d_cam = torch.cat([_pixel_dirs_cam(cam, rows, dev) for cam, _, rows in requests])
    dirs = torch.bmm(rot[req_of_ray], d_cam[:, :, None])[:, :, 0]
    origins = pos[req_of_ray]
    t_s = torch.as_tensor(t_req, device=dev, dtype=torch.float64)
    times = t_s[req_of_ray]
    intr = torch.tensor([[c.fx, c.fy, c.cx, c.cy, c.width, c.height] for c, _, _ in requests],
                        device=dev,
                        dtype=torch.float32)
    rows = torch.tensor([list(r) for _, _, r in requests], device=dev)
    ray_offset = torch.cumsum(size_t, 0) - size_t
    ray_idx, prim_idx = _screen_pairs(tensors, cam_from_world, t_s, intr, rows, ray_offset)
    n = dirs.shape[0]
    t_max = torch.full((n, ), RENDER_RANGE_M, device=dev)
    hits = cast_rays(tensors, origins, dirs, times, t_max, ray_idx, prim_idx, steps)
    rgb = sky(dirs)
    p = origins + hits.t.clamp(max=1e4)[:, None] * dirs
    g = torch.nonzero(hits.object_id == GROUND_ID).squeeze(1)
    if g.numel():
        mat = material_at_torch(tensors.material, tensors.ground_origin_xy, p[g, :2])
        rgb[g] = shade(ground_texture(mat, p[g]), hits.normal[g])
    b = torch.nonzero(hits.object_id >= FIRST_OBJECT_ID).squeeze(1)
    if b.numel():
        prim = hits.prim[b]
        obj = tensors.prim_obj[prim]
        col = object_texture(tensors.prim_material[prim], hits.local[b], tensors.prim_half[prim],
                             tensors.obj_tint[obj])
        rgb[b] = shade(col, hits.normal[b])
    # Distance haze keeps far geometry soft, as real optics and weather do.
    fog = (1.0 - torch.exp(-hits.t.clamp(max=1e4) / 400.0))[:, None]
    haze = torch.tensor([0.78, 0.84, 0.9], device=dev)
    rgb = torch.where((hits.object_id != NO_HIT)[:, None], rgb * (1 - fog) + haze * fog, rgb)
    img = (rgb * 255.0).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    ids = hits.object_id.to(torch.int32).cpu().numpy()
    out, lo = [], 0
    for (cam, _, _), size in zip(requests, sizes):
        out.append((img[lo:lo + size].reshape(-1, cam.width,
                                              3), ids[lo:lo + size].reshape(-1, cam.width)))
        lo += size
    return out


def render_image(scene: Scene, tensors: SceneTensors, cam: CameraModel, timestamp_ns: int,
                 steps: int) -> Tuple[np.ndarray, np.ndarray]:
    """Render one image; see :func:`render_images`."""
    return render_images(scene, tensors, [(cam, timestamp_ns, (0, cam.height))], steps)[0]
