"""One log's world: roads, ground, objects with trajectories, the ego drive and sensor times.

Frames: ``world`` is the generator's frame (intersection at the origin); the AV2 ``city`` frame
is ``city = world + city_offset`` (translation only). All motion is sampled on one time grid
(``TRAJ_DT_S``) and linearly interpolated, so every sensor sees the same world.
"""
import uuid
import zlib
from dataclasses import dataclass
from typing import Dict, List

import numpy as np
import torch

from .ego_motion import EgoDrive, plan_ego_drive
from .ground import GroundSurface, build_ground
from .object_catalog import ObjectShape, make_shape
from .presets import SyntheticPreset
from .raycast import SceneTensors
from .road_network import RoadNetwork, build_road_network
from .scenery import populate_scenery
from .traffic import Population, populate_traffic
from .transforms import SampledTrajectory, make_se3, rotation_from_ypr

TRAJ_DT_S = 0.01
TRAJ_PAD_S = 0.5
CITIES = ('ATX', 'DTW', 'MIA', 'PAO', 'PIT', 'WDC')
RING_CAMERA_NAMES = ('ring_front_center', 'ring_front_left', 'ring_front_right', 'ring_side_left',
                     'ring_side_right', 'ring_rear_left', 'ring_rear_right')
#: Trigger offset of each ring camera relative to the 20 Hz grid, nanoseconds.
RING_CAMERA_OFFSET_NS = (0, -4_000_000, 4_000_000, -8_000_000, 8_000_000, -12_000_000, 12_000_000)


@dataclass
class Scene:
    """Everything needed to render and write one log.

    Args:
        log_id: AV2 log uuid.
        split: ``train``, ``val`` or ``test``.
        city_name: AV2 city code.
        city_offset: (3,) ``city = world + city_offset``.
        start_ns: timestamp of the first lidar sweep (vehicle time, ns).
        net: road network.
        ground: ground surface.
        ego: ego drive (states on the time grid).
        shapes: (O,) object shapes.
        obj_states: (O, K, 4) object states (x, y, z, yaw) on the time grid, world frame.
        track_uuids: (O,) track uuid per object.
        sweep_ns: (S,) lidar sweep timestamps.
        camera_ns: ring camera name -> (F,) image timestamps.
        traj_t0_s: time of the first grid sample, seconds since ``start_ns``.
    """

    log_id: str
    split: str
    city_name: str
    city_offset: np.ndarray
    start_ns: int
    net: RoadNetwork
    ground: GroundSurface
    ego: EgoDrive
    shapes: List[ObjectShape]
    obj_states: np.ndarray
    track_uuids: List[str]
    sweep_ns: np.ndarray
    camera_ns: Dict[str, np.ndarray]
    traj_t0_s: float = -TRAJ_PAD_S
    traj_dt_s: float = TRAJ_DT_S

    def seconds(self, timestamp_ns) -> np.ndarray:
        """Seconds since ``start_ns`` for integer timestamps."""
        return (np.asarray(timestamp_ns, dtype=np.int64) - self.start_ns) / 1e9

    def ego_states_at(self, t_s) -> np.ndarray:
        """(..., 6) ego states (x, y, z, yaw, pitch, roll), world frame, at times ``t_s``."""
        return SampledTrajectory(self.traj_t0_s, self.traj_dt_s, self.ego.states).at(t_s)

    def world_from_ego(self, t_s) -> np.ndarray:
        """(..., 4, 4) ego pose in the world frame at times ``t_s``."""
        st = self.ego_states_at(t_s)
        return make_se3(rotation_from_ypr(st[..., 3], st[..., 4], st[..., 5]), st[..., :3])

    def city_from_ego(self, t_s) -> np.ndarray:
        """(..., 4, 4) ego pose in the AV2 city frame at times ``t_s``."""
        mat = self.world_from_ego(t_s)
        mat[..., :3, 3] += self.city_offset
        return mat

    def object_states_at(self, t_s) -> np.ndarray:
        """(O, ..., 4) object states (x, y, z, yaw), world frame, at times ``t_s``."""
        return SampledTrajectory(self.traj_t0_s, self.traj_dt_s, self.obj_states).at(t_s)

    def all_pose_ns(self) -> np.ndarray:
        """Sorted unique timestamps of every lidar sweep and camera image."""
        return np.unique(np.concatenate([self.sweep_ns] + list(self.camera_ns.values())))

    def tensors(self, device='cpu', dtype=torch.float32) -> SceneTensors:
        """Ray-casting view of the scene on ``device``."""
        prim_obj, centers, halves, mats = [], [], [], []
        for o, shape in enumerate(self.shapes):
            prim_obj += [o] * len(shape.materials)
            centers.append(shape.centers)
            halves.append(shape.half_sizes)
            mats.append(shape.materials)

        def t(a, dt=dtype):
            return torch.as_tensor(np.asarray(a), device=device, dtype=dt)

        return SceneTensors(
            height=t(self.ground.height),
            material=t(self.ground.material, torch.uint8),
            ground_origin_xy=tuple(float(v) for v in self.ground.origin_xy),
            z_range=self.ground.z_range,
            prim_obj=t(prim_obj, torch.long),
            prim_center=t(np.concatenate(centers)),
            prim_half=t(np.concatenate(halves)),
            prim_material=t(np.concatenate(mats), torch.long),
            obj_states=t(self.obj_states),
            traj_t0_s=self.traj_t0_s,
            traj_dt_s=self.traj_dt_s,
            obj_tint=t(np.stack([shape.tint for shape in self.shapes])))


def _uuid(rng: np.random.Generator) -> str:
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def build_scene(preset: SyntheticPreset, seed: int, split: str, log_index: int) -> Scene:
    """Generate one log's world deterministically from (seed, split, log index).

    Args:
        preset: size preset.
        seed: world seed.
        split: ``train``, ``val`` or ``test``.
        log_index: index of the log within its split.

    Returns:
        The scene.
    """
    split_code = {'train': 0, 'val': 1, 'test': 2}[split]
    # The preset name is part of the seed, so presets never share log ids.
    rng = np.random.default_rng([seed, split_code, log_index, zlib.crc32(preset.name.encode())])
    log_id = _uuid(rng)
    city = CITIES[int(rng.integers(0, len(CITIES)))]
    city_offset = np.array([rng.uniform(1000, 9000),
                            rng.uniform(1000, 9000),
                            rng.uniform(-5, 40)]).round(3)
    start_ns = int(315_967_000_000_000_000 + rng.integers(0, 10**15) // 1000 * 1000)
    net = build_road_network(
        rng, preset.world_half_extent_m, first_segment_id=int(rng.integers(10**7, 4 * 10**8)))
    ground = build_ground(net, rng, preset.world_half_extent_m)
    times = np.arange(-TRAJ_PAD_S, preset.duration_s + TRAJ_PAD_S + 1e-9, TRAJ_DT_S)
    ego = plan_ego_drive(net, ground, rng, times, preset.duration_s)
    pop = Population()
    populate_traffic(pop, net, ground, ego, rng, times, preset)
    populate_scenery(pop, net, ground, rng, len(times), preset)
    if not pop.shapes:  # keep arrays well-formed even for an empty world
        pop.add(make_shape('pole', rng), np.tile([1e4, 1e4, 0, 0], (len(times), 1)), False)
    states = np.stack(pop.states).astype(np.float64)
    track_uuids = [_uuid(rng) for _ in pop.shapes]
    s = preset.num_sweeps
    sweep_ns = start_ns + np.arange(s, dtype=np.int64) * 100_000_000
    sweep_ns[1:] += rng.integers(-150_000, 150_000, size=s - 1)
    frames = np.arange(preset.num_camera_frames, dtype=np.int64) * 50_000_000
    camera_ns = {}
    for name, off in zip(RING_CAMERA_NAMES, RING_CAMERA_OFFSET_NS):
        jitter = rng.integers(-100_000, 100_000, size=frames.size)
        camera_ns[name] = start_ns + frames + off + jitter
    return Scene(
        log_id=log_id,
        split=split,
        city_name=city,
        city_offset=city_offset,
        start_ns=start_ns,
        net=net,
        ground=ground,
        ego=ego,
        shapes=pop.shapes,
        obj_states=states,
        track_uuids=track_uuids,
        sweep_ns=sweep_ns,
        camera_ns=camera_ns)
