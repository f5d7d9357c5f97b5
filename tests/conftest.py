"""Fixtures shared by the test modules. Each part of the project keeps its own section."""
from __future__ import annotations

import pytest


# --- corpus builder fixtures ----------------------------------------------------------------------------------
# Helpers live in tests/corpus_kit/ (child processes import them too); test modules get them through these
# fixtures or import the kit, never another test module.

@pytest.fixture()
def fake_mirror(tmp_path):
    """A mirror of the fake sources (``tests.corpus_kit.fake_sources``) under ``tmp_path/mirror``."""
    from tests.corpus_kit.fake_sources import make_mirror

    return make_mirror(tmp_path)


@pytest.fixture()
def fake_build(tmp_path, fake_mirror):
    """A finished download + format build of the fake sources: (root, config path, outcomes)."""
    from pipeline.dag import build
    from tests.corpus_kit.fake_sources import REGISTRY, write_config

    cfg = write_config(tmp_path, fake_mirror)
    outcomes = build(cfg, registry=REGISTRY, progress=False)
    return tmp_path, cfg, outcomes


@pytest.fixture()
def fake_hub(tmp_path, monkeypatch):
    """The fake hub (``tests.corpus_kit.fake_hub``) serving the fake sources' mirror: (server, mirror)."""
    from tests.corpus_kit.fake_hub import serve
    from tests.corpus_kit.fake_sources import make_mirror

    mirror = make_mirror(tmp_path / "served")
    # keep huggingface_hub's caches inside the test folder
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with serve(mirror) as server:
        yield server, mirror


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """The tiny corpus of ``tests.corpus_kit.tiny_corpus`` with small parts (a source spans several), built
    once per session: treat it as read-only (copy it to change it)."""
    from tests.corpus_kit.tiny_corpus import SMALL_PARTS, build_tiny_corpus

    return build_tiny_corpus(tmp_path_factory.mktemp("tiny"), **SMALL_PARTS)


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


@pytest.fixture(scope="session")
def chat_assets(tmp_path_factory):
    """The alignment tests' inputs (``tests.trainer_kit.chat.make_chat_assets``): tokenizer.json, shards/ (the
    chat corpus, built by ``make corpus CORPUS=chat_sample``), base/ (a tiny model's checkpoint). Read-only."""
    from tests.trainer_kit.chat import make_chat_assets

    return make_chat_assets(tmp_path_factory.mktemp("chat_assets"))


@pytest.fixture(scope="session")
def chat_runs(chat_assets, tmp_path_factory):
    """One uninterrupted SFT run from base/, then DPO from it (``align_args``), in this process: what every
    interrupted or sharded run must equal. Read-only: (sft run folder, dpo run folder)."""
    from tests.trainer_kit.chat import align_args
    from trainer.align.run import dpo_main, sft_main

    root = tmp_path_factory.mktemp("chat_runs")
    assert sft_main(align_args(chat_assets, root / "sft", "sft")) == 0
    assert dpo_main(align_args(chat_assets, root / "dpo", "dpo", f"--init.checkpoint={root / 'sft'}")) == 0
    return root / "sft", root / "dpo"
