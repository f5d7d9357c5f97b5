"""The hub code path, offline: a small HTTP server on 127.0.0.1 answers the hub API requests that
huggingface_hub makes (repo info, tree listing, resolve with ETag / X-Repo-Commit, HEAD and ranged GET)
from a folder laid out like the hub. ``snapshot_download`` and ``HfFileSystem`` run unchanged against it.
"""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline import hub
from pipeline.dag import build
from tests.test_dag_build import REGISTRY, docs_of, make_mirror, write_config

SHA = "0123456789abcdef0123456789abcdef01234567"


class FakeHub(ThreadingHTTPServer):
    """Serves ``<root>/<repo_id>/<path>`` as dataset repos at one commit (``SHA``)."""

    daemon_threads = True

    def __init__(self, root: Path):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root
        self.requests: list[str] = []
        self.fail_next: dict[str, int] = {}  # request kind → how many 503s to answer first

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeHub

    def log_message(self, *args):  # quiet
        pass

    def do_HEAD(self):
        self._serve(head=True)

    def do_GET(self):
        self._serve(head=False)

    def _send_json(self, obj, code=200):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _files(self, repo: str):
        base = self.server.root / repo
        return sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())

    def _serve(self, head: bool):
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        parts = path.strip("/").split("/")
        kind = "resolve" if "resolve" in parts else parts[4] if path.startswith("/api/") and len(parts) > 4 else "?"
        self.server.requests.append(f"{self.command} {path}")
        if self.server.fail_next.get(kind, 0) > 0:
            self.server.fail_next[kind] -= 1
            return self._send_json({"error": "try again"}, 503)
        if path.startswith("/api/datasets/"):
            # /api/datasets/<owner>/<name>/(revision|tree|paths-info)/<rev>[/<path>]
            repo = "/".join(parts[2:4])
            if not (self.server.root / repo).is_dir():
                self.send_response(404)
                self.send_header("X-Error-Code", "RepoNotFound")
                self.end_headers()
                return
            op = parts[4] if len(parts) > 4 else ""
            sub = "/".join(parts[6:])
            if op == "revision":
                return self._send_json({"id": repo, "sha": SHA, "private": False,
                                        "siblings": [{"rfilename": f} for f in self._files(repo)]})
            if op == "tree":
                q = urllib.parse.parse_qs(url.query)
                recursive = q.get("recursive", ["false"])[0].lower() == "true"
                return self._send_json(self._tree(repo, sub, recursive))
            return self._send_json({"error": f"unsupported {op}"}, 400)
        if "/resolve/" in path and path.startswith("/datasets/"):
            # /datasets/<owner>/<name>/resolve/<rev>/<path>
            repo = "/".join(parts[1:3])
            rel = "/".join(parts[5:])
            f = self.server.root / repo / rel
            if not f.is_file():
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.end_headers()
                return
            data = f.read_bytes()
            etag = hashlib.sha1(data).hexdigest()
            start, end, code = 0, len(data) - 1, 200
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes="):
                a, _, b = rng[len("bytes="):].partition("-")
                start = int(a) if a else 0
                end = min(int(b), len(data) - 1) if b else len(data) - 1
                code = 206
            chunk = data[start:end + 1]
            self.send_response(code)
            self.send_header("ETag", f'"{etag}"')
            self.send_header("X-Repo-Commit", SHA)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(chunk)))
            if code == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.end_headers()
            if not head:
                self.wfile.write(chunk)
            return
        self._send_json({"error": "not found"}, 404)

    def _tree(self, repo: str, sub: str, recursive: bool):
        base = self.server.root / repo
        root = base / sub if sub else base
        out = []
        for p in sorted(root.rglob("*") if recursive else root.iterdir()):
            rel = p.relative_to(base).as_posix()
            if p.is_dir():
                out.append({"type": "directory", "oid": hashlib.sha1(rel.encode()).hexdigest(), "size": 0,
                            "path": rel})
            else:
                data = p.read_bytes()
                out.append({"type": "file", "oid": hashlib.sha1(data).hexdigest(), "size": len(data), "path": rel})
        return out


@pytest.fixture()
def fake_hub(tmp_path, monkeypatch):
    mirror = make_mirror(tmp_path / "served")
    server = FakeHub(mirror)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    # keep huggingface_hub's caches inside the test folder
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    try:
        yield server, mirror
    finally:
        server.shutdown()
        server.server_close()


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
    assert listing["mode"] == "hub" and listing["commit"] == SHA
    assert [f["relpath"] for f in listing["files"]] == [f"data/part-{i}.jsonl" for i in range(3)]
    for f in listing["files"]:  # snapshot_download put the files in the stage folder, byte for byte
        assert Path(f["path"]).read_bytes() == (mirror / "fake/alpha" / f["relpath"]).read_bytes()
    assert not (work / "alpha/download/files/README.md").exists()  # allow_patterns reached the hub
    stream = json.loads((work / "beta/download/files.json").read_text())
    assert stream["mode"] == "stream"
    assert stream["files"][0]["path"] == f"hf://datasets/fake/beta@{SHA}/data/only.jsonl"
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

    # a rerun asks the hub nothing: every unit is done
    n = len(server.requests)
    assert {o.state for o in build(cfg, registry=REGISTRY, progress=False)} == {"cached"}
    assert len(server.requests) == n


def test_snapshot_resumes_and_reports_missing_repo(fake_hub, tmp_path):
    server, mirror = fake_hub
    local = tmp_path / "dl"
    files = hub.snapshot("fake/alpha", "dataset", SHA, ["data/*.jsonl"], local, endpoint=server.url,
                         retries=0, backoff_s=0)
    assert len(files) == 3
    # a file lost mid-way is fetched again, the others are not
    (local / "data/part-1.jsonl").unlink()
    before = [r for r in server.requests if r.startswith("GET") and "/resolve/" in r]
    hub.snapshot("fake/alpha", "dataset", SHA, ["data/*.jsonl"], local, endpoint=server.url, retries=0,
                 backoff_s=0)
    after = [r for r in server.requests if r.startswith("GET") and "/resolve/" in r][len(before):]
    assert after == [f"GET /datasets/fake/alpha/resolve/{SHA}/data/part-1.jsonl"]
    with pytest.raises(hub.DownloadError, match=r"(?s)fake/nope.*RepositoryNotFoundError.*Check the repo id"):
        hub.resolve_commit("fake/nope", "dataset", "main", endpoint=server.url, retries=0)
