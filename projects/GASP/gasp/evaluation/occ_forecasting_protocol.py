"""The 4D occupancy forecasting protocol (Khurana et al., CVPR 2023; SPEC s. 5) as data.

Every number of the benchmark lives here once: which sweeps a frame uses, the ego box, the ray
subsampling, the near-field box of NFCD. Sweep spacing is counted in frames of the dataset: the
sweeps of AV2's 10 Hz lidar, as the benchmark's own loader does, or nuScenes' 2 Hz key frames,
as 4D-Occ's nuScenes loader does.
"""
from dataclasses import dataclass, replace
from typing import Optional, Tuple

LIDAR_PERIOD_S = 0.1  # AV2 lidar: 10 Hz
#: Near-field region of NFCD (and of the clamped-ray variant), up_lidar frame at t = 0.
NEAR_FIELD_RANGE = (-70.0, -70.0, -4.5, 70.0, 70.0, 4.5)
#: Ego-vehicle returns removed inside this box, (x_min, y_min, x_max, y_max) in the lidar frame.
EGO_BOX_LIDAR_XY = (-1.75, -1.25, 3.75, 1.25)
#: nuScenes: key frames at 2 Hz; ego box of 4D-Occ's nuScenes loader in the LIDAR_TOP frame
#: (x right, y forward).
NUSCENES_KEYFRAME_PERIOD_S = 0.5
NUSCENES_EGO_BOX_LIDAR_XY = (-0.8, -1.5, 0.8, 2.5)


@dataclass(frozen=True)
class OccForecastingProtocol:
    """Which sweeps and rays a benchmark frame uses.

    Frame k (the sweep at t = 0) uses past sweeps ``k - (num_past - 1) * step_sweeps, ..., k``
    and future sweeps ``k + step_sweeps, ..., k + num_future * step_sweeps``.

    Args:
        horizon: label of the horizon in the challenge files ('1s' or '3s').
        num_past: past frames, t = 0 included.
        num_future: future frames; one set of query rays each.
        step_sweeps: spacing of past and future frames in frames of the dataset (AV2 sweeps:
            2 = 0.2 s, 6 = 0.6 s; nuScenes key frames: 1 = 0.5 s).
        ray_stride: query rays are every ``ray_stride``-th return of a future sweep.
        ego_box_lidar_xy: ego box (x_min, y_min, x_max, y_max) in the lidar frame (m).
        frame_stride_sweeps: spacing of the t = 0 frames within a log, in sweeps; None: twice
            ``step_sweeps``, the spacing the challenge's loader uses for its frames.
        max_time_error_s: a frame is skipped when a used sweep is further than this from its
            nominal time (dropped sweeps).
        frame_period_s: nominal time between consecutive frames of the dataset (AV2 lidar
            sweeps: 0.1 s; nuScenes key frames: 0.5 s).
    """

    horizon: str
    num_past: int = 5
    num_future: int = 5
    step_sweeps: int = 2
    ray_stride: int = 5
    ego_box_lidar_xy: Tuple[float, float, float, float] = EGO_BOX_LIDAR_XY
    frame_stride_sweeps: Optional[int] = None
    max_time_error_s: float = 0.05
    frame_period_s: float = LIDAR_PERIOD_S

    @property
    def step_s(self) -> float:
        """Nominal spacing of frames (s)."""
        return self.step_sweeps * self.frame_period_s

    @property
    def frame_stride(self) -> int:
        """Spacing of t = 0 frames within a log (sweeps)."""
        return self.frame_stride_sweeps or 2 * self.step_sweeps

    @property
    def span_sweeps(self) -> int:
        """Sweeps from the first past frame to the last future frame."""
        return (self.num_past - 1 + self.num_future) * self.step_sweeps

    def sweep_offsets(self):
        """(past offsets, future offsets) of a frame, in sweeps relative to t = 0."""
        past = [-i * self.step_sweeps for i in range(self.num_past - 1, -1, -1)]
        future = [i * self.step_sweeps for i in range(1, self.num_future + 1)]
        return past, future


#: The two horizons of the benchmark: 1 s (0.2 s spacing) and 3 s (0.6 s, every 6th sweep).
PROTOCOLS = {
    1: OccForecastingProtocol(horizon='1s', step_sweeps=2),
    3: OccForecastingProtocol(horizon='3s', step_sweeps=6),
}

#: nuScenes (4D-Occ): 2 past and 2 future key frames (1 s) or 6 and 6 (3 s), every key frame
#: a frame, every return of a future key frame a query ray; a key frame more than 0.25 s off
#: its nominal time (a dropped key frame) ends the frame's run.
NUSCENES_PROTOCOLS = {
    h:
    OccForecastingProtocol(
        horizon=f'{h}s',
        num_past=2 * h,
        num_future=2 * h,
        step_sweeps=1,
        ray_stride=1,
        ego_box_lidar_xy=NUSCENES_EGO_BOX_LIDAR_XY,
        frame_stride_sweeps=1,
        max_time_error_s=0.25,
        frame_period_s=NUSCENES_KEYFRAME_PERIOD_S)
    for h in (1, 3)
}
PROTOCOLS_OF_DATASET = dict(av2=PROTOCOLS, nuscenes=NUSCENES_PROTOCOLS)


def get_protocol(horizon_s: int, dataset: str = 'av2', **overrides) -> OccForecastingProtocol:
    """The protocol of a horizon (1 or 3 s) on a dataset ('av2' or 'nuscenes'), optionally
    with fields replaced.

    Raises:
        KeyError: the horizon is not 1 or 3, or the dataset is unknown.
    """
    if dataset not in PROTOCOLS_OF_DATASET:
        raise KeyError(f'4D occupancy forecasting is defined on {sorted(PROTOCOLS_OF_DATASET)}, '
                       f'got {dataset!r}')
    protocols = PROTOCOLS_OF_DATASET[dataset]
    if horizon_s not in protocols:
        raise KeyError(f'4D occupancy forecasting has horizons {sorted(protocols)} s, got '
                       f'{horizon_s!r}')
    return replace(protocols[horizon_s], **overrides)
