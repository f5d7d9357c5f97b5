"""The hub code path, offline, against the fake hub (``tests.corpus_kit.fake_hub``, fixture ``fake_hub``):
``snapshot_download`` and ``HfFileSystem`` run unchanged against it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline import hub
from pipeline.dag import build
from tests.corpus_kit.fake_hub import FakeHub
from tests.corpus_kit.fake_sources import REGISTRY, docs_of, write_config

def _hub_config(root: Path, server: FakeHub, extra: str = "") -> Path:
    cfg = write_config(root, root / "unused", extra=extra)
    text = cfg.read_text().replace(f'mirror_root = "{root / "unused"}"',
                                   f'endpoint = "{server.url}"\nretries = 3\nbackoff_s = 0.01')
    cfg.write_text(text)
    return cfg


def test_snapshot_and_stream_from_hub_equal_the_mirror(fake_hub, tmp_path):
    server, mirror = fake_hub
    server.fail_next["revision"] = 1  # one transient error: the download retries
    hub_root = tmp_path / "hub"
    hub_root.mkdir()
    cfg = _hub_config(hub_root, server, extra="\n[sources.beta]\nstream = true\n")
    outcomes = {o.unit: o.state for o in build(cfg, registry=REGISTRY, progress=False)}
    assert set(outcomes.values()) == {"done"}, outcomes
    assert server.fail_next["revision"] == 0  # the 503 was answered, and the build went on

    work = hub_root / "work"
    listing = json.loads((work / "alpha/download/files.json").read_text())
    assert listing["mode"] == "hub" and listing["commit"] == server.commit("fake/alpha")
    assert [f["relpath"] for f in listing["files"]] == [f"data/part-{i}.jsonl" for i in range(3)]
    for f in listing["files"]:  # snapshot_download put the files in the stage folder, byte for byte
        assert Path(f["path"]).read_bytes() == (mirror / "fake/alpha" / f["relpath"]).read_bytes()
    assert not (work / "alpha/download/files/README.md").exists()  # allow_patterns reached the hub
    stream = json.loads((work / "beta/download/files.json").read_text())
    assert stream["mode"] == "stream"
    assert stream["files"][0]["path"] == f"hf://datasets/fake/beta@{server.commit('fake/beta')}/data/only.jsonl"
    assert not (work / "beta/download/files").exists()  # streamed: nothing downloaded up front
    assert not list((work / "_scratch").rglob("*.jsonl"))  # and the fetched file was removed after reading
    assert any(r.startswith("GET /datasets/fake/alpha/resolve/") for r in server.requests)
    assert any(r.startswith("GET /datasets/fake/beta/resolve/") for r in server.requests)

    # same documents and accounts as reading the same files from a local mirror
    mirror_root = tmp_path / "mirror_build"
    mirror_root.mkdir()
    build(write_config(mirror_root, mirror), registry=REGISTRY, progress=False)
    for src in ("alpha", "beta", "grp_a", "grp_b"):
        assert docs_of(work, src) == docs_of(mirror_root / "work", src), src
        a = json.loads((work / src / "format/_DONE.json").read_text())["accounts"]
        b = json.loads((mirror_root / "work" / src / "format/_DONE.json").read_text())["accounts"]
        assert a == b

    # a rerun downloads nothing: it only lists each repo again to see that its files are still the same
    n = len(server.requests)
    assert {o.state for o in build(cfg, registry=REGISTRY, progress=False)} == {"cached"}
    again = server.requests[n:]
    assert again and all(r.startswith("GET /api/datasets/") for r in again), again


def test_snapshot_resumes_and_reports_missing_repo(fake_hub, tmp_path):
    server, mirror = fake_hub
    local = tmp_path / "dl"
    sha = server.commit("fake/alpha")
    files = hub.snapshot("fake/alpha", "dataset", sha, ["data/*.jsonl"], local, endpoint=server.url,
                         retries=0, backoff_s=0)
    assert len(files) == 3
    # a file lost mid-way is fetched again, the others are not
    (local / "data/part-1.jsonl").unlink()
    before = [r for r in server.requests if r.startswith("GET") and "/resolve/" in r]
    hub.snapshot("fake/alpha", "dataset", sha, ["data/*.jsonl"], local, endpoint=server.url, retries=0,
                 backoff_s=0)
    after = [r for r in server.requests if r.startswith("GET") and "/resolve/" in r][len(before):]
    assert after == [f"GET /datasets/fake/alpha/resolve/{sha}/data/part-1.jsonl"]
    with pytest.raises(hub.DownloadError, match=r"(?s)fake/nope.*RepositoryNotFoundError.*Check the repo id"):
        hub.resolve_commit("fake/nope", "dataset", "main", endpoint=server.url, retries=0)


def test_snapshot_reports_bytes_there_out_of_the_hubs_total(fake_hub, tmp_path):
    """The download's progress: the listed files' bytes on disk out of the hub's total, partial files
    (huggingface_hub's ``.incomplete`` parts) counted as they grow, the last report the whole."""
    server, mirror = fake_hub
    sha = server.commit("fake/alpha")
    total = sum(p.stat().st_size for p in (mirror / "fake/alpha/data").glob("*.jsonl"))
    seen: list[tuple[int, int]] = []
    local = tmp_path / "dl"
    hub.snapshot("fake/alpha", "dataset", sha, ["data/*.jsonl"], local, endpoint=server.url, retries=0,
                 backoff_s=0, progress=lambda there, of: seen.append((there, of)))
    assert seen[0] == (0, total) and seen[-1] == (total, total)
    assert all(of == total for _, of in seen) and [t for t, _ in seen] == sorted(t for t, _ in seen)

    files = [{"relpath": f"data/part-{i}.jsonl", "size": (mirror / f"fake/alpha/data/part-{i}.jsonl").stat().st_size}
             for i in range(3)]
    (local / "data/part-2.jsonl").unlink()
    part = local / ".cache/huggingface/download/data/part-2.jsonl.0123abcd.incomplete"
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(b"x" * 5)
    assert hub.bytes_there(local, files) == total - files[2]["size"] + 5


def test_hub_build_writes_the_downloads_byte_progress(fake_hub, tmp_path):
    """Through a build: the download task's progress file holds the hub's total and all of it there."""
    server, _ = fake_hub
    cfg = _hub_config(tmp_path, server)
    assert {o.state for o in build(cfg, registry=REGISTRY, progress=False)} == {"done"}
    listing = json.loads((tmp_path / "work/alpha/download/files.json").read_text())
    (rec_path,) = (tmp_path / "work/alpha/download/_logs").rglob("progress/00000.json")
    rec = json.loads(rec_path.read_text())
    assert rec["input_total"] == rec["input_bytes"] == sum(f["size"] for f in listing["files"]) and rec["done"]
