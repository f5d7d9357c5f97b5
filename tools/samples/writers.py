"""Writing sample files the way the hub stores them, at the path the source's spec says.

    write_parquet(hub_path(out, "openwebmath", "data/train-00000-of-00114-5a023365406cb9c4.parquet"), table)

``hub_path`` takes the repo id from ``pipeline.sources`` and refuses a file name outside the spec's
``allow_patterns``, so the samples and the specs cannot drift apart. Every writer is deterministic (gzip with
mtime 0, single-threaded zstd, fixed parquet settings) and writes atomically.
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

from jetmoe_core.io import write_bytes_atomic


def hub_path(out: Path, source: str, relpath: str) -> Path:
    """``<out>/<repo id of the source>/<relpath>``; ``relpath`` must match one of the source's patterns."""
    from pipeline.sources import get_source

    spec = get_source(source)
    if not spec.matches(relpath):
        raise ValueError(f"{source}: sample file {relpath!r} matches none of its allow_patterns "
                         f"{spec.allow_patterns}; the source would never read it")
    return Path(out) / spec.repo_id / relpath


def _line(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n"


def _lines_bytes(records) -> bytes:
    """Records are dicts (written as JSON lines) or raw bytes (written as they are: the dirt)."""
    return b"".join(r if isinstance(r, bytes) else _line(r) for r in records)


def write_jsonl(path: Path, records) -> None:
    write_bytes_atomic(path, _lines_bytes(records))


def write_json_array(path: Path, records) -> None:
    write_bytes_atomic(path, json.dumps(records, ensure_ascii=False, indent=1).encode("utf-8") + b"\n")


def write_json_gz(path: Path, records) -> None:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="", compresslevel=9) as f:
        f.write(_lines_bytes(records))
    write_bytes_atomic(path, buf.getvalue())


def write_jsonl_zst(path: Path, records, frames: int = 1) -> None:
    import zstandard

    data = _lines_bytes(records)
    cctx = zstandard.ZstdCompressor(level=10, threads=0)
    if frames <= 1:
        write_bytes_atomic(path, cctx.compress(data))
        return
    # several frames in one file, as parallel compressors write them: the reader must handle it
    lines = data.splitlines(keepends=True)
    step = -(-len(lines) // frames)
    write_bytes_atomic(path, b"".join(cctx.compress(b"".join(lines[i:i + step])) for i in range(0, len(lines), step)))


def write_parquet(path: Path, table, row_group_size: int = 256) -> None:
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf, compression="snappy", row_group_size=row_group_size)
    write_bytes_atomic(path, buf.getvalue())
