"""Pack a benchmark frame: the model's inputs and query rays, the metric's ground truth."""
from mmdet3d.registry import TRANSFORMS

from ..datasets.transforms.pack_gasp_inputs import PackGASPInputs, _to_tensor


@TRANSFORMS.register_module()
class PackOccForecastingInputs(PackGASPInputs):
    """:class:`PackGASPInputs` plus the fields of a 4D occupancy forecasting frame.

    The data sample gains ``query_rays`` (tensors, moved to the device with the batch), the
    ground truth ``origins``, ``directions`` and ``gt_depths`` (lists of F arrays over the
    future frames, left on the CPU for :class:`OccForecastingMetric`) and the metainfo
    ``horizon``.
    """

    def transform(self, results: dict) -> dict:
        packed = super().transform(results)
        sample = packed['data_samples']
        sample.set_metainfo(dict(horizon=results['horizon']))
        sample.set_field(_to_tensor(results['query_rays']), 'query_rays')
        for key, value in results['occ_queries'].items():
            sample.set_field(list(value), key)
        return packed
