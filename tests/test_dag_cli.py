"""``python -m pipeline build|status <config> --section.key=value``: overrides are typed like the file's values
and change what counts as the same build only where they change outputs."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pipeline.config import load_config
from pipeline.dag import make_plan, unit_fingerprint
from tests.corpus_kit.fake_sources import REGISTRY, small_corpus_config, write_config

REPO = Path(__file__).resolve().parents[1]


def _fingerprints(cfg_path, overrides=()) -> dict[str, str]:
    cfg = load_config(cfg_path, registry=REGISTRY, overrides=overrides)
    plan = make_plan(cfg, REGISTRY)
    cache: dict[str, str] = {}
    return {u.id: unit_fingerprint(plan, u, cache) for u in plan.units}


def test_overrides_rerun_only_what_they_change(tmp_path):
    cfg = write_config(tmp_path, tmp_path)
    base = _fingerprints(cfg)
    assert _fingerprints(cfg, ["--executor.workers=8", "--executor.kind=slurm", "--download.retries=9"]) == base
    changed = _fingerprints(cfg, ["--format.tasks=3"])
    assert {u for u in base if base[u] != changed[u]} == {"format/alpha", "format/beta", "format/grp"}
    loaded = load_config(cfg, registry=REGISTRY, overrides=["--executor.kind=slurm", "--executor.workers=8"])
    assert (loaded.executor.kind, loaded.executor.workers) == ("slurm", 8)
    assert loaded.sha256 == load_config(cfg, registry=REGISTRY).sha256  # the file's; overrides are listed
    assert loaded.cli_overrides == ["--executor.kind=slurm", "--executor.workers=8"]


def test_cli_takes_overrides(tmp_path):
    cfg = small_corpus_config(tmp_path)
    r = subprocess.run([sys.executable, "-m", "pipeline", "status", str(cfg), "--executor.workers=8",
                        "--format.tasks=2"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "0/18 units done" in r.stdout and f"python -m pipeline build {cfg} --executor.workers=8 --format.tasks=2" in r.stdout
    r = subprocess.run([sys.executable, "-m", "pipeline", "status", str(cfg), "--workers=8"], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "a config override is --section.key=value" in r.stderr
    r = subprocess.run([sys.executable, "-m", "pipeline", "status", str(cfg), "--executor.workers=0"], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "workers must be >= 1, got 0" in r.stderr and "Traceback" not in r.stderr


def test_documented_override_commands(tmp_path):
    """docs/corpus.md: overrides on the real config (offline: status plans without the hub) and through make."""
    r = subprocess.run([sys.executable, "-m", "pipeline", "status", "pipeline/configs/jetmoe.toml",
                        "--executor.kind=slurm", "--executor.workers=64", f"--corpus.work_dir={tmp_path / 'w'}"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "pending" in r.stdout, r.stderr
    r = subprocess.run(["make", "-n", "corpus", 'ARGS=--executor.workers=4'], cwd=REPO, capture_output=True,
                       text=True, timeout=60)
    assert "-m pipeline build pipeline/configs/sample.toml --executor.workers=4" in r.stdout, r.stdout + r.stderr
