"""One AV2 log seen from its ``up_lidar``: the frames of the 4D occupancy forecasting benchmark.

The benchmark works in the ``up_lidar`` frame of the t = 0 sweep (SPEC s. 5). AV2 sweeps are
stored in the ego frame at their own timestamp (motion-compensated), so a sweep at time t moves
into the reference frame by::

    ref_lidar_from_lidar_t = lidar_from_ego @ inv(city_from_ego_0) @ city_from_ego_t
                             @ ego_from_lidar

Returns of both lidars are read; all of them are expressed in the up_lidar frame (the
benchmark treats the up_lidar position as the origin of every ray).
"""
from pathlib import Path

from ..datasets.av2_io import (lidar_path, list_lidar_timestamps, read_city_from_ego,
                               read_ego_from_sensor, read_sweep)
from ..datasets.errors import AV2DataError
from ..datasets.log_frames import ReferenceLidarLog
from ..geometry import invert

REFERENCE_LIDAR = 'up_lidar'


class UpLidarLog(ReferenceLidarLog):
    """Poses and ego-free sweeps of one log, in up_lidar frames.

    Args:
        log_dir: ``<root>/sensor/<split>/<log_id>``.

    Raises:
        AV2DataError: missing or unreadable pose / calibration files, or no up_lidar
            extrinsics.
    """

    def __init__(self, log_dir):
        self.log_dir = Path(log_dir)
        self.log_id = self.log_dir.name
        self.lidar_ns = list_lidar_timestamps(self.log_dir)
        self.frame_ns = self.lidar_ns  # the benchmark's frames: every sweep
        pose_ns, city_from_ego = read_city_from_ego(self.log_dir)
        # The table that gasp.datasets.log_frames looks poses up in.
        self.pose_table = dict(
            log_id=self.log_id,
            log_dir=str(self.log_dir),
            pose_timestamps_ns=pose_ns,
            city_from_ego=city_from_ego)
        ego_from_sensor = read_ego_from_sensor(self.log_dir)
        if REFERENCE_LIDAR not in ego_from_sensor:
            raise AV2DataError(
                f'no extrinsics for {REFERENCE_LIDAR!r}',
                log_id=self.log_id,
                path=str(self.log_dir / 'calibration' / 'egovehicle_SE3_sensor.feather'))
        self.ego_from_lidar = ego_from_sensor[REFERENCE_LIDAR]
        self.lidar_from_ego = invert(self.ego_from_lidar)

    def read_sweep_ego(self, timestamp_ns: int):
        return read_sweep(lidar_path(self.log_dir, timestamp_ns), self.log_id)
