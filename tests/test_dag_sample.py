"""The shipped corpus configs load, and the embedded sample of every one of the 22 pretraining sources yields
documents."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.accounting import StageAccount
from pipeline.config import load_config
from pipeline.dag import build, make_plan, status_rows, summary

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "pipeline/configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_config_loads_and_plans(path, tmp_path):
    # chat_sample reads the pretraining sample's tokenizer, there only once `make corpus` ran (its own test
    # checks that message): plan it with a trained tokenizer instead
    chat = path.stem.startswith("chat")
    overrides = ["--tokenizer.kind=train"] if path.stem == "chat_sample" else []
    if path.stem == "ablation":  # its two local sources are written by `python -m pipeline.localtext` first
        from pipeline.localtext import LOCAL_SOURCES, write_local
        write_local(tmp_path / "local")
        overrides = [f"--sources.{name}.path={tmp_path / 'local' / name}" for name in LOCAL_SOURCES]
    cfg = load_config(path, overrides=overrides)
    plan = make_plan(cfg)
    assert {u.stage for u in plan.units} >= {"download", "format"}
    if chat:  # the alignment sets: six SFT, one DPO
        assert [plan.ctx.specs[s].kind for s in cfg.sources] == ["sft"] * 6 + ["dpo"]
        return
    assert len(cfg.sources) == 22 + (2 if path.stem == "ablation" else 0)
    # the four pile_* sources are read once, as one input group
    assert plan.ctx.groups["pile"] == ["pile_wikipedia", "pile_stackexchange", "pile_arxiv", "pile_rest"]


def test_sample_every_source_yields_documents(tmp_path):
    cfg = load_config(REPO / "pipeline/configs/sample.toml")
    cfg.corpus.work_dir = str(tmp_path / "work")
    cfg.corpus.shards_dir = str(tmp_path / "shards")
    cfg.corpus.stages = ["download", "format"]  # the later stages have their own tests
    cfg.options["download"].mirror_root = str(REPO / "pipeline/samples")
    outcomes = build(cfg, progress=False)
    assert {o.state for o in outcomes} == {"done"}, [o for o in outcomes if o.state != "done"]
    work = tmp_path / "work"
    for src in cfg.sources:
        done = json.loads((work / src / "format/_DONE.json").read_text())
        acc = StageAccount.from_dict(done["accounts"][src]).check(src)
        assert acc.docs_out > 0, src
        docs = [json.loads(line) for p in sorted((work / src / "format").glob("*.jsonl.gz"))
                for line in gzip.open(p, "rt")]
        assert len(docs) == acc.docs_out and all(d["metadata"]["source"] == src for d in docs), src
        assert all(d["text"].strip() for d in docs), src
    # the samples carry bad records on purpose: they are rejected with reasons, not lost
    assert sum(sum(json.loads((work / s / "format/_DONE.json").read_text())["accounts"][s]["rejected"].values())
               for s in cfg.sources) > 0
    plan = make_plan(cfg)
    table = summary(plan)
    assert "TOTAL" in table and all(s in table for s in cfg.sources)
    rows = status_rows(plan)
    assert [r.unit for r in rows] == [u.id for u in plan.units] and all(r.state == "done" for r in rows)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_cli_corrupt_file_fails_build_lists_it_and_resumes(tmp_path):
    """``python -m pipeline build`` on real sources with one truncated file: exit 1 naming the file, the
    other sources complete; after the file is repaired the same command finishes and exits 0."""
    mirror = tmp_path / "mirror"
    for repo in ("allenai/peS2o", "teknium/OpenHermes-2.5", "HuggingFaceH4/ultrachat_200k"):
        shutil.copytree(REPO / "pipeline/samples" / repo, mirror / repo)
    bad = mirror / "allenai/peS2o/data/v2/train-00000-of-00020.json.gz"
    good = bad.read_bytes()
    bad.write_bytes(good[: len(good) // 2])  # a download cut in the middle
    cfg = tmp_path / "c.toml"
    cfg.write_text((REPO / "pipeline/configs/sample.toml").read_text()
                   .replace('sources = "all"', 'sources = ["dolma_pes2o", "openhermes", "ultrachat"]')
                   .replace('"work/sample"', f'"{tmp_path / "work"}"')
                   .replace('"shards/sample"', f'"{tmp_path / "shards"}"')
                   .replace('"pipeline/samples"', f'"{mirror}"')
                   .replace(re.search(r"stages = \[.*\]", (REPO / "pipeline/configs/sample.toml").read_text())
                            .group(0), 'stages = ["download", "format"]'))
    r = _cli("build", str(cfg), "--no-progress")
    assert r.returncode == 1, r.stderr
    assert "FAILED" in r.stderr and "format/dolma_pes2o" in r.stderr and bad.name in r.stderr
    assert "gzip" in r.stderr  # the reason, from the reader
    assert re.search(r"openhermes\s+\d+\s+\d+", r.stdout) and "ultrachat" in r.stdout  # the others built
    s = _cli("status", str(cfg))
    assert s.returncode == 0
    assert re.search(r"format/dolma_pes2o\s+failed \(1\)\s+0/1", s.stdout), s.stdout
    assert re.search(r"format/openhermes\s+done\s+1/1\s+\d+", s.stdout), s.stdout

    bad.write_bytes(good)
    r = _cli("build", str(cfg), "--no-progress")
    assert r.returncode == 0, r.stderr
    # the repaired file is noticed in the mirror's listing: its download and its format run again
    assert "download/dolma_pes2o: ran again (listing changed: 1 file changed" in r.stdout
    assert "6 units (4 cached, 2 done)" in r.stdout
    assert not _cli("status", str(cfg)).stdout.count("failed")
