"""Messages that point at the fix: "did you mean" for a mistyped source, JSON errors that read right, bad
Pile records counted against the subset they name, and a wrong ``mirror_root`` said in one line."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard

from pipeline.config import ConfigError, load_config
from pipeline.sources import Rejected, UnknownSourceError, get_source
from tests.corpus_kit.fake_sources import REGISTRY, write_config

REPO = Path(__file__).resolve().parents[1]


def test_unknown_source_did_you_mean(tmp_path):
    with pytest.raises(UnknownSourceError, match=r"unknown source 'refinedwebb'; did you mean 'refinedweb'\?"):
        get_source("refinedwebb")
    cfg = write_config(tmp_path, tmp_path, sources='["alpah"]')
    with pytest.raises(ConfigError, match=r"unknown source 'alpah'; did you mean 'alpha'\?"):
        load_config(cfg, registry=REGISTRY)


def test_malformed_json_reads_right(tmp_path):
    p = tmp_path / "train.jsonl"
    p.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "unterminated')
    (bad,) = [x for x in get_source("evol_codealpaca").read(p, relpath="train.jsonl") if isinstance(x, Rejected)]
    assert "at at" not in bad.detail
    assert bad.detail == "train.jsonl:2: malformed JSON (Unterminated string starting at column 17)"


def test_bad_pile_records_count_against_the_subset_they_name(tmp_path):
    lines = [json.dumps({"text": "fine", "meta": {"pile_set_name": "ArXiv"}}).encode(),
             json.dumps({"text": "", "meta": {"pile_set_name": "ArXiv"}}).encode(),            # empty_text
             json.dumps({"text": 5, "meta": {"pile_set_name": "Wikipedia (en)"}}).encode(),    # wrong_type
             b'{"text": "caf\xe9", "meta": {"pile_set_name": "StackExchange"}}',               # invalid_utf8
             json.dumps({"text": "", "meta": {"pile_set_name": "FreeLaw"}}).encode(),          # a rest subset
             json.dumps({"text": "no meta at all"}).encode(),                                  # unroutable
             b'{"text": "cut', ]                                                               # unreadable
    p = tmp_path / "00.jsonl.zst"
    p.write_bytes(zstandard.ZstdCompressor().compress(b"\n".join(lines) + b"\n"))
    rejected = [(r.source, r.reason) for r in get_source("pile_arxiv").read(p, relpath="train/00.jsonl.zst")
                if isinstance(r, Rejected)]
    assert rejected == [("pile_arxiv", "empty_text"), ("pile_wikipedia", "wrong_type"),
                        ("pile_stackexchange", "invalid_utf8"), ("pile_rest", "empty_text"),
                        ("pile_rest", "missing_field"), ("pile_rest", "invalid_json")]


def _build(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", "build", "pipeline/configs/sample.toml",
                           "--no-progress", *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_wrong_mirror_root_is_one_line(tmp_path):
    r = _build(f"--corpus.work_dir={tmp_path / 'work'}", "--download.mirror_root=pipeline/sampels")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stdout + r.stderr, r.stderr[-3000:]
    assert lines[0].startswith("error: [download] mirror_root = 'pipeline/sampels'")
    assert f"no such folder {REPO / 'pipeline/sampels'}" in lines[0] and "remove it to download" in lines[0]
    assert not (tmp_path / "work").exists()  # nothing started

    partial = tmp_path / "mirror"
    (partial / "allenai").mkdir(parents=True)
    (partial / "allenai/peS2o").symlink_to(REPO / "pipeline/samples/allenai/peS2o")
    r = _build(f"--corpus.work_dir={tmp_path / 'work'}", f"--download.mirror_root={partial}")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr[-3000:]
    assert "lacks 18 of the 19 repos this build reads (CohereForAI/xP3x, EleutherAI/proof-pile-2" in r.stderr
