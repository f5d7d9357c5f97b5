"""Getting a dataset's files: from a local mirror, from the Hugging Face hub, or streamed from the hub.

Every way ends in the same *listing* (``files.json`` in the download stage's folder): the repo, the
resolved commit and one entry per file ``{"relpath": <path in repo>, "path": <where to read it>, "size"}``
plus what tells a changed file from the same one without reading it: ``mtime_ns`` for a mirror, the hub's
``etag`` (the LFS sha256, or the git blob id) otherwise. The format stage reads only the listing, so it does
not care where the bytes came from; the download stage lists again on every build and ``status``
(:func:`listing_changes`), so a file added, removed or replaced since is noticed.

* mirror: ``<mirror_root>/<repo_id>/<path in repo>`` (the embedded samples, or a copy made with
  ``huggingface-cli download``); nothing is copied.
* hub: ``huggingface_hub.snapshot_download`` into the stage folder, pinned to the commit the revision
  resolves to, retried with backoff; a rerun resumes (files already there are skipped, ``.incomplete``
  files continue). A local file whose size differs from the hub's (cut short, or damaged and rewritten) is
  deleted and fetched again, and one the repo no longer has is removed.
* stream: only the listing is made (``HfFileSystem``); each format task fetches one file at a time into a
  scratch folder and deletes it after reading (RefinedWeb's 2.8 TB never sits on disk at once).

``HF_ENDPOINT`` (or ``[download] endpoint``) points all of it at another hub, ``HF_TOKEN`` authenticates.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

from jetmoe_core.io import atomic_path
from jetmoe_core.ticker import every

T = TypeVar("T")

LISTING = "files.json"


class DownloadError(RuntimeError):
    """A repo, revision or file that cannot be fetched; the message says which and what to try."""


def matches(relpath: str, patterns: tuple[str, ...] | list[str] | None) -> bool:
    # fnmatch, as huggingface_hub's own allow_patterns filter does (``*`` crosses ``/``)
    return not patterns or any(fnmatch.fnmatch(relpath, p) for p in patterns)


def with_retries(fn: Callable[[], T], *, what: str, retries: int, backoff_s: float,
                 log: Callable[[str], None] = print) -> T:
    """Call ``fn``; on a transient error wait ``backoff_s * 2**attempt`` and try again, ``retries`` times.

    huggingface_hub retries single HTTP requests itself, but a snapshot of thousands of files over hours
    meets errors its per-request backoff gives up on; the snapshot is resumable, so retrying it whole is
    cheap.
    """
    from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    permanent = (RepositoryNotFoundError, RevisionNotFoundError, GatedRepoError, EntryNotFoundError)
    bugs = (TypeError, AttributeError, KeyError, NameError, AssertionError)
    attempt = 0
    while True:
        try:
            return fn()
        except bugs:
            raise
        except permanent as e:
            if isinstance(e, LocalEntryNotFoundError):  # "not in cache and hub unreachable": transient
                err: Exception = e
            else:
                raise DownloadError(f"{what}: {type(e).__name__}: {e}. Check the repo id and revision in the "
                                    f"source or [sources.<name>]; for a gated repo accept its terms and set "
                                    f"HF_TOKEN.") from e
        except Exception as e:  # network errors come as OSError, httpx or requests errors depending on version
            err = e
        if attempt >= retries:
            raise DownloadError(f"{what}: failed after {retries + 1} attempts: {type(err).__name__}: {err}. "
                                f"Rerun the build to resume; set HF_ENDPOINT for a mirror hub.") from err
        wait = backoff_s * (2 ** attempt)
        log(f"{what}: {type(err).__name__}: {err}; retrying in {wait:.0f}s ({attempt + 1}/{retries})")
        time.sleep(wait)
        attempt += 1


def list_mirror(root: str | os.PathLike, repo_id: str, patterns) -> list[dict[str, Any]]:
    base = Path(root) / repo_id
    if not base.is_dir():
        raise DownloadError(f"mirror folder {base} does not exist: lay files out as <mirror_root>/<repo_id>/"
                            f"<path in repo>, or remove [download] mirror_root to use the hub")
    out = []
    for p in base.rglob("*"):
        if p.is_file() and not p.name.startswith("."):
            rel = p.relative_to(base).as_posix()
            if matches(rel, patterns):
                st = p.stat()
                out.append({"relpath": rel, "path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    return sorted(out, key=lambda f: f["relpath"])


def remote_listing(repo_id: str, repo_type: str, commit: str, patterns, *, endpoint: str | None = None,
                   retries: int = 5, backoff_s: float = 2.0) -> list[dict[str, Any]]:
    """``[{"relpath", "size", "etag"}]`` of the repo's matching files at ``commit`` (one tree listing)."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    api = HfApi(endpoint=endpoint)
    tree = with_retries(lambda: list(api.list_repo_tree(repo_id, repo_type=repo_type, revision=commit,
                                                        recursive=True)),
                        what=f"listing {repo_type} {repo_id}@{commit[:12]}", retries=retries, backoff_s=backoff_s)
    out = [{"relpath": f.path, "size": int(f.size), "etag": f.lfs.sha256 if f.lfs else f.blob_id}
           for f in tree if isinstance(f, RepoFile) and matches(f.path, patterns)]
    return sorted(out, key=lambda f: f["relpath"])


def listing_changes(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> str | None:
    """What differs between two listings, by path, size and ``mtime_ns``/``etag``: None when nothing does,
    else e.g. "1 file added (data/c.jsonl), 1 changed (data/a.jsonl)"."""
    def key(f: dict) -> tuple:
        return f.get("size"), f.get("mtime_ns"), f.get("etag")

    a = {f["relpath"]: key(f) for f in old}
    b = {f["relpath"]: key(f) for f in new}
    parts = []
    for what, names in (("added", sorted(set(b) - set(a))), ("removed", sorted(set(a) - set(b))),
                        ("changed", sorted(k for k in set(a) & set(b) if a[k] != b[k]))):
        if names:
            parts.append(f"{len(names)} file{'s' if len(names) > 1 else ''} {what} ({names[0]}"
                         + (", ..." if len(names) > 1 else "") + ")")
    return ", ".join(parts) or None


def resolve_commit(repo_id: str, repo_type: str, revision: str | None, *, endpoint: str | None = None,
                   retries: int = 5, backoff_s: float = 2.0) -> str:
    """The commit sha ``revision`` points at now, so that a build is pinned even to a branch."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint)
    info = with_retries(lambda: api.repo_info(repo_id, repo_type=repo_type, revision=revision),
                        what=f"{repo_type} {repo_id}@{revision}", retries=retries, backoff_s=backoff_s)
    return info.sha


def snapshot(repo_id: str, repo_type: str, commit: str, patterns, local_dir: Path, *,
             endpoint: str | None = None, max_workers: int = 8, retries: int = 5,
             backoff_s: float = 2.0, progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """Download the matching files of ``repo_id@commit`` into ``local_dir`` (resumable) and list them.

    huggingface_hub's own caches (tree listing, per-file resume metadata) go under ``local_dir/.cache`` so
    that a build's download is self-contained and deleting the work folder deletes all of it. Its local-folder
    mode trusts a file whose metadata says it was fetched at this commit, so a file cut short or damaged
    after the download would stay: each local file is checked against the hub's size, and one that differs
    is deleted and fetched again.

    ``progress(bytes_there, bytes_total)`` is called about once a second while files arrive, and at the end:
    the listed files' bytes on disk (whole files and ``.incomplete`` parts) out of the listing's total."""
    from huggingface_hub import snapshot_download

    def fetch() -> None:
        with_retries(lambda: snapshot_download(repo_id, repo_type=repo_type, revision=commit,
                                               allow_patterns=list(patterns) if patterns else None,
                                               local_dir=str(local_dir), max_workers=max_workers,
                                               endpoint=endpoint, cache_dir=str(local_dir / ".cache" / "hub")),
                     what=f"snapshot of {repo_type} {repo_id}@{commit[:12]}", retries=retries, backoff_s=backoff_s)

    def wrong_size(files: list[dict]) -> list[Path]:
        bad = []
        for f in files:
            p = local_dir / f["relpath"]
            if not p.is_file() or p.stat().st_size != f["size"]:
                bad.append(p)
        return bad

    local_dir.mkdir(parents=True, exist_ok=True)
    remote = remote_listing(repo_id, repo_type, commit, patterns, endpoint=endpoint, retries=retries,
                            backoff_s=backoff_s)
    listed = {f["relpath"] for f in remote}
    for p in sorted(local_dir.rglob("*")):  # files of an older commit that this one no longer has
        rel = p.relative_to(local_dir).as_posix()
        if p.is_file() and not rel.startswith(".cache/") and matches(rel, patterns) and rel not in listed:
            p.unlink()
    with _watch_bytes(local_dir, remote, progress):
        fetch()
        bad = wrong_size(remote)
        if bad:
            for p in bad:
                p.unlink(missing_ok=True)
            fetch()
            bad = wrong_size(remote)
        if bad:
            raise DownloadError(f"{bad[0]}: its size differs from the hub's after downloading it again "
                                f"({len(bad)} file(s)); delete {local_dir} and run the build again")
    return [{"relpath": f["relpath"], "path": str((local_dir / f["relpath"]).resolve()), "size": f["size"],
             "etag": f["etag"]} for f in remote]


def bytes_there(local_dir: Path, files: list[dict[str, Any]]) -> int:
    """Bytes of ``files`` (a remote listing) under ``local_dir``: each whole file counts up to its listed size;
    huggingface_hub's partial downloads (``<local_dir>/.cache/huggingface/download/**/*.incomplete``) count as
    they grow. An estimate for progress only: nothing trusts it."""
    total = 0
    for f in files:
        with contextlib.suppress(OSError):
            total += min(int(f["size"]), (local_dir / f["relpath"]).stat().st_size)
    partial = local_dir / ".cache" / "huggingface" / "download"
    if partial.is_dir():
        for p in partial.rglob("*.incomplete"):
            with contextlib.suppress(OSError):
                total += p.stat().st_size
    return min(total, sum(int(f["size"]) for f in files))


@contextlib.contextmanager
def _watch_bytes(local_dir: Path, files: list[dict[str, Any]], progress: Callable[[int, int], None] | None,
                 every_s: float = 1.0):
    """Report :func:`bytes_there` to ``progress`` from a thread while the block runs, and once at its end.
    huggingface_hub's own per-file bars go to a terminal the build's line owns, so the build follows the
    bytes on disk instead (the same for one file or thousands, and for a resumed download)."""
    if progress is None:
        yield
        return
    total = sum(int(f["size"]) for f in files)

    def report() -> None:
        progress(bytes_there(local_dir, files), total)

    report()
    with every(every_s, report, name="download-bytes"):
        yield
    progress(bytes_there(local_dir, files), total)


def _repo_prefix(repo_id: str, repo_type: str) -> str:
    return repo_id if repo_type == "model" else f"{repo_type}s/{repo_id}"


def list_stream(repo_id: str, repo_type: str, commit: str, patterns, *, endpoint: str | None = None,
                retries: int = 5, backoff_s: float = 2.0) -> list[dict[str, Any]]:
    """List the matching files of ``repo_id@commit`` as ``hf://`` paths, without downloading them."""
    from huggingface_hub import HfFileSystem

    fs = HfFileSystem(endpoint=endpoint)
    root = f"{_repo_prefix(repo_id, repo_type)}@{commit}"
    found = with_retries(lambda: fs.find(root, detail=True), what=f"listing {root}", retries=retries,
                         backoff_s=backoff_s)
    out = []
    for path, info in found.items():
        rel = path[len(root):].lstrip("/")
        if info.get("type") == "file" and matches(rel, patterns):
            lfs = info.get("lfs") or {}
            out.append({"relpath": rel, "path": f"hf://{root}/{rel}", "size": int(info.get("size") or 0),
                        "etag": lfs.get("sha256") or info.get("blob_id")})
    return sorted(out, key=lambda f: f["relpath"])


def fetch_streamed(url: str, scratch: Path, *, endpoint: str | None = None, retries: int = 5,
                   backoff_s: float = 2.0) -> Path:
    """Copy one ``hf://`` file into ``scratch`` (the readers need a local, seekable file: parquet footers,
    gzip/zstd end-of-stream checks); the caller deletes it after reading."""
    from huggingface_hub import HfFileSystem

    fs = HfFileSystem(endpoint=endpoint)
    dest = scratch / url.rsplit("/", 1)[-1]

    def get() -> None:
        with atomic_path(dest) as tmp, fs.open(url[len("hf://"):], "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 22)

    with_retries(get, what=f"streaming {url}", retries=retries, backoff_s=backoff_s)
    return dest
