"""The commands a user types, in a fresh shell with nothing activated: `make` targets through `.venv/bin`
(torchrun included), the `jetmoe` console script, and output folders that follow the run (`make export` /
`make report` name theirs after RUN_DIR and never overwrite an export without FORCE=1 / --force)."""
from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.make_kit import REPO, copy_repo, make_env, venv_stub
from tests.trainer_kit.runs import BATCH_TOKENS

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"  # no venv on PATH: what a fresh shell has


@pytest.fixture(scope="module")
def repo(tmp_path_factory, train_assets):
    """A copy of the repository with a stub .venv, and the tiny run's inputs."""
    dst = copy_repo(tmp_path_factory.mktemp("make") / "repo")
    venv_stub(dst)
    return dst


def make(repo: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=repo, env=make_env(repo, PATH=SYSTEM_PATH),
                          capture_output=True, text=True, timeout=timeout)


def tiny_args(assets: Path) -> str:
    """The tiny run's inputs as ARGS (the same keys tests/trainer_kit/runs.py passes), 4 + 2 steps."""
    return " ".join([f"--model.config={assets / 'model.toml'}", f"--data.corpus={assets / 'corpus'}",
                     f"--data.phase1_mixture={assets / 'm1.toml'}", f"--data.phase2_mixture={assets / 'm2.toml'}",
                     "--data.seq_len=32", "--data.micro_batch=4", f"--train.batch_tokens={BATCH_TOKENS}",
                     "--train.phase2_tokens=512", "--schedule.warmup_tokens=256", "--log.progress=false",
                     "--log.tensorboard=false", "--train.threads=1"])


@pytest.fixture(scope="module")
def probe_run(repo, train_assets):
    """`make phase1 NPROC=2 RUN_DIR=runs/probe ARGS="..."`, then `make phase2 RUN_DIR=runs/probe`: phase 1 on 2
    ranks through the venv's torchrun, phase 2 from the run's saved config with nothing retyped."""
    one = make(repo, "phase1", "NPROC=2", "RUN_DIR=runs/probe", f"ARGS={tiny_args(train_assets)} "
               "--train.phase1_tokens=1024")
    assert one.returncode == 0, one.stdout[-3000:] + one.stderr[-3000:]
    assert one.stdout.startswith(".venv/bin/torchrun --standalone --nproc-per-node 2 -m trainer train "
                                 "trainer/configs/tiny.toml --phase 1 --run-dir runs/probe --model.config="), one.stdout
    assert "1 micro-batch(es) × 4 × 32 × 2 rank(s)" in one.stdout
    two = make(repo, "phase2", "RUN_DIR=runs/probe")
    assert two.returncode == 0, two.stdout[-3000:] + two.stderr[-3000:]
    assert two.stdout.splitlines()[0].strip() == ".venv/bin/python -m trainer train  --phase 2 --run-dir runs/probe"
    return repo / "runs/probe"


@pytest.mark.slow
def test_phase2_after_phase1_with_args_just_works(probe_run):
    steps = sorted(p.name for p in (probe_run / "checkpoints").glob("step-*"))
    assert steps[-1] == "step-00000006"  # 1024 / 256 = 4 steps of phase 1 (the ARGS), then 2 of phase 2
    saved = tomllib.loads((probe_run / "run_config.toml").read_text())
    assert saved["train"]["phase1_tokens"] == 1024 and saved["run"]["config"] == "trainer/configs/tiny.toml"


@pytest.mark.slow
def test_export_and_report_follow_the_run_and_never_overwrite(repo, probe_run):
    r = make(repo, "export", "RUN_DIR=runs/probe")
    assert r.returncode == 0, r.stderr
    assert "trainer export runs/probe exports/probe" in r.stdout
    out = repo / "exports/probe"
    assert (out / "config.json").is_file() and not (repo / "exports/tiny").exists()
    assert tomllib.loads((out / "run_config.toml").read_text())["train"]["phase1_tokens"] == 1024
    before = (out / "model.safetensors").stat().st_mtime_ns
    again = make(repo, "export", "RUN_DIR=runs/probe")
    assert again.returncode != 0 and "exports/probe: holds an export already" in again.stderr
    assert "pass --force to replace it (`make export FORCE=1`)" in again.stderr
    assert (out / "model.safetensors").stat().st_mtime_ns == before
    assert make(repo, "export", "RUN_DIR=runs/probe", "FORCE=1").returncode == 0
    (repo / "exports/mine").mkdir()
    (repo / "exports/mine/notes.txt").write_text("mine")
    forced = make(repo, "export", "RUN_DIR=runs/probe", "EXPORT_DIR=exports/mine", "FORCE=1")
    assert forced.returncode != 0 and "never writes over other files (not even with --force)" in forced.stderr
    assert (repo / "exports/mine/notes.txt").read_text() == "mine"

    rep = make(repo, "report", "RUN_DIR=runs/probe")
    assert rep.returncode == 0, rep.stderr
    assert "report --run runs/probe  --out reports/probe" in rep.stdout
    page = repo / "reports/probe/index.html"
    assert page.is_file() and (repo / "reports/probe/corpus_tokens.png").is_file()  # the run's own corpus
    assert not (repo / "reports/tiny").exists()


def test_the_8b_run_on_a_missing_corpus_names_its_corpus(repo):
    r = make(repo, "phase1", "MODEL=jetmoe-8b", "RUN_DIR=runs/8b")
    assert r.returncode != 0
    assert "build the corpus first: `make corpus CORPUS=jetmoe` (= python -m pipeline build " \
           "pipeline/configs/jetmoe.toml" in r.stderr, r.stderr
    assert not (repo / "runs/8b/run_config.toml").exists()  # nothing saved for a run that never started


def test_single_node_launch_line(repo):
    r = make(repo, "-n", "phase1", "MODEL=jetmoe-8b", "NPROC=8")
    assert r.stdout.strip().splitlines()[-1] == (".venv/bin/torchrun --standalone --nproc-per-node 8 -m trainer train "
                                                 "trainer/configs/jetmoe-8b.toml --phase 1 --run-dir runs/jetmoe-8b")
    r = make(repo, "-n", "phase2", "MODEL=jetmoe-8b", "NPROC=8", "RUN_DIR=/shared/runs/8b")
    assert "--nproc-per-node 8 -m trainer train trainer/configs/jetmoe-8b.toml --phase 2 --run-dir /shared/runs/8b" \
        in r.stdout


def test_the_venv_torchrun_script(repo, tmp_path):
    """scripts/venv_torchrun.sh gives a venv built on a system torch (no torchrun of its own) one that runs
    `python -m torch.distributed.run` of that venv."""
    venv = tmp_path / "venv"  # the stub venv without a torchrun
    (venv / "bin").mkdir(parents=True)
    for entry in (repo / ".venv").iterdir():
        if entry.name != "bin":
            (venv / entry.name).symlink_to(entry.resolve())
    (venv / "bin/python").symlink_to((repo / ".venv/bin/python").resolve())
    r = subprocess.run(["bash", str(REPO / "scripts/venv_torchrun.sh"), str(venv)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    help_ = subprocess.run([str(venv / "bin/torchrun"), "--help"], capture_output=True, text=True,
                           env=make_env(repo, PATH=SYSTEM_PATH), timeout=120)
    assert help_.returncode == 0 and "--nproc-per-node" in help_.stdout


def test_the_jetmoe_command(repo, train_assets):
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module, func = scripts["jetmoe"].split(":")
    cli = importlib.import_module(module)
    assert getattr(cli, func) is cli.main
    shown = cli.JETMOE_DOC
    for command in cli.JETMOE_COMMANDS:  # every command is listed, and runs what `python -m ...` runs
        assert re.search(rf"^\s+jetmoe {re.escape(command)}\s", shown, re.M), command
        mod, fn = cli.JETMOE_COMMANDS[command].split(":")
        assert callable(getattr(importlib.import_module(mod), fn))
    import pipeline.__main__ as p
    import trainer.__main__ as t
    assert {**p.COMMANDS, **t.COMMANDS, "corpus": p.COMMANDS["build"]} == {**cli.JETMOE_COMMANDS,
                                                                            "build": p.COMMANDS["build"]}
    r = subprocess.run([str(repo / ".venv/bin/jetmoe"), "plan", "m1.toml", "--corpus", "corpus", "--tokens", "1e4"],
                       cwd=train_assets, env=make_env(repo, PATH=SYSTEM_PATH), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "mixture m1 (m1.toml)" in r.stdout, r.stderr
    bad = subprocess.run([str(repo / ".venv/bin/jetmoe"), "trian"], env=make_env(repo, PATH=SYSTEM_PATH),
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown command 'trian'; did you mean 'train'?" in bad.stderr


def test_make_plan(repo, train_assets):
    """README's `make plan MIXTURE=... TOKENS=...`: the venv's trainer plan on CORPUS_DIR, ARGS passed on."""
    r = make(repo, "plan", f"MIXTURE={train_assets / 'm2.toml'}", f"CORPUS_DIR={train_assets / 'corpus'}",
             "TOKENS=1e4", "ARGS=--json")
    assert r.returncode == 0, r.stderr
    head, _, body = r.stdout.partition("\n")
    assert head.startswith(".venv/bin/python -m trainer plan ") and head.endswith("--tokens 1e4 --json"), head
    plan = json.loads(body)
    assert plan["tokens"] == 10_000 and {row["source"] for row in plan["rows"]} == {"web", "code", "math"}
