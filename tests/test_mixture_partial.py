"""The paper's mixtures on a corpus built from some of the sources: an error that says how to renormalise, and
the explicit option (`renormalise = true`, `plan --renormalise`, `--data.renormalise=true`) that drops what is
missing and prints what it did. Phase 1 reads phase 2's mixture before its first step; a missing corpus names
the command that builds it."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.trainer_kit.corpus import make_corpus
from tests.trainer_kit.runs import MODEL
from trainer.data import Corpus, MixtureError, load_mixture
from trainer.data.plan import main as plan_main
from trainer.train import main as train_main

REPO = Path(__file__).resolve().parents[1]
FOUR = {"refinedweb": 12_000, "starcoder": 6_000, "pile_arxiv": 2_000, "ultrachat": 2_000}


@pytest.fixture(scope="module")
def four(tmp_path_factory):
    """A corpus of 4 of the recipe's 22 sources."""
    return make_corpus(tmp_path_factory.mktemp("four"), FOUR, vocab=512)


def test_without_the_option_the_error_says_how_to_enable_it(four):
    with pytest.raises(MixtureError) as e:
        load_mixture(REPO / "mixtures/phase1.toml", Corpus.open(four))
    msg = str(e.value)
    assert "mixtures/phase1.toml:" in msg and "does not have" in msg
    assert "`renormalise = true` in the mixture file" in msg and "`--renormalise` for `trainer plan`" in msg
    assert "`--data.renormalise=true` for `trainer train`" in msg


def test_plan_renormalise_drops_what_is_missing_and_prints_the_new_shares(four, capsys):
    assert plan_main([str(REPO / "mixtures/phase2.toml"), "--corpus", str(four), "--tokens", "1e6",
                      "--renormalise"]) == 0
    out = capsys.readouterr().out
    head = out.splitlines()[0]
    assert head.startswith("mixture phase2 (") and "renormalised: dropped 18 source(s): " in head
    assert "dolma_pes2o (weight 1, not in the corpus)" in head
    assert "magicoder_oss (group code_sft (weight 3.8), not in the corpus)" in head
    # refinedweb 39.8, starcoder 19.6, pile_arxiv 1.0, nl_sft 7.3 (all of it to ultrachat, the group's one member)
    total = 39.8 + 19.6 + 1.0 + 7.3
    assert f"refinedweb {100 * 39.8 / total:.2f}%" in out.splitlines()[1]
    assert f"ultrachat {100 * 7.3 / total:.2f}%" in out.splitlines()[1]
    assert plan_main([str(REPO / "mixtures/phase2.toml"), "--corpus", str(four), "--tokens", "1e6", "--renormalise",
                      "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert sum(r["share"] for r in data["rows"]) == pytest.approx(1.0)
    assert {r["source"] for r in data["rows"]} == set(FOUR) and len(data["dropped"]) == 18


def test_the_mixture_file_key(four, tmp_path):
    text = (REPO / "mixtures/phase1.toml").read_text()
    (tmp_path / "p1.toml").write_text("renormalise = true\n" + text)
    mix = load_mixture(tmp_path / "p1.toml", Corpus.open(four))
    assert set(mix.shares) == {"refinedweb", "starcoder", "pile_arxiv"}   # ultrachat has no phase-1 weight
    assert mix.shares["refinedweb"] == pytest.approx(64 / 90)
    (tmp_path / "bad.toml").write_text("renormalise = 1\n[sources]\nrefinedweb = 1\n")
    with pytest.raises(MixtureError, match=r"bad.toml:1: key 'renormalise' must be true or false"):
        load_mixture(tmp_path / "bad.toml", Corpus.open(four))


def _args(four, tmp_path, run, *extra):
    (tmp_path / "model.toml").write_text(MODEL)
    return ["trainer/configs/tiny.toml", "--phase", "1", "--run-dir", str(run), f"--model.config={tmp_path / 'model.toml'}",
            f"--data.corpus={four}", "--data.seq_len=32", "--data.micro_batch=4", "--train.batch_tokens=128",
            "--train.phase1_tokens=256", "--train.phase2_tokens=128", "--schedule.warmup_tokens=128",
            "--log.progress=false", "--log.tensorboard=false", "--log.val_every_steps=100", "--train.threads=1", *extra]


def test_train_renormalises_both_phases_on_request(four, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    run = tmp_path / "run"
    assert train_main(_args(four, tmp_path, run)) == 2
    assert "--data.renormalise=true" in capsys.readouterr().err
    assert train_main(_args(four, tmp_path, run, "--data.renormalise=true")) == 0
    out = capsys.readouterr().out
    assert "mixture phase1 (mixtures/phase1.toml), renormalised: dropped 5 source(s)" in out
    assert train_main(["--phase", "2", "--run-dir", str(run), "--log.progress=false"]) == 0
    assert "mixture phase2 (mixtures/phase2.toml), renormalised: dropped 18 source(s)" in capsys.readouterr().out


def test_phase1_checks_phase2s_mixture_before_its_first_step(four, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    (tmp_path / "phase1.toml").write_text("[sources]\nrefinedweb = 64\nstarcoder = 25\n")
    typo = tmp_path / "phase2.toml"
    typo.write_text("# the phase-2 weights\n[sources]\nrefinedweb = 39.8\nstarcodr = 19.6\npile_arxiv = 1.0\n")
    run = tmp_path / "run"
    assert train_main(_args(four, tmp_path, run, f"--data.phase1_mixture={tmp_path / 'phase1.toml'}",
                            f"--data.phase2_mixture={typo}")) == 2
    err = capsys.readouterr().err
    assert "phase 2's mixture (data.phase2_mixture, checked before phase 1 starts)" in err, err
    line = next(i for i, l in enumerate(typo.read_text().splitlines(), 1) if l.startswith("starcodr"))
    assert f"{typo}:{line}: key 'sources.starcodr' names source 'starcodr'" in err
    assert not (run / "checkpoints").exists() or not list((run / "checkpoints").glob("step-*"))
    assert not (run / "metrics.jsonl").exists()


def test_phase1_prints_what_renormalising_phase2_drops(four, tmp_path, capsys, monkeypatch):
    """With renormalise on, a typo is a source the corpus lacks: dropped, and said so at phase 1's start."""
    monkeypatch.chdir(REPO)
    typo = tmp_path / "phase2.toml"
    typo.write_text('name = "p2"\n[sources]\nrefinedweb = 1\nstarcodr = 1\n')
    run = tmp_path / "run"
    assert train_main(_args(four, tmp_path, run, "--data.renormalise=true", f"--data.phase2_mixture={typo}")) == 0
    out = capsys.readouterr().out
    assert f"mixture p2 ({typo}), renormalised: dropped 1 source(s): starcodr (weight 1, not in the corpus)" in out
    assert out.index("starcodr") < out.index("step 0: val loss") if "step 0: val loss" in out else True


@pytest.mark.parametrize("corpus,hint", [
    ("shards/jetmoe", "build the corpus first: `make corpus CORPUS=jetmoe` (= python -m pipeline build "
                      "pipeline/configs/jetmoe.toml"),
    ("shards/mydata", "build the corpus first: `python -m pipeline build <your corpus config>` whose [corpus] "
                      "shards_dir is shards/mydata"),
])
def test_a_missing_corpus_names_the_command_that_builds_it(tmp_path, monkeypatch, corpus, hint):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(REPO / "pipeline/configs", tmp_path / "pipeline/configs")
    from trainer.data import CorpusError
    with pytest.raises(CorpusError) as e:
        Corpus.open(corpus)
    assert hint in str(e.value) and "make corpus`" not in str(e.value)
