"""The shipped corpus configs load, and the embedded sample of every one of the 22 sources yields documents."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from pipeline.accounting import StageAccount
from pipeline.config import load_config
from pipeline.dag import build, make_plan, status_rows, summary

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "pipeline/configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_config_loads_and_plans(path):
    cfg = load_config(path)
    plan = make_plan(cfg)
    assert len(cfg.sources) == 22
    assert {u.stage for u in plan.units} >= {"download", "format"}
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
    assert all(r[2] == "done" for r in rows)
