"""Fault injection for training: random SIGKILLs (at a step, or inside a checkpoint write) and random I/O
errors (ENOSPC, EIO, EROFS, EACCES at a random write operation), then a plain rerun. Every trial checks the
exit code (-9 for a kill; 2 with the errno named, or 0 only for a run that really finished, for an I/O
error), that no checkpoint folder under a trusted name is half-written, and that after the rerun the weights
and optimizer state are byte-identical to an uninterrupted run and every step is logged once.

    pytest tests/test_faults_train.py                                     # 4 trials (~1 min on 2 cores)
    JETMOE_FAULT_TRIALS=40 JETMOE_FAULT_SEED=7 pytest tests/test_faults_train.py     # a longer soak

Kills run the trainer in its own process with `tests.trainer_kit.faults` hooks; I/O errors run it in this
process on a `tests.trainer_kit.disk.FailingDisk`.
"""
import errno
import os
import random

import pytest

from tests.trainer_kit.disk import FailingDisk
from tests.trainer_kit.runs import run_args, run_cli, train_records
from trainer import checkpoint as ckpt
from trainer.train import main

TRIALS = int(os.environ.get("JETMOE_FAULT_TRIALS", "4"))
SEED = int(os.environ.get("JETMOE_FAULT_SEED", "0"))
STEPS = 10
# 10 steps, a checkpoint every 3 (and at the end), the newest 2 kept: kills and errors land between, during
# and after checkpoint writes, and resumes start from several places.
SHAPE = [f"--train.phase1_tokens={STEPS * 256}", "--checkpoint.every_steps=3", "--checkpoint.keep_last=2"]
KINDS = ("kill_after_step", "kill_in_checkpoint", "io_error")
CODES = (errno.ENOSPC, errno.EIO, errno.EROFS, errno.EACCES)


@pytest.fixture(scope="module")
def uninterrupted(train_assets, tmp_path_factory):
    """The run every trial must end as, made on a FailingDisk that only counts its write operations."""
    run = tmp_path_factory.mktemp("faults_ref") / "run"
    with pytest.MonkeyPatch.context() as mp:
        disk = FailingDisk(run, at=None).install(mp)
        assert main(run_args(train_assets, run, 1, *SHAPE)) == 0
    final = ckpt.step_dir(run, STEPS)
    return {"ops": disk.ops, "model": (final / "model.safetensors").read_bytes(),
            "optimizer": (final / "optimizer.pt").read_bytes(),
            "losses": [(r["step"], r["loss"], r["grad_norm"]) for r in train_records(run)]}


def trusted_checkpoints_verify(run) -> bool:
    return all(ckpt.verify(path) is None for _, path in ckpt.list_checkpoints(run))


@pytest.mark.parametrize("trial", range(TRIALS))
def test_fault_then_rerun_ends_as_the_uninterrupted_run(train_assets, uninterrupted, tmp_path, capsys, trial):
    rng = random.Random(SEED * 100_003 + trial)
    kind = KINDS[trial % len(KINDS)] if trial < len(KINDS) else rng.choice(KINDS)
    run = tmp_path / "run"
    args = run_args(train_assets, run, 1, *SHAPE)
    if kind == "kill_after_step":
        step = rng.randrange(1, STEPS)
        r = run_cli(args, faults={"kill_after_step": step})
        assert r.returncode == -9, r.stderr[-2000:]
        assert train_records(run)[-1]["step"] == step
    elif kind == "kill_in_checkpoint":
        step, written = rng.choice([3, 6, 9, STEPS]), rng.choice(["model.safetensors", "optimizer.pt"])
        r = run_cli(args, faults={"kill_in_checkpoint": [step, written]})
        assert r.returncode == -9, r.stderr[-2000:]
        assert not ckpt.step_dir(run, step).exists()             # the half-written folder has a temp name
    else:
        code, at = rng.choice(CODES), rng.randrange(1, uninterrupted["ops"] + 1)
        with pytest.MonkeyPatch.context() as mp:
            disk = FailingDisk(run, code, at=at).install(mp)
            rc = main(args)
        err = capsys.readouterr().err
        assert disk.failed and rc in (0, 2), (code, at, rc, err[-2000:])
        assert "Traceback" not in err
        if rc == 2:
            assert f"({errno.errorcode[code]})" in err and str(run) in err, (code, at, err[-2000:])
        else:  # a failure the run may shrug off (an fsync of a folder): then it really finished
            assert (ckpt.step_dir(run, STEPS) / "model.safetensors").read_bytes() == uninterrupted["model"]
    assert trusted_checkpoints_verify(run)                      # nothing half-written under a trusted name
    assert main(args) == 0                                      # the rerun, on a healthy disk
    final = ckpt.step_dir(run, STEPS)
    assert (final / "model.safetensors").read_bytes() == uninterrupted["model"], kind
    assert (final / "optimizer.pt").read_bytes() == uninterrupted["optimizer"], kind
    assert [(r["step"], r["loss"], r["grad_norm"]) for r in train_records(run)] == uninterrupted["losses"]
