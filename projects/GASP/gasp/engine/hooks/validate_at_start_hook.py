"""Validate once before training, so logs show the untrained field next to the trained one."""
from mmdet3d.registry import HOOKS
from mmengine.hooks import Hook


@HOOKS.register_module()
class ValidateAtStartHook(Hook):
    """Run the validation loop before the first training iteration of a fresh run.

    The metrics are kept in ``runner.message_hub`` under ``start/<metric>`` (a resumed run
    skips this: its starting point is not the initialization).
    """

    priority = 'LOW'

    def before_train(self, runner) -> None:
        if runner.iter > 0 or getattr(runner, 'val_loop', None) is None:
            return
        runner.logger.info('ValidateAtStartHook: evaluating the initialized model')
        metrics = runner.val_loop.run()
        for name, value in metrics.items():
            runner.message_hub.update_info(f'start/{name}', value)
