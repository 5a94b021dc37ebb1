"""Save the random states with every checkpoint and restore them on resume, so that a
killed and resumed run draws the same random numbers as an uninterrupted one."""
import functools
import logging
import random
from typing import Dict, List, Optional

import numpy as np
import torch
from mmdet3d.registry import HOOKS
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log

CHECKPOINT_KEY = 'random_states'


def find_generators(root) -> Dict[str, torch.Generator]:
    """Every ``torch.Generator`` held by a module of ``root`` (or by a plain object a module
    holds, such as a query sampler of the data preprocessor), by dotted name."""
    found = {}
    for module_name, module in root.named_modules():
        for attr, value in vars(module).items():
            prefix = f'{module_name}.{attr}' if module_name else attr
            if isinstance(value, torch.Generator):
                found[prefix] = value
            elif not isinstance(value, torch.nn.Module) and hasattr(value, '__dict__'):
                for inner, held in vars(value).items():
                    if isinstance(held, torch.Generator):
                        found[f'{prefix}.{inner}'] = held
    return found


def capture_random_states(generators: Dict[str, torch.Generator]) -> dict:
    """Python, numpy, torch (CPU and CUDA) and named generator states, in types that
    ``torch.load(weights_only=True)`` reads."""
    kind, key, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    return dict(
        python=random.getstate(),
        numpy=dict(
            kind=kind,
            key=torch.from_numpy(key.astype(np.int64)),
            pos=int(pos),
            has_gauss=int(has_gauss),
            gauss=float(gauss)),
        torch=torch.get_rng_state(),
        cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        generators={
            name: gen.get_state()
            for name, gen in generators.items()
        })


def restore_random_states(states: dict, generators: Dict[str, torch.Generator]) -> None:
    """Inverse of :func:`capture_random_states`.

    Raises:
        KeyError: a generator of the checkpoint is not in the model (or the reverse).
    """
    random.setstate(states['python'])
    num = states['numpy']
    np.random.set_state((num['kind'], num['key'].numpy().astype(np.uint32), num['pos'],
                         num['has_gauss'], num['gauss']))
    torch.set_rng_state(states['torch'])
    if states['cuda'] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states['cuda'])
    if set(states['generators']) != set(generators):
        raise KeyError(f'the checkpoint has random generators {sorted(states["generators"])}, '
                       f'the model has {sorted(generators)}')
    for name, gen in generators.items():
        gen.set_state(states['generators'][name])


class _RestoreAfterSkip:
    """Stands in for the loop's data iterator while it skips the batches trained before the
    checkpoint, then restores the random states and puts the real iterator back."""

    def __init__(self, loop, skip: int, restore):
        self.loop, self.iterator, self.skip, self.restore = (loop, loop.dataloader_iterator, skip,
                                                             restore)

    def __next__(self):
        if self.skip == 0:
            self.restore()
            self.loop.dataloader_iterator = self.iterator
            return next(self.iterator)
        self.skip -= 1
        return next(self.iterator)


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Puts the random states of every rank into each checkpoint and restores them on
    resume, at the point where the interrupted run drew its next batch.

    Saved (``checkpoint['random_states']``, one entry per rank): python ``random``, numpy's
    global generator, torch's CPU and CUDA generators, and every ``torch.Generator`` held by
    the model (e.g. a query sampler's). On resume, mmengine's ``IterBasedTrainLoop`` replays
    the data order by drawing the batches it already trained (the sampler order depends only
    on the seed and epoch); the states are restored after that replay, right before the
    first new batch is drawn. The data order needs the same seed: a sampler built with
    another seed is given the checkpoint's. Validation is made neutral: the states are put
    back after each validation, so validating (or not) does not change training.
    """

    priority = 'VERY_HIGH'

    def __init__(self):
        self._pending: Optional[dict] = None
        self._before_val: Optional[dict] = None
        self._gathered: Optional[tuple] = None  # (iteration, states of every rank)

    def _generators(self, runner) -> Dict[str, torch.Generator]:
        return find_generators(runner.model)

    def _capture(self, runner) -> dict:
        return self._before_val or capture_random_states(self._generators(runner))

    # mmengine's ``Runner.save_checkpoint`` is ``@master_only``: ``before_save_checkpoint``
    # runs on rank 0 alone, where a collective would wait forever for the other ranks. The
    # states of every rank are therefore gathered by all ranks just before a checkpoint
    # hook (lower priority than this one) saves, at the iterations or epochs it saves.
    def _saves_now(self, runner, by_epoch: bool) -> bool:
        for hook in runner.hooks:
            if not isinstance(hook, CheckpointHook) or hook.by_epoch != by_epoch:
                continue
            if by_epoch:
                due = hook.every_n_epochs(runner, hook.interval, hook.save_begin) or (
                    hook.save_last and hook.is_last_train_epoch(runner))
            else:
                due = hook.every_n_train_iters(runner, hook.interval, hook.save_begin) or (
                    hook.save_last and hook.is_last_train_iter(runner))
            if due:
                return True
        return False

    def _gather_if_saving(self, runner, by_epoch: bool) -> None:
        if get_world_size() > 1 and self._saves_now(runner, by_epoch):
            self._gathered = (runner.iter, all_gather_object(self._capture(runner)))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._gather_if_saving(runner, by_epoch=False)

    def after_train_epoch(self, runner) -> None:
        self._gather_if_saving(runner, by_epoch=True)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if get_world_size() == 1:
            per_rank = [self._capture(runner)]
        elif self._gathered is not None and self._gathered[0] == runner.iter:
            per_rank = self._gathered[1]
        else:  # a save no checkpoint hook announced (e.g. a user's own): rank 0's states only
            print_log(
                'RandomStateHook: this checkpoint holds only rank 0\'s random states; '
                'a run resumed from it will not repeat the other ranks exactly',
                logger='current',
                level=logging.WARNING)
            per_rank = [self._capture(runner)]
        checkpoint[CHECKPOINT_KEY] = per_rank

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        per_rank: Optional[List[dict]] = checkpoint.get(CHECKPOINT_KEY)
        if not per_rank:
            print_log(
                'RandomStateHook: the checkpoint has no random states (written without '
                'this hook); the resumed run will not repeat the interrupted one exactly',
                logger='current',
                level=logging.WARNING)
            return
        if len(per_rank) != get_world_size():
            print_log(
                f'RandomStateHook: the checkpoint holds {len(per_rank)} ranks, this run has '
                f'{get_world_size()}; the random draws will differ',
                logger='current',
                level=logging.WARNING)
        self._pending = per_rank[min(get_rank(), len(per_rank) - 1)]
        self._use_checkpoint_seed(runner, checkpoint['meta'].get('seed'))

    @staticmethod
    def _use_checkpoint_seed(runner, seed: Optional[int]) -> None:
        loop = runner.train_loop
        dataloader = getattr(loop, 'dataloader', None)
        sampler = getattr(dataloader, 'sampler', None)
        if seed is None or getattr(sampler, 'seed', seed) == seed:
            return
        print_log(
            f'RandomStateHook: data order from the checkpoint seed {seed} (the sampler had '
            f'{sampler.seed})',
            logger='current',
            level=logging.WARNING)
        sampler.seed = seed
        init_fn = dataloader.worker_init_fn
        if isinstance(init_fn, functools.partial) and 'seed' in init_fn.keywords:
            dataloader.worker_init_fn = functools.partial(init_fn.func, *init_fn.args,
                                                          **dict(init_fn.keywords, seed=seed))
        if hasattr(loop, 'dataloader_iterator'):
            loop.dataloader_iterator = type(loop.dataloader_iterator)(dataloader)

    def before_train_epoch(self, runner) -> None:
        if self._pending is None:
            return
        states, self._pending = self._pending, None

        def restore():
            restore_random_states(states, self._generators(runner))

        loop = runner.train_loop
        if hasattr(loop, 'dataloader_iterator') and runner.iter > 0:
            loop.dataloader_iterator = _RestoreAfterSkip(loop, runner.iter, restore)
        else:
            restore()

    def before_val(self, runner) -> None:
        self._before_val = capture_random_states(self._generators(runner))

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            restore_random_states(self._before_val, self._generators(runner))
            self._before_val = None
