"""Faults for training runs: SIGKILL at a step or inside a checkpoint write, through `trainer.hooks`.

    python -m tests.trainer_kit.faults '{"kill_after_step": 7}' train <trainer train args>
    python -m tests.trainer_kit.faults '{"kill_in_checkpoint": [15, "optimizer.pt"]}' train <args>
    kill_args(spec) + run_args(...)       # the argv prefix for run_cli(..., module="tests.trainer_kit.faults")

The child installs a `KillAt` hook and then runs the trainer's own command line, so the run is exactly a
user's run until the hook fires: it flushes stdout/stderr and sends SIGKILL to its own process.
"""
from __future__ import annotations

import json
import os
import signal
import sys

from trainer import hooks


class KillAt(hooks.Hooks):
    def __init__(self, kill_after_step: int | None = None, kill_in_checkpoint: tuple[int, str] | None = None):
        self.step = kill_after_step
        self.ckpt = tuple(kill_in_checkpoint) if kill_in_checkpoint else None

    @staticmethod
    def _die() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    def after_step(self, step: int) -> None:
        if step == self.step:
            self._die()

    def in_checkpoint(self, step: int, written: str) -> None:
        if self.ckpt == (step, written):
            self._die()


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    hooks.HOOKS = KillAt(**spec)
    from trainer.__main__ import main as trainer_main

    return trainer_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
