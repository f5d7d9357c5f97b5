"""A unit is done only while its outputs are there as its record lists them: deleted or changed outputs
rerun it (and what depends on it only if its record then changes), and ``status`` says so."""
from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import sys

from pipeline.dag import build
from pipeline.verify import verify
from tests.corpus_kit.fake_sources import REGISTRY, read_outputs, small_corpus_config, tree_digest

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600)


def _states(outcomes) -> dict[str, str]:
    return {o.unit: o.state for o in outcomes}


def test_deleted_shards_are_rebuilt_not_cached(tmp_path):
    """``rm -rf shards/<corpus>`` then the same build: the shards come back, byte for byte; one deleted part
    is repaired by rerunning that source's shard unit only; ``status`` tells which outputs are missing."""
    cfg = small_corpus_config(tmp_path)
    assert _cli("build", str(cfg), "--no-progress").returncode == 0
    shards = tmp_path / "shards"
    want = tree_digest(shards)

    shutil.rmtree(shards)
    s = _cli("status", str(cfg))
    assert re.search(r"shard/templategsm\s+outputs missing", s.stdout), s.stdout
    assert re.search(r"manifest/_corpus\s+outputs missing", s.stdout), s.stdout
    r = _cli("build", str(cfg), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "18 units (14 cached, 4 done)" in r.stdout  # three shard units and the manifest
    assert tree_digest(shards) == want

    part = next((shards / "oasst_octopack/train").glob("part-*.arrow"))
    part.unlink()
    r = _cli("build", str(cfg), "--no-progress")
    assert "shard/oasst_octopack: ran again (outputs missing" in r.stdout
    assert "18 units (17 cached, 1 done)" in r.stdout  # same part again: the manifest still holds
    assert tree_digest(shards) == want
    assert "outputs" not in _cli("status", str(cfg)).stdout

    # a part left by an earlier build (its work folder deleted with --rebuild) is not taken into the corpus
    stray = shards / "oasst_octopack/train/part-00007-00000.arrow"
    shutil.copy(part, stray)
    assert any("not in the manifest" in p for p in verify(shards))
    assert _cli("build", str(cfg), "--no-progress", "--rebuild").returncode == 0
    assert not stray.exists() and tree_digest(shards) == want and verify(shards) == []


def test_changed_output_reruns_the_unit_and_what_read_it(fake_build):
    """A format output changed in place (same size) is noticed by its sha256 and rewritten; deleting one
    reruns that unit only."""
    root, cfg, _ = fake_build
    work = root / "work"
    before = read_outputs(work)
    out = work / "beta/format/00000.jsonl.gz"
    data = bytearray(out.read_bytes())
    data[-9] ^= 0xFF  # inside the gzip trailer: same size, other bytes
    out.write_bytes(bytes(data))
    states = _states(build(cfg, registry=REGISTRY, progress=False))
    assert states["format/beta"] == "done" and states["format/alpha"] == "cached", states
    assert read_outputs(work) == before

    (work / "alpha/format/00001.jsonl.gz").unlink()
    states = _states(build(cfg, registry=REGISTRY, progress=False))
    assert states["format/alpha"] == "done" and states["format/beta"] == "cached" and states["download/alpha"] == "cached"
    assert read_outputs(work) == before
    docs = [json.loads(line) for line in gzip.open(work / "alpha/format/00001.jsonl.gz", "rt")]
    assert docs  # rewritten, not an empty stand-in
