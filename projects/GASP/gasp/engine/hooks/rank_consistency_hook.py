"""Check that data-parallel ranks hold identical parameters."""
import json
import os.path as osp

import torch
from mmdet3d.registry import HOOKS
from mmengine.dist import all_gather, get_rank, get_world_size
from mmengine.hooks import Hook


def parameter_fingerprint(model: torch.nn.Module) -> torch.Tensor:
    """(P, 2) float64 per-parameter sum and sum of squares, in registration order."""
    rows = [
        torch.stack([p.detach().double().sum(),
                     p.detach().double().pow(2).sum()]) for p in model.parameters()
    ]
    return torch.stack(rows)


@HOOKS.register_module()
class RankConsistencyHook(Hook):
    """Compare parameter fingerprints across ranks every ``interval`` iterations and at
    the end of training; a mismatch larger than ``atol`` stops training with the ranks
    and parameters that differ. The final check is written to ``rank_consistency.json``
    in the work dir (rank 0).

    Args:
        interval: iterations between checks (0: only at the end).
        atol: tolerated absolute difference of the fingerprints.
    """

    priority = 'VERY_LOW'

    def __init__(self, interval: int = 0, atol: float = 0.0):
        self.interval = interval
        self.atol = atol

    def _check(self, runner) -> dict:
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        device = next(model.parameters()).device
        mine = parameter_fingerprint(model).to(device)
        prints = [p.cpu() for p in all_gather(mine)]
        diffs = [float((p - prints[0]).abs().max()) for p in prints]
        names = [n for n, _ in model.named_parameters()]
        report = dict(
            iter=runner.iter,
            world_size=get_world_size(),
            max_abs_diff=max(diffs),
            identical=max(diffs) <= self.atol,
            num_parameters=len(names))
        if not report['identical']:
            rank = max(range(len(diffs)), key=diffs.__getitem__)
            worst = int((prints[rank] - prints[0]).abs().max(1).values.argmax())
            raise RuntimeError(f'RankConsistencyHook: at iteration {runner.iter} rank {rank} '
                               f'differs from rank 0 by {diffs[rank]:.3e} (first: parameter '
                               f'{names[worst]!r}); check that every rank runs the same model '
                               'and that gradients are all-reduced.')
        return report

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if self.interval and self.every_n_train_iters(runner, self.interval):
            self._check(runner)

    def after_train(self, runner) -> None:
        report = self._check(runner)
        runner.logger.info(f'RankConsistencyHook: parameters identical on '
                           f'{report["world_size"]} ranks (max diff {report["max_abs_diff"]:.1e})')
        if get_rank() == 0:
            with open(osp.join(runner.work_dir, 'rank_consistency.json'), 'w') as f:
                json.dump(report, f, indent=2)
