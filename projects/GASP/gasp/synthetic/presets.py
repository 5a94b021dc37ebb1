"""Size presets of the synthetic Argoverse 2 world.

A preset fixes how many logs are written, how long they are and how dense the sensors are. The
world itself (roads, objects, motion) is the same procedure in every preset; only the extent of
the populated area and the number of agents scale with it.
"""
from dataclasses import dataclass, field, replace
from typing import Dict, Tuple

#: Full AV2 ring-camera resolution as (height_px, width_px).
AV2_PORTRAIT_HW: Tuple[int, int] = (2048, 1550)
AV2_LANDSCAPE_HW: Tuple[int, int] = (1550, 2048)


@dataclass(frozen=True)
class SyntheticPreset:
    """How much data one call of :func:`gasp.synthetic.generate_world` writes.

    Args:
        name: preset name.
        logs_per_split: number of logs written into ``sensor/train``, ``sensor/val`` and
            ``sensor/test``.
        duration_s: length of every log in seconds (lidar at 10 Hz, ring cameras at 20 Hz).
        lidar_azimuth_steps: firings per lidar revolution and unit; AV2's VLP-32C at 10 Hz fires
            1800 times (0.2 deg), which with 2 x 32 beams gives ~100k returns per sweep.
        camera_scale: factor applied to AV2's ring-camera resolution and intrinsics.
        max_range_m: lidar range; rays that hit nothing closer return nothing.
        heightfield_steps: ray-marching samples per ray against the ground before bisection.
        world_half_extent_m: roads reach this far from the intersection in every direction.
        num_moving_vehicles: vehicles that drive the lanes.
        num_parked_vehicles: vehicles parked on the shoulders.
        num_pedestrians: pedestrians walking the sidewalks or crossing at crosswalks.
        num_cyclists: cyclists riding the shoulders.
        num_buildings: building blocks along the roads.
        num_street_furniture: poles, bollards, signs, cones, trees.
        write_camera_ids: also write per-pixel object-id images into ``synthetic_gt/`` (checks).
        jpeg_quality: JPEG quality of the camera images.
    """

    name: str
    logs_per_split: Dict[str, int] = field(default_factory=lambda: {
        'train': 2,
        'val': 1,
        'test': 1
    })
    duration_s: float = 3.0
    lidar_azimuth_steps: int = 100
    camera_scale: float = 1.0 / 32.0
    max_range_m: float = 80.0
    heightfield_steps: int = 8
    world_half_extent_m: float = 90.0
    num_moving_vehicles: int = 8
    num_parked_vehicles: int = 8
    num_pedestrians: int = 8
    num_cyclists: int = 2
    num_buildings: int = 12
    num_street_furniture: int = 24
    write_camera_ids: bool = True
    jpeg_quality: int = 90

    @property
    def num_sweeps(self) -> int:
        """Number of 10 Hz lidar sweeps per log."""
        return int(round(self.duration_s * 10.0))

    @property
    def num_camera_frames(self) -> int:
        """Number of 20 Hz frames per ring camera and log."""
        return 2 * self.num_sweeps

    def camera_hw(self, portrait: bool) -> Tuple[int, int]:
        """Image size (height_px, width_px) of a ring camera under this preset."""
        h, w = AV2_PORTRAIT_HW if portrait else AV2_LANDSCAPE_HW
        return max(8, int(round(h * self.camera_scale))), max(8, int(round(w * self.camera_scale)))


PRESETS: Dict[str, SyntheticPreset] = {
    # Unit tests: four 3 s logs, ~5k points per sweep, 64 x 48 images; seconds on 2 cores.
    'tiny':
    SyntheticPreset(name='tiny'),
    # Demos on a laptop: a few longer logs at moderate density (~1 min per log on one core).
    'demo':
    SyntheticPreset(
        name='demo',
        logs_per_split={
            'train': 2,
            'val': 1,
            'test': 1
        },
        duration_s=6.0,
        lidar_azimuth_steps=360,
        camera_scale=1.0 / 16.0,
        heightfield_steps=16,
        world_half_extent_m=130.0,
        num_moving_vehicles=12,
        num_parked_vehicles=12,
        num_pedestrians=12,
        num_cyclists=3,
        num_buildings=16,
        num_street_furniture=32,
        write_camera_ids=False,
    ),
    # GPU benchmarks: AV2 density (~100k points per sweep, full-size images, 15 s logs).
    'full':
    SyntheticPreset(
        name='full',
        logs_per_split={
            'train': 8,
            'val': 2,
            'test': 2
        },
        duration_s=15.0,
        lidar_azimuth_steps=1800,
        camera_scale=1.0,
        max_range_m=200.0,
        heightfield_steps=48,
        world_half_extent_m=220.0,
        num_moving_vehicles=30,
        num_parked_vehicles=30,
        num_pedestrians=30,
        num_cyclists=8,
        num_buildings=36,
        num_street_furniture=80,
        write_camera_ids=False,
    ),
}


def get_preset(preset) -> SyntheticPreset:
    """Return a preset by name (or pass a :class:`SyntheticPreset` through).

    Raises:
        KeyError: if the name is not one of :data:`PRESETS`.
    """
    if isinstance(preset, SyntheticPreset):
        return preset
    if preset not in PRESETS:
        raise KeyError(f'unknown synthetic AV2 preset {preset!r}; choose one of {sorted(PRESETS)}')
    return PRESETS[preset]


def with_overrides(preset: SyntheticPreset, **overrides) -> SyntheticPreset:
    """Copy of ``preset`` with some fields replaced (e.g. fewer logs for a quick check)."""
    return replace(preset, **overrides)
