"""Points where a test may stop or break a training run: the fault-injection tests install a `Hooks` here.

    from trainer import hooks
    class KillAt(hooks.Hooks):
        def after_step(self, step): ...                       # e.g. os.kill(os.getpid(), signal.SIGKILL)
    hooks.HOOKS = KillAt()                                    # then run trainer.train.main([...])

Production runs keep the default, whose methods do nothing. `tests/faults.py` holds the ones the tests use.
"""
from __future__ import annotations


class Hooks:
    def after_step(self, step: int) -> None:
        """Optimizer step `step` is done and its metrics line written (before val and checkpoint)."""

    def in_checkpoint(self, step: int, written: str) -> None:
        """File `written` of the step-`step` checkpoint is in its temp folder; the folder is not in place yet."""


HOOKS = Hooks()
