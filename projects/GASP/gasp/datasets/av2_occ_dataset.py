"""AV2 occupancy pre-training dataset: one info entry per reference sweep."""
import logging
import os.path as osp
from typing import Any, List, Optional

from mmdet3d.registry import DATASETS, TRANSFORMS
from mmengine.dataset import BaseDataset
from mmengine.fileio import load
from mmengine.logging import print_log

from .av2_infos import INFO_VERSION
from .errors import AV2DataError
from .worker_process import configure_worker_process


@DATASETS.register_module()
class AV2OccDataset(BaseDataset):
    """Samples for GASP/UnO pre-training from an info file of ``tools/create_data.py av2``.

    Each sample the pipeline receives holds the info entry (timestamps of past sweeps,
    future sweeps, the ego path and matched camera frames) plus ``log``: the shared table
    of its log (pose table, calibration, folder), and ``data_root``.

    Args:
        ann_file: info pkl, relative to ``data_root`` or absolute.
        data_root: the folder that contains ``sensor/``.
        pipeline: transforms that load and pack a sample.
        max_samples: keep only the first ``max_samples`` samples (-1 = all); for quick runs.
        on_load_error: what to do when a sample's files cannot be loaded (an
            :class:`AV2DataError` or ``OSError`` from the pipeline): 'raise' (default) or
            'skip': use the next sample instead and record the failure in the replacement's
            metainfo ``load_failures`` (``SkippedSamplesHook`` logs the count). The
            replacement does not depend on random state, so a resumed run skips alike.
        max_skips_in_a_row: with 'skip', give up after this many failing samples in a row.
        worker_process: settings of the dataloader worker processes, applied once in each
            (see :func:`.worker_process.configure_worker_process`: ``nice``,
            ``reserve_cores_per_rank``, ``malloc_pad_mib``); None leaves them as started.
        **kwargs: passed to :class:`mmengine.dataset.BaseDataset`.
    """

    METAINFO = dict(dataset='av2')
    LOAD_ERRORS = (AV2DataError, OSError)

    def __init__(self,
                 ann_file: str,
                 data_root: str,
                 pipeline=(),
                 max_samples: int = -1,
                 on_load_error: str = 'raise',
                 max_skips_in_a_row: int = 16,
                 worker_process: Optional[dict] = None,
                 **kwargs):
        if on_load_error not in ('raise', 'skip'):
            raise ValueError(f"AV2OccDataset: on_load_error must be 'raise' or 'skip', got "
                             f'{on_load_error!r}')
        self.max_samples = max_samples
        self.on_load_error = on_load_error
        self.max_skips_in_a_row = max_skips_in_a_row
        self.num_skipped = 0
        self.worker_process = dict(worker_process or {})
        self.logs = {}
        # Built from mmdet3d's registry, so the dataset works whatever the default scope.
        pipeline = [TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline]
        super().__init__(ann_file=ann_file, data_root=data_root, pipeline=pipeline, **kwargs)

    def load_data_list(self) -> List[dict]:
        if not osp.isfile(self.ann_file):
            raise AV2DataError(
                'info file not found',
                path=self.ann_file,
                fix='create it with `python tools/create_data.py av2 '
                '--root-path <data root> --out-dir <folder>`.')
        infos = load(self.ann_file)
        if not isinstance(infos, dict) or not {'metainfo', 'data_list', 'logs'} <= set(infos):
            raise AV2DataError(
                'not a GASP AV2 info file (needs metainfo, data_list, logs)',
                path=self.ann_file,
                fix='re-create it with tools/create_data.py.')
        version = infos['metainfo'].get('info_version')
        if version != INFO_VERSION:
            raise AV2DataError(
                f'info file version {version}, this code reads {INFO_VERSION}',
                path=self.ann_file,
                fix='re-create it with tools/create_data.py.')
        for key, value in infos['metainfo'].items():
            self._metainfo.setdefault(key, value)
        self.logs = infos['logs']
        data_list = infos['data_list']
        if self.max_samples >= 0:
            data_list = data_list[:self.max_samples]
        return data_list

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        info['log'] = self.logs[info['log_id']]
        info['data_root'] = self.data_root
        return info

    def prepare_data(self, idx: int) -> Any:
        """Run the pipeline on sample ``idx``, following ``on_load_error`` when it fails."""
        if self.worker_process:
            configure_worker_process(**self.worker_process)
        if self.on_load_error == 'raise':
            try:
                return super().prepare_data(idx)
            except self.LOAD_ERRORS as err:
                err.args = (f'{err} [sample {idx} of {self.ann_file}; to skip samples that '
                            "fail to load, set the dataset's on_load_error='skip']", )
                raise
        failures = []
        for attempt in range(self.max_skips_in_a_row + 1):
            index = (idx + attempt) % len(self)
            try:
                data = super().prepare_data(index)
            except self.LOAD_ERRORS as err:
                info = super().get_data_info(index)
                failures.append(
                    dict(
                        sample_idx=index,
                        log_id=info.get('log_id'),
                        timestamp_ns=info.get('timestamp_ns'),
                        error=str(err)))
                self.num_skipped += 1
                print_log(
                    f'AV2OccDataset: skipped sample {index} ({err}); {self.num_skipped} '
                    'skipped in this process',
                    logger='current',
                    level=logging.WARNING)
                continue
            if failures and data is not None:
                sample = data.get('data_samples') if isinstance(data, dict) else None
                if hasattr(sample, 'set_metainfo'):
                    sample.set_metainfo(dict(load_failures=failures))
            return data
        raise AV2DataError(
            f'{len(failures)} samples in a row failed to load, starting at sample {idx} (last: '
            f'{failures[-1]["error"]})',
            path=self.ann_file,
            fix='check the data with `python tools/check_dataset.py`.')
