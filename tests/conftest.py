"""Fixtures shared by the test modules. Each part of the project keeps its own section."""
from __future__ import annotations

import pytest


# --- trainer fixtures -----------------------------------------------------------------------------------------
# Helpers live in tests/trainer_kit/ (benches and child processes import them too); test modules get them
# through these fixtures or import the kit, never another test module.

@pytest.fixture(scope="session")
def train_assets(tmp_path_factory):
    """A tiny run's inputs (``tests.trainer_kit.runs.make_assets``): corpus/, model.toml, m1.toml, m2.toml.
    Read-only: copy what a test must change."""
    from tests.trainer_kit.runs import make_assets

    return make_assets(tmp_path_factory.mktemp("train_assets"))


@pytest.fixture(scope="session")
def reference_run(train_assets, tmp_path_factory):
    """One uninterrupted phase 1 + phase 2 of the tiny run, in this process: the run every interrupted,
    faulted or resumed run must equal. Read-only."""
    from tests.trainer_kit.runs import run_args
    from trainer.train import main

    run = tmp_path_factory.mktemp("reference") / "run"
    assert main(run_args(train_assets, run, 1)) == 0
    assert main(run_args(train_assets, run, 2)) == 0
    return run
