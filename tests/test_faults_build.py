"""Disk faults and kill -9 during a real corpus build (``python -m pipeline build``, three embedded samples,
every stage), injected by ``tests.corpus_kit.faults`` into the build process and its forked workers.

Every fault is a clear exit: status 2 with the path, the errno and the fix for a disk error, never a
traceback; never a false success (exit 0 with missing or wrong outputs); and the same command run again
after the fault ends with exactly the bytes of a clean build.

``test_random_faults`` draws ``JETMOE_FAULT_TRIALS`` trials (2 by default, so that the file costs about a
minute; set more for a longer search) from ``JETMOE_FAULT_SEED`` (default 0): each picks kill -9 or one of ENOSPC, EROFS,
EACCES, EIO at a random write operation of the build.
"""
from __future__ import annotations

import os
import random
import shutil

import pytest

from pipeline.verify import verify
from tests.corpus_kit.fake_sources import small_corpus_config, tree_digest
from tests.corpus_kit.faults import count_writes, run_build

TRIALS = int(os.environ.get("JETMOE_FAULT_TRIALS", "2"))
SEED = int(os.environ.get("JETMOE_FAULT_SEED", "0"))
ERRNOS = ("ENOSPC", "EROFS", "EACCES", "EIO")


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A clean build of the small corpus (two workers, so some tasks run in forked pool workers): its root,
    config, the number of write operations of its build process, and the digest of its shards."""
    root = tmp_path_factory.mktemp("faults")
    cfg = small_corpus_config(root, workers=2, tasks=2)
    n, r = count_writes(cfg, state_dir=root / "state", root=root)
    assert r.returncode == 0, r.stderr[-3000:]
    return root, cfg, n, tree_digest(root / "shards")


def _fresh(root) -> None:
    for name in ("work", "shards"):
        shutil.rmtree(root / name, ignore_errors=True)


def _assert_clear_exit(r, plan) -> None:
    """Status and message of a build that met ``plan``'s fault (or finished before it)."""
    out = r.stdout + r.stderr
    assert "Traceback" not in out, out[-3000:]
    if plan["kind"] == "kill":
        assert r.returncode in (-9, 0), (r.returncode, out[-3000:])
    else:
        assert r.returncode in (2, 0), (plan, r.returncode, out[-3000:])
        if r.returncode == 2:
            assert f"({plan['errno']})" in r.stderr and "error: " in r.stderr, r.stderr[-3000:]


def _assert_clean_bytes(root, want) -> None:
    assert tree_digest(root / "shards") == want
    assert not [p for p in (root / "shards").rglob("*.tmp")]
    assert verify(root / "shards") == []


def test_random_faults_never_a_false_success(clean):
    root, cfg, n, want = clean
    rng = random.Random(SEED)
    for trial in range(TRIALS):
        _fresh(root)
        kind = rng.choice(["kill", "errno"])
        plan = {"kind": kind, "at": rng.randint(1, n)}
        if kind == "errno":
            plan["errno"] = rng.choice(ERRNOS)
        r = run_build(cfg, plan, state_dir=root / "state", root=root)
        _assert_clear_exit(r, plan)
        if r.returncode == 0:  # the fault point was never reached: then the corpus must be whole and right
            _assert_clean_bytes(root, want)
        again = run_build(cfg, None, state_dir=root / "state", root=root)  # the fault is gone: same command
        assert again.returncode == 0, (trial, plan, again.stderr[-3000:])
        _assert_clean_bytes(root, want)


def test_disk_full_in_a_worker_task(clean):
    """ENOSPC while a forked format worker writes its documents: exit 2 naming that file, ENOSPC and the fix,
    no traceback; after the disk is freed the same command finishes with a clean build's bytes."""
    root, cfg, _, want = clean
    _fresh(root)
    plan = {"kind": "errno", "errno": "ENOSPC", "at": 3, "match": "/format/0000"}
    r = run_build(cfg, plan, state_dir=root / "state", root=root)
    assert r.returncode == 2, r.stderr[-3000:]
    assert "no space left on device (ENOSPC); free space on that disk" in r.stderr
    assert "/format/0000" in r.stderr and "Traceback" not in r.stdout + r.stderr
    again = run_build(cfg, None, state_dir=root / "state", root=root)
    assert again.returncode == 0, again.stderr[-3000:]
    _assert_clean_bytes(root, want)


def test_read_only_work_folder(clean):
    root, cfg, _, _ = clean
    _fresh(root)
    r = run_build(cfg, {"kind": "errno", "errno": "EROFS", "at": 1}, state_dir=root / "state", root=root)
    assert r.returncode == 2, r.stderr[-3000:]
    assert "read-only file system (EROFS)" in r.stderr and "--corpus.work_dir=" in r.stderr
    assert "Traceback" not in r.stdout + r.stderr


def test_input_file_vanishing_during_the_build(clean):
    """A mirror file deleted after the download listed it: the format task that opens it fails with ENOENT
    (exit 2, "run again"); run again, the listing no longer has it and the build finishes."""
    root, cfg, _, _ = clean
    _fresh(root)
    gone = root / "mirror/math-ai/TemplateGSM/data/1k/0000-0999/templategsm-train-problems-0001.jsonl"
    keep = gone.read_bytes()
    try:
        r = run_build(cfg, {"kind": "unlink", "target": str(gone), "at": 1, "match": "/format/"},
                      state_dir=root / "state", root=root)
        assert r.returncode == 2, r.stderr[-3000:]
        assert f"{gone}: no such file or directory (ENOENT)" in r.stderr and "run again" in r.stderr
        assert "Traceback" not in r.stdout + r.stderr
        again = run_build(cfg, None, state_dir=root / "state", root=root)
        assert again.returncode == 0, again.stderr[-3000:]
        assert "download/templategsm: ran again (listing changed: 1 file removed" in again.stdout
        assert verify(root / "shards") == []
    finally:
        gone.write_bytes(keep)
