"""A run folder keeps its config (`<run>/run_config.toml`, trainer/run_folder.py): phase 2 and a resume need no
config file and no retyped overrides; a value that would change the run is refused naming both values and the
ways on; `--restart` starts over with new values, moving the old config aside."""
from __future__ import annotations

import tomllib

import pytest

from tests.trainer_kit.runs import run_args
from trainer.train import main

SHORT = ["--train.phase1_tokens=1024", "--train.phase2_tokens=512", "--schedule.warmup_tokens=256",
         "--checkpoint.every_steps=2"]  # 4 steps of phase 1, 2 of phase 2


def saved(run) -> dict:
    return tomllib.loads((run / "run_config.toml").read_text())


def last_step(run) -> int:
    return max(int(p.name.split("-")[1]) for p in (run / "checkpoints").glob("step-*"))


@pytest.fixture()
def phase1_run(train_assets, tmp_path):
    run = tmp_path / "run"
    assert main(run_args(train_assets, run, 1, *SHORT)) == 0
    return run


def test_phase2_needs_no_config_file_and_no_retyped_overrides(phase1_run, capsys):
    run = phase1_run
    s = saved(run)
    assert s["run"]["config"] == "trainer/configs/tiny.toml" and "--train.phase1_tokens=1024" in s["run"]["overrides"]
    assert s["train"]["phase1_tokens"] == 1024 and s["optim"]["lr"] == 0.003 and s["data"]["seq_len"] == 32
    capsys.readouterr()
    assert main(["--phase", "2", "--run-dir", str(run), "--log.progress=false"]) == 0
    assert last_step(run) == 6  # 4 steps of phase 1 + 2 of phase 2, as the saved config says
    assert "starting phase 2 from" in capsys.readouterr().out
    assert main(["--phase", "2", "--run-dir", str(run), "--train.phase1_tokens=1024"]) == 0  # the same value: fine


def test_a_conflicting_override_names_both_values_and_the_ways_on(phase1_run, capsys):
    run = phase1_run
    capsys.readouterr()
    assert main(["--phase", "2", "--run-dir", str(run), "--optim.lr=1e-2"]) == 2
    err = capsys.readouterr().err
    assert (f"error: override --optim.lr=1e-2 conflicts with the run's saved config: optim.lr = 0.003 in "
            f"{run}/run_config.toml (from --optim.lr=3e-3 at the run's start), 0.01 asked now") in err, err
    assert "leave the override out to continue with 0.003" in err and "--phase 1 --restart" in err
    assert "another --run-dir" in err
    assert last_step(run) == 4  # nothing was trained


def test_a_config_file_that_disagrees_is_refused_and_can_be_left_out(phase1_run, tmp_path, capsys):
    run = phase1_run
    other = tmp_path / "other.toml"
    other.write_text("[train]\nseed = 7\n[log]\nval_batch_size = 3\n")
    capsys.readouterr()
    assert main([str(other), "--phase", "2", "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"the config file {other} conflicts with the run's saved config: train.seed = 0 in" in err, err
    assert "7 asked now" in err and f"python -m trainer train --phase 2 --run-dir {run}" in err
    # a file that differs only in keys that do not define the run: the saved values are used, and said so
    other.write_text("[log]\nval_batch_size = 3\n")
    assert main([str(other), "--phase", "2", "--run-dir", str(run), "--log.progress=false"]) == 0
    err = capsys.readouterr().err
    assert f"note: {other} differs from the run's saved config" in err and "log.val_batch_size (3 there" in err


def test_phase2_keys_are_free_until_phase2_starts(phase1_run, capsys):
    run = phase1_run
    assert main(["--phase", "2", "--run-dir", str(run), "--train.phase2_tokens=768"]) == 0  # 3 steps, not 2
    assert last_step(run) == 7
    s = saved(run)
    assert s["train"]["phase2_tokens"] == 768 and s["run"]["overrides"][-1] == "--train.phase2_tokens=768"
    capsys.readouterr()
    assert main(["--phase", "2", "--run-dir", str(run), "--train.phase2_tokens=512"]) == 2  # phase 2 has started
    err = capsys.readouterr().err
    assert "train.phase2_tokens = 512 but the run in" in err and "was trained with 768" in err, err


def test_restart_takes_the_new_value_and_sets_the_old_config_aside(phase1_run, capsys):
    run = phase1_run
    assert main(["--phase", "1", "--run-dir", str(run), "--restart", "--optim.lr=1e-2"]) == 0
    assert saved(run)["optim"]["lr"] == 0.01 and saved(run)["train"]["phase1_tokens"] == 1024
    assert tomllib.loads((run / "previous-1/run_config.toml").read_text())["optim"]["lr"] == 0.003
    assert main(["--phase", "2", "--run-dir", str(run), "--log.progress=false"]) == 0


def test_a_run_from_before_the_saved_config_resumes_and_gets_one(train_assets, phase1_run):
    run = phase1_run
    (run / "run_config.toml").unlink()
    assert main(run_args(train_assets, run, 2, *SHORT)) == 0  # as before: the file and the overrides again
    assert saved(run)["train"]["phase2_tokens"] == 512


def test_no_config_for_a_new_run_says_what_to_pass(tmp_path, capsys):
    assert main(["--phase", "1", "--run-dir", str(tmp_path / "new")]) == 2
    err = capsys.readouterr().err
    assert "has no saved run config (run_config.toml)" in err and "trainer/configs/tiny.toml" in err
