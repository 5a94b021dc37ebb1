"""Pack a downstream sample: past points as inputs, the task labels on the data sample."""
from typing import Sequence

from mmdet3d.registry import TRANSFORMS

from ...datasets.transforms import PackGASPInputs


@TRANSFORMS.register_module()
class PackDownstreamInputs(PackGASPInputs):
    """:class:`PackGASPInputs` with the task's label keys instead of GASP's targets.

    Args:
        keys: results keys moved onto the data sample as tensors, e.g. ``('bev_semantics',)``,
            ``('map_raster',)``, ``('semantic_queries', 'semantic_labels')``,
            ``('ego_waypoints',)``.
    """

    def __init__(self, keys: Sequence[str]):
        self.TARGET_KEYS = tuple(keys)

    def transform(self, results: dict) -> dict:
        missing = [k for k in self.TARGET_KEYS if k not in results]
        if missing:
            raise KeyError(f'PackDownstreamInputs: {missing} not made by the pipeline (log '
                           f'{results.get("log_id")}, timestamp_ns {results.get("timestamp_ns")}); '
                           'add the label transform before packing')
        return super().transform(results)
