"""A build killed with SIGKILL in the middle of a task resumes and ends with the same outputs as a clean one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pipeline.dag import build
from tests.corpus_kit.fake_sources import GATED, make_mirror, read_outputs, write_config

REPO = Path(__file__).resolve().parents[1]


CHILD = """
import sys
from pipeline.dag import build
from tests.corpus_kit.fake_sources import GATED
build(sys.argv[1], registry=GATED, progress=False)
"""


def _processes_of(cfg: Path) -> list[int]:
    """Live processes whose command line names this build's config (the build and its forks)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if str(cfg).encode() in (d / "cmdline").read_bytes() and b"Z" not in (d / "stat").read_bytes().split(b") ")[1][:1]:
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


def _setup(root: Path, mirror: Path) -> Path:
    # two workers: the gated task runs in a forked pool worker, which must die with the killed build
    # (else it would finish its task while the rerun writes the same file)
    return write_config(root, mirror, tasks=2, executor='kind = "local"\nworkers = 2')


def test_kill_mid_task_then_resume_equals_clean_build(tmp_path):
    mirror = make_mirror(tmp_path)
    # rank 1 of alpha's format reads part-1; its third record is the gate, so the kill lands after the
    # task opened (and began writing) its output file
    p = mirror / "fake/alpha/data/part-1.jsonl"
    lines = p.read_text().splitlines(keepends=True)
    p.write_text("".join(lines[:2]) + json.dumps({"text": "GATE record"}) + "\n" + "".join(lines[2:]))

    clean_root = tmp_path / "clean"
    clean_root.mkdir()
    assert {o.state for o in build(_setup(clean_root, mirror), registry=GATED, progress=False)} == {"done"}

    root = tmp_path / "killed"
    root.mkdir()
    cfg = _setup(root, mirror)
    gate = tmp_path / "gate"
    gate.touch()
    env = {**os.environ, "DAG_TEST_GATE": str(gate), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(cfg)], cwd=REPO, env=env)
    try:
        reached = Path(str(gate) + ".reached")
        # rank 0 runs beside the gated rank 1 (two workers) and does not wait: kill once it has finished
        rank0 = root / "work/alpha/format/_logs/format/completions/00000"
        deadline = time.monotonic() + 120  # a hang guard only: the test never passes or fails on timing
        while not (reached.exists() and rank0.exists()):
            assert proc.poll() is None, f"build exited ({proc.returncode}) before reaching the gate"
            assert time.monotonic() < deadline, "the build never reached the gate"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # the killed build's forked processes (pool workers, datatrove's Manager) die with it
        while _processes_of(cfg):
            assert time.monotonic() < deadline, f"processes outlived the killed build: {_processes_of(cfg)}"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
    work = root / "work"
    # killed mid-way: downloads and rank 0 of alpha are finished, rank 1 is not, nothing after it ran
    assert (work / "alpha/download/_DONE.json").exists()
    assert (work / "alpha/format/_logs/format/completions/00000").exists()
    assert not (work / "alpha/format/_logs/format/completions/00001").exists()
    assert (work / "alpha/format/00001.jsonl.gz").exists()  # the partial file the resumed task rewrites
    assert not (work / "alpha/format/_DONE.json").exists()
    assert not (work / "beta/format/_DONE.json").exists()

    gate.unlink()
    outcomes = {o.unit: o.state for o in build(cfg, registry=GATED, progress=False)}
    assert outcomes["download/alpha"] == "cached" and outcomes["format/alpha"] == "done"
    assert read_outputs(work) == read_outputs(clean_root / "work")
    # and a second resume changes nothing
    assert {o.state for o in build(cfg, registry=GATED, progress=False)} == {"cached"}
    assert read_outputs(work) == read_outputs(clean_root / "work")
