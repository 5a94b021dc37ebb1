"""Batch GASP samples on the training device: voxelize inputs, sample labelled queries."""
from typing import List, Optional, Sequence

import torch
from mmdet3d.registry import MODELS, TASK_UTILS
from mmengine.model import BaseDataPreprocessor
from mmengine.structures import BaseDataElement

from gasp_ops import bev_voxelize
from ...datasets.collate import unpack_batch
from ...structures import sample_name
from ..samplers.batched_rows import draw_rows


@MODELS.register_module()
class GASPDataPreprocessor(BaseDataPreprocessor):
    """Moves a batch to the device, builds the BEV input grid and the query sets.

    Produces ``inputs`` with:
        ``points``: list of (N_i, 5) past points (x, y, z, intensity, t_rel_s), reference frame;
        ``bev``: (B, T * Z, H, W) binary occupancy, channel ``t * Z + iz`` (see
            :func:`gasp_ops.bev_voxelize`), when ``bev_input`` is True;
        ``voxels``: dict(voxels, num_points, coors) from mmcv's ``Voxelization`` when a
            ``voxel_layer`` is given (for mmdet3d voxel encoders such as PointPillars);
        ``targets``: per head a dict ``queries`` (B, Q, 4) x, y, z, t and ``labels``
            ((B, Q) for occupancy / ego, (B, Q, D) for features).

    Args:
        point_cloud_range: (x_min, y_min, z_min, x_max, y_max, z_max) of the BEV grid (m).
        voxel_size: (x, y, z) cell size of the BEV grid (m).
        num_past_sweeps: number of input sweeps (time slots).
        past_interval_s: spacing of input sweeps; a point at ``t_rel_s`` goes to slot
            ``num_past_sweeps - 1 + round(t_rel_s / past_interval_s)``.
        occupancy_sampler: config of an :class:`OccupancyQuerySampler` (None: no occupancy).
        ego_sampler: config of an :class:`EgoQuerySampler` (None: no ego targets).
        num_feature_queries: feature targets drawn per sample (0: no feature targets).
        bev_input: build the dense ``bev`` grid (needed by BEVResNetFPN).
        voxel_layer: kwargs of ``mmcv.ops.Voxelization`` for mmdet3d voxel encoders.
        non_blocking: copy the batch to the GPU asynchronously. With a ``pin_memory=True``
            dataloader (the configs' default) the copy runs at full PCIe speed and the host goes
            on launching the step; nothing reads the copied tensors on the host.
        copy_stream: on a GPU, copy the batch on a stream of its own, so that the copy runs
            while the GPU still works on the previous step (the host launches ahead of it);
            on the compute stream the copy waits for that step's last kernel and the GPU
            computes nothing for its duration (~4 ms of a 105 ms batch-8 step).
    """

    def __init__(self,
                 point_cloud_range: Sequence[float] = (-70.0, -70.0, -4.5, 70.0, 70.0, 4.5),
                 voxel_size: Sequence[float] = (0.2, 0.2, 0.2),
                 num_past_sweeps: int = 5,
                 past_interval_s: float = 0.2,
                 occupancy_sampler: Optional[dict] = dict(type='OccupancyQuerySampler'),
                 ego_sampler: Optional[dict] = None,
                 num_feature_queries: int = 0,
                 bev_input: bool = True,
                 voxel_layer: Optional[dict] = None,
                 non_blocking: bool = True,
                 copy_stream: bool = True):
        super().__init__(non_blocking=non_blocking)
        self.copy_stream = copy_stream
        self._copy_streams = {}
        self.point_cloud_range = tuple(point_cloud_range)
        self.voxel_size = tuple(voxel_size)
        self.num_past_sweeps = num_past_sweeps
        self.past_interval_s = past_interval_s
        self.occupancy_sampler = (
            TASK_UTILS.build(occupancy_sampler) if occupancy_sampler else None)
        self.ego_sampler = TASK_UTILS.build(ego_sampler) if ego_sampler else None
        self.num_feature_queries = num_feature_queries
        self.bev_input = bev_input
        self.voxel_layer = None
        if voxel_layer is not None:
            from mmcv.ops import Voxelization
            self.voxel_layer = Voxelization(**voxel_layer)

    def forward(self, data: dict, training: bool = False) -> dict:
        # A gasp_collate batch moves as a few packed tensors and is split into per-sample
        # views on the device.
        data = unpack_batch(self.to_device(data))
        points: List[torch.Tensor] = data['inputs']['points']
        samples: List[BaseDataElement] = data['data_samples']
        inputs = dict(points=points)
        if self.bev_input:
            inputs['bev'] = self.voxelize_bev(points)
        if self.voxel_layer is not None:
            inputs['voxels'] = self.voxelize_hard(points)
        inputs['targets'] = self.sample_targets(samples, training)
        return dict(inputs=inputs, data_samples=samples)

    def to_device(self, data: dict) -> dict:
        """``cast_data``, on a copy stream of its own on a GPU (see ``copy_stream``): the
        compute stream waits for the copy, and the copied tensors are marked as used by it
        (so the caching allocator does not hand their memory to the copy stream early)."""
        if not (self.copy_stream and self.device.type == 'cuda' and torch.cuda.is_available()):
            return self.cast_data(data)
        compute = torch.cuda.current_stream(self.device)
        stream = self._copy_streams.get(self.device)
        if stream is None:
            stream = self._copy_streams[self.device] = torch.cuda.Stream(self.device)
        with torch.cuda.stream(stream):
            moved = self.cast_data(data)
        compute.wait_stream(stream)
        for tensor in _device_tensors(moved):
            tensor.record_stream(compute)
        return moved

    def time_slots(self, t_rel_s: torch.Tensor) -> torch.Tensor:
        """(N,) input time slot of each point from its relative time (s)."""
        return (self.num_past_sweeps - 1 + torch.round(t_rel_s / self.past_interval_s)).long()

    def voxelize_bev(self, points: List[torch.Tensor]) -> torch.Tensor:
        flat = torch.cat(points)
        batch_idx = torch.cat([
            torch.full((len(p), ), i, dtype=torch.long, device=flat.device)
            for i, p in enumerate(points)
        ])
        return bev_voxelize(flat, batch_idx, self.time_slots(flat[:, 4]), len(points),
                            self.num_past_sweeps, self.point_cloud_range, self.voxel_size)

    @torch.no_grad()
    def voxelize_hard(self, points: List[torch.Tensor]) -> dict:
        """mmdet3d-style hard voxelization: voxels (M, P, 5), num_points (M,), coors (M, 4)
        with columns (batch, z, y, x)."""
        voxels, coors, num_points = [], [], []
        for i, pts in enumerate(points):
            v, c, n = self.voxel_layer(pts)
            voxels.append(v)
            coors.append(torch.nn.functional.pad(c, (1, 0), value=i))
            num_points.append(n)
        return dict(
            voxels=torch.cat(voxels), coors=torch.cat(coors), num_points=torch.cat(num_points))

    def sample_targets(self, samples: List[BaseDataElement], training: bool = True) -> dict:
        """Labelled queries of every head whose targets the samples carry, each head drawn
        for the whole batch at once.

        Training samples must carry missing rays when the occupancy sampler asks for them;
        evaluation samples without them get queries from the returns only.
        """
        targets = {}
        names = [sample_name(s) or f'sample {i}' for i, s in enumerate(samples)]
        if self.occupancy_sampler is not None and all('rays' in s for s in samples):
            with_missing = all('missing_rays' in s for s in samples)
            targets['occupancy'] = self._pair(
                self.occupancy_sampler.sample_batch(
                    [s.rays.to_dict() for s in samples],
                    missing_rays=([s.missing_rays.to_dict()
                                   for s in samples] if with_missing else None),
                    missing_ray_fraction=(0.0 if not with_missing and not training else None),
                    names=names))
        if self.ego_sampler is not None and all('ego_path' in s for s in samples):
            targets['ego'] = self._pair(
                self.ego_sampler.sample_batch([s.ego_path.to_dict() for s in samples],
                                              [s.ego_footprint for s in samples]))
        if self.num_feature_queries and all('feature_targets' in s for s in samples):
            targets['feature'] = self._pair(
                self._feature_queries([s.feature_targets for s in samples], names))
        return targets

    def _feature_queries(self, feature_targets: List[BaseDataElement], names: List[str]):
        """Draw ``num_feature_queries`` projected points per sample (with replacement) and
        their features: queries (B, Q, 4) x, y, z, t; labels (B, Q, D) float32."""
        counts = [t.points.shape[0] for t in feature_targets]
        for name, count in zip(names, counts):
            if count == 0:
                raise ValueError(f'GASPDataPreprocessor: {name} has no feature targets (no '
                                 'future lidar point projects into a camera); check its '
                                 'feature cache with tools/check_dataset.py')
        device = feature_targets[0].points.device
        rows = draw_rows(counts, self.num_feature_queries, device)

        def cat(key):
            return torch.cat([getattr(t, key) for t in feature_targets])

        queries = torch.cat([cat('points')[rows], cat('times_s')[rows][..., None]], dim=-1)
        return queries.float(), cat('features')[rows].float()

    @staticmethod
    def _pair(pair):
        queries, labels = pair
        return dict(queries=queries, labels=labels)


def _device_tensors(data):
    """The GPU tensors of a batch: in mappings, sequences and data elements."""
    if isinstance(data, torch.Tensor):
        if data.is_cuda:
            yield data
    elif isinstance(data, dict):
        for value in data.values():
            yield from _device_tensors(value)
    elif isinstance(data, (list, tuple)):
        for value in data:
            yield from _device_tensors(value)
    elif isinstance(data, BaseDataElement):
        for value in data.values():
            yield from _device_tensors(value)
