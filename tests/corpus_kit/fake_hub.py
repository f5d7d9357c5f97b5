"""A fake Hugging Face hub on 127.0.0.1, so the hub code path runs offline and unchanged.

    with serve(root) as hub:            # root laid out as <repo_id>/<path in repo>
        hub.commit("fake/alpha")        # the repo's commit: a hash of its files, so a change is a new commit
        snapshot_download("fake/alpha", repo_type="dataset", endpoint=hub.url, ...)
        hub.requests                    # ["GET /api/datasets/fake/alpha/revision/main", ...]
        hub.fail_next["revision"] = 1   # answer the next revision request with a 503

It answers the requests huggingface_hub makes (repo info, tree listing, resolve with ETag / X-Repo-Commit,
HEAD and ranged GET) from the folder as it is at the time of each request, so a test can add, change or
delete a served file between builds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

class FakeHub(ThreadingHTTPServer):
    """Serves ``<root>/<repo_id>/<path>`` as dataset repos, each at the commit its files hash to (every
    revision resolves to it, as a branch does to its head)."""

    daemon_threads = True

    def __init__(self, root: Path):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root
        self.requests: list[str] = []
        self.fail_next: dict[str, int] = {}  # request kind → how many 503s to answer first

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def commit(self, repo: str) -> str:
        h = hashlib.sha1()
        base = self.root / repo
        for p in sorted(base.rglob("*")):
            if p.is_file():
                h.update(p.relative_to(base).as_posix().encode() + b"\0" + hashlib.sha1(p.read_bytes()).digest())
        return h.hexdigest()


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
                return self._send_json({"id": repo, "sha": self.server.commit(repo), "private": False,
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
            self.send_header("X-Repo-Commit", self.server.commit(repo))
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


@contextlib.contextmanager
def serve(root: Path) -> Iterator[FakeHub]:
    server = FakeHub(root)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
