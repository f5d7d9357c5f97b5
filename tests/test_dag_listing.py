"""The download's file list is checked against the mirror or the hub on every build, so that files added,
removed or replaced there are noticed, and the advice for a corrupt input file works when followed: on a
local mirror (replace the file, build again) and against the (fake) hub (delete the downloaded copy, build
again: it is fetched again)."""
from __future__ import annotations

import json

from pipeline.dag import build, status_rows
from pipeline.dag.plan import make_plan
from pipeline.config import load_config
from tests.corpus_kit.fake_sources import REGISTRY, docs_of, write_config


def _states(outcomes) -> dict[str, str]:
    return {o.unit: o.state for o in outcomes}


def _status(cfg) -> dict[str, str]:
    return {r.unit: r.state for r in status_rows(make_plan(load_config(cfg, registry=REGISTRY), REGISTRY))}


def test_files_added_to_or_removed_from_a_mirror_are_noticed(fake_build):
    root, cfg, _ = fake_build
    mirror = root / "mirror"
    work = root / "work"
    n = len(docs_of(work, "alpha"))
    (mirror / "fake/alpha/data/part-9.jsonl").write_text(json.dumps({"text": "a file added later"}) + "\n")
    assert _status(cfg)["download/alpha"] == "listing changed"
    states = _states(build(cfg, registry=REGISTRY, progress=False))
    assert states["download/alpha"] == "done" and states["format/alpha"] == "done"
    assert states["download/beta"] == states["format/beta"] == "cached"
    assert len(docs_of(work, "alpha")) == n + 1
    assert "part-9.jsonl" in (work / "alpha/download/files.json").read_text()

    (mirror / "fake/alpha/data/part-9.jsonl").unlink()
    assert _states(build(cfg, registry=REGISTRY, progress=False))["format/alpha"] == "done"
    assert len(docs_of(work, "alpha")) == n
    assert set(_status(cfg).values()) == {"done"}


def test_corrupt_mirror_file_advice_works(fake_build):
    """"replace it in the mirror and run the build again" is what fixes it."""
    root, cfg, _ = fake_build
    bad = root / "mirror/fake/beta/data/only.jsonl"
    good = bad.read_bytes()
    bad.write_bytes(b"")
    out = {o.unit: o for o in build(cfg, registry=REGISTRY, progress=False)}
    (fail,) = out["format/beta"].failures
    assert "only.jsonl: is empty" in fail["error"] and "replace it in the mirror" in fail["error"]
    assert "huggingface-cli download fake/beta data/only.jsonl" in fail["error"]
    bad.write_bytes(good)  # followed
    assert _states(build(cfg, registry=REGISTRY, progress=False))["format/beta"] == "done"
    assert len(docs_of(root / "work", "beta")) == 7


def _hub_config(root, server):
    cfg = write_config(root, root / "unused")
    cfg.write_text(cfg.read_text().replace(f'mirror_root = "{root / "unused"}"',
                                           f'endpoint = "{server.url}"\nretries = 1\nbackoff_s = 0.01'))
    return cfg


def _fetches(server, since: int) -> list[str]:
    return [r for r in server.requests[since:] if r.startswith("GET") and "/resolve/" in r]


def test_damaged_download_is_fetched_again(fake_hub, tmp_path):
    """A downloaded file cut short is noticed (its size) and fetched again from the hub; one damaged at the
    same size fails the format task with "delete it and run the build again", and doing so fetches it."""
    server, served = fake_hub
    root = tmp_path / "hubbuild"
    root.mkdir()
    cfg = _hub_config(root, server)
    assert set(_states(build(cfg, registry=REGISTRY, progress=False)).values()) == {"done"}
    work = root / "work"
    want = docs_of(work, "beta")
    local = work / "beta/download/files/data/only.jsonl"

    local.write_bytes(local.read_bytes()[:10])  # cut short
    n = len(server.requests)
    states = _states(build(cfg, registry=REGISTRY, progress=False))
    assert states["download/beta"] == "done", states
    assert _fetches(server, n) == [f"GET /datasets/fake/beta/resolve/{server.commit('fake/beta')}/data/only.jsonl"]
    # the file is the hub's again, byte for byte: what format made from it still holds
    assert states["format/beta"] == "cached" and docs_of(work, "beta") == want

    local.write_bytes(b"\n" * local.stat().st_size)  # damaged at the same size: only its sha256 tells
    out = {o.unit: o for o in build(cfg, registry=REGISTRY, progress=False)}
    assert out["format/beta"].state == "failed"
    (fail,) = out["format/beta"].failures
    assert "delete it and run the build again" in fail["error"], fail
    local.unlink()  # followed
    n = len(server.requests)
    states = _states(build(cfg, registry=REGISTRY, progress=False))
    assert states["format/beta"] == "done"
    assert _fetches(server, n) == [f"GET /datasets/fake/beta/resolve/{server.commit('fake/beta')}/data/only.jsonl"]
    assert docs_of(work, "beta") == want


def test_files_added_on_the_hub_are_noticed(fake_hub, tmp_path):
    server, served = fake_hub
    root = tmp_path / "hubbuild"
    root.mkdir()
    cfg = _hub_config(root, server)
    build(cfg, registry=REGISTRY, progress=False)
    (served / "fake/beta/data/more.jsonl").write_text(json.dumps({"text": "pushed later"}) + "\n")
    states = _states(build(cfg, registry=REGISTRY, progress=False))
    assert states["download/beta"] == "done" and states["format/beta"] == "done"
    assert states["download/alpha"] == "cached"
    assert "pushed later" in json.dumps(docs_of(root / "work", "beta"))
