"""Load the future lidar rays of a sample: the occupancy targets, not yet queries."""
from typing import Optional, Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet3d.registry import TRANSFORMS

from ...geometry import outside_box_xy, transform_points
from ..av2_io import xyz_rows_float32
from ..log_frames import lidar_index, lidar_names, read_log_sweep, ref_from_ego_at
from ..subsampling import random_rows, sample_rng, sorted_rows
from .load_past_sweeps import NS_PER_S


@TRANSFORMS.register_module()
class LoadFutureRays(BaseTransform):
    """Turn each future sweep into rays in the reference frame.

    A return with ``laser_number < 32`` came from the log's first lidar (AV2 ``up_lidar``,
    nuScenes ``LIDAR_TOP``), otherwise from its second (AV2 ``down_lidar``); its ray starts
    at that lidar's position at the sweep time,
    ``origin_ref = ref_from_ego_t @ ego_from_lidar[:3, 3]``, and ends at the return.

    Adds ``rays``, a dict of arrays over R rays:
        ``origins`` (R, 3) float32, reference frame (m);
        ``directions`` (R, 3) float32 unit vectors;
        ``depths`` (R,) float32, |point - origin| (m);
        ``times_s`` (R,) float32, sweep time minus reference time (> 0);
        ``sweep_index`` (R,) int16, index into ``future_timestamps_ns``.

    Args:
        ego_box_xy: ego-vehicle box in its own frame; returns inside are dropped.
        max_rays_per_sweep: keep a random subset of this many rays per sweep (None: all).
        min_depth: drop returns closer than this to their lidar (m).
    """

    def __init__(self,
                 ego_box_xy: Sequence[float] = (-1.25, -1.2, 4.1, 1.2),
                 max_rays_per_sweep: Optional[int] = None,
                 min_depth: float = 0.5):
        self.ego_box_xy = ego_box_xy
        self.max_rays_per_sweep = max_rays_per_sweep
        self.min_depth = min_depth

    def _offsets(self, xyz_ego, lidar_id, lidar_pos_ego):
        """Rays of returns: ``offsets_ego`` (N, 3) float32 (return minus its lidar's
        position), their squared lengths (N,), and the (N,) mask of the valid ones (outside
        the ego box and at least ``min_depth`` away)."""
        # np.take: fancy indexing of the (L, 3) positions is 4x slower.
        offsets_ego = xyz_ego - np.take(lidar_pos_ego, lidar_id, axis=0)
        depth_sq = np.einsum('ij,ij->i', offsets_ego, offsets_ego)
        valid = outside_box_xy(xyz_ego, self.ego_box_xy) & (depth_sq >= self.min_depth**2)
        return offsets_ego, depth_sq, valid

    def _select_rays(self, sweep, log, lidar_pos_ego, rng) -> tuple:
        """The sweep's valid returns: all of them, or a uniform random subset of
        ``max_rays_per_sweep``, in file order.

        For the subset, a random ordered draw of 1.25x that many rows is filtered and its
        first valid ones kept (a uniform subset of the valid returns, without testing every
        point of a 100k-point sweep); if the draw holds too few valid rows, all are tested.

        Returns:
            the selected ``rows`` (R,) in ascending order, with their ``lidar_id`` (R,),
            ``offsets_ego`` (R, 3) float32 and squared lengths (R,), as :meth:`_offsets`
            computed them for the test.
        """
        xyz_ego, lasers = sweep['xyz_ego'], sweep['laser_number']
        count, limit = len(xyz_ego), self.max_rays_per_sweep
        if limit is not None and count > limit:
            draw = rng.choice(count, min(count, int(limit * 1.25) + 16), replace=False)
            lidar_id = lidar_index(log, lasers[draw])
            offsets_ego, depth_sq, valid = self._offsets(
                xyz_rows_float32(xyz_ego, draw), lidar_id, lidar_pos_ego)
            first = np.flatnonzero(valid)[:limit]  # positions in the draw
            if len(first) == limit:
                kept = draw[first]
                # File order through a mask; each row's position in the draw through a
                # row -> position table (only the kept rows' slots are written and read).
                rows = sorted_rows(kept, count)
                position = np.empty(count, np.int32)
                position[kept] = first
                return (rows, ) + self._take(position[rows], lidar_id, offsets_ego, depth_sq)
        lidar_id = lidar_index(log, lasers)
        offsets_ego, depth_sq, valid = self._offsets(
            xyz_ego.astype(np.float32), lidar_id, lidar_pos_ego)
        keep = np.flatnonzero(valid)
        rows = keep[random_rows(len(keep), limit, rng)]
        return (rows, ) + self._take(rows, lidar_id, offsets_ego, depth_sq)

    @staticmethod
    def _take(picks, lidar_id, offsets_ego, depth_sq) -> tuple:
        return (np.take(lidar_id, picks), np.take(offsets_ego, picks,
                                                  axis=0), np.take(depth_sq, picks))

    def transform(self, results: dict) -> dict:
        log = results['log']
        stamps = results['future_timestamps_ns']
        ref_from_ego = ref_from_ego_at(log, stamps, results['timestamp_ns'])
        lidar_pos_ego = np.stack([log['ego_from_lidar'][name][:3, 3]
                                  for name in lidar_names(log)]).astype(np.float32)
        rng = sample_rng()
        sweeps = [
            read_log_sweep(results, stamp, memo=True, fields=('laser_number', )) for stamp in stamps
        ]
        selected = [self._select_rays(sweep, log, lidar_pos_ego, rng) for sweep in sweeps]
        # One output array per field, each sweep written into its rows.
        count = sum(len(rows) for rows, _, _, _ in selected)
        out = dict(
            origins=np.empty((count, 3), np.float32),
            directions=np.empty((count, 3), np.float32),
            depths=np.empty(count, np.float32),
            times_s=np.empty(count, np.float32),
            sweep_index=np.empty(count, np.int16))
        start = 0
        for k, (stamp, (rows, lidar_id, offsets_ego, depth_sq)) in enumerate(zip(stamps, selected)):
            span = slice(start, start + len(rows))
            start += len(rows)
            depth = np.sqrt(depth_sq)
            # Rigid motion: depths are frame-free, directions only rotate.
            rotation = ref_from_ego[k, :3, :3].astype(np.float32)
            lidar_pos_ref = transform_points(ref_from_ego[k], lidar_pos_ego)
            np.take(lidar_pos_ref, lidar_id, axis=0, out=out['origins'][span])
            # Normalised in place, column by column: an (R, 3) / (R, 1) broadcast is 6x slower.
            for axis in range(3):
                offsets_ego[:, axis] /= depth
            np.matmul(offsets_ego, rotation.T, out=out['directions'][span])
            out['depths'][span] = depth
            out['times_s'][span] = (stamp - results['timestamp_ns']) / NS_PER_S
            out['sweep_index'][span] = k
        results['rays'] = out
        return results
