"""Hints that keep the recipe intact: a batch that does not split over the ranks is fixed with the micro-batch
(the batch only as a last resort), and a CPU run prints its own estimate, not a GPU cost table."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from trainer.build import batch_hint, plan_steps
from trainer.config import ConfigError, load_run_config


def _error(ranks: int, *overrides: str) -> str:
    cfg = load_run_config("trainer/configs/tiny.toml", list(overrides))
    with pytest.raises(ConfigError) as e:
        plan_steps(cfg, 1, SimpleNamespace(world_size=ranks))
    return str(e.value)


def test_two_ranks_keep_the_batch_and_change_the_micro_batch():
    # tiny: 2048 tokens = 16 sequences of 128, micro-batch 16: on 2 ranks each gets 8
    msg = _error(2)
    assert "keep the recipe's batch and use --data.micro_batch=8" in msg, msg
    assert "--train.batch_tokens" not in msg
    cfg = load_run_config("trainer/configs/tiny.toml", ["--data.micro_batch=8"])
    steps = plan_steps(cfg, 1, SimpleNamespace(world_size=2))  # the hint, followed, works
    assert steps.accum == 1


def test_micro_batches_that_divide_are_listed_largest_first():
    assert batch_hint(16, 3, 2, 128) == ("keep the recipe's batch and use --data.micro_batch=2 (each rank gets 8 "
                                         "sequences per step; 1 also divides them and uses less memory)")
    assert "--data.micro_batch=8 (each rank gets 8 sequences per step; 4, 2, 1 also divide them" in \
        batch_hint(16, 16, 2, 128)


def test_the_batch_only_when_no_micro_batch_can():
    msg = _error(3)  # 16 sequences cannot go evenly to 3 ranks, whatever the micro-batch
    assert "16 sequences do not split over 3 ranks: run on 1, 2, 4, 8 ranks" in msg, msg
    assert "or, changing the recipe, --train.batch_tokens=" in msg and "--data.micro_batch" not in msg


def test_cpu_plan_prints_the_cpu_estimate_not_a_gpu_cost_table(train_assets, tmp_path, capsys):
    from tests.trainer_kit.runs import BATCH_TOKENS, run_args
    from trainer.train import main

    assert main(run_args(train_assets, tmp_path / "run", 1, f"--train.phase1_tokens={4 * BATCH_TOKENS}",
                     f"--schedule.warmup_tokens={BATCH_TOKENS}")) == 0
    out = capsys.readouterr().out
    assert "this machine (CPU)" in out, out
    for gpu_table in ("GPU-h", "tok/s/GPU", "cost $", "/GPU-hour"):
        assert gpu_table not in out, out
