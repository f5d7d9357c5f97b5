"""Streaming one local file of each supported format as records: the decoders the source specs use.

    for rec in iter_records(path, "data/train-00000.parquet", "parquet", source="refinedweb",
                            columns=("content",)):
        ...   # Row (a dict record with where it came from) or Rejected (a bad record)

Formats: ``parquet`` (record batches, never the whole file), ``jsonl``, ``json.gz`` and ``jsonl.zst`` (line
by line), ``json`` (JSON Lines under a .json name, or one big array streamed element by element). A file
that cannot be read as its format raises :class:`CorruptFileError` naming it; a bad record is a
:class:`Rejected` with its ``file:line`` (or ``file#row N``, ``file[i]``) and the file goes on.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from pathlib import Path
from typing import Any, Iterable, Iterator

from jetmoe_core.io import IOFault

from pipeline.sources.records import CorruptFileError, Rejected, Row, raw_excerpt

FILE_FORMATS = ("parquet", "jsonl", "json", "json.gz", "jsonl.zst")
#: rows per parquet record batch: small enough that a 300 MB shard never sits in memory at once
PARQUET_BATCH_ROWS = 1024
#: bytes read from a compressed stream or a JSON array at a time
CHUNK_BYTES = 1 << 20
#: a JSON array element larger than this is taken as a sign of a corrupt file (not read on to the end)
MAX_JSON_ELEMENT = 64 << 20


def iter_records(path: str | os.PathLike, relpath: str, file_format: str, *, source: str,
                 columns: Iterable[str] = (), optional_columns: Iterable[str] = ()) -> Iterator[Row | Rejected]:
    """Stream the records of one file as :class:`Row` (dict records) or :class:`Rejected`."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:  # the file is not there (it vanished, or the disk failed): not the data's fault
        raise IOFault.from_os_error(e, "opening", path) from None
    if size == 0:
        raise CorruptFileError(path, "is empty (0 bytes)")
    if file_format == "parquet":
        yield from _parquet_records(path, relpath, source, tuple(columns), tuple(optional_columns))
    elif file_format == "json":
        yield from _json_records(path, relpath, source)
    else:
        yield from _line_records(path, relpath, file_format, source)


def _parse_line(line: bytes, relpath: str, lineno: int, source: str) -> Row | Rejected | None:
    if not line.strip():
        return None  # blank lines (a trailing newline, CRLF leftovers) are not records
    where = f"{relpath}:{lineno}"
    try:
        # a byte-order mark before the first record (editors on Windows write one) is not an error
        text = line.decode("utf-8-sig" if lineno == 1 else "utf-8")
    except UnicodeDecodeError as e:
        return Rejected(source, "invalid_utf8", f"{where}: invalid UTF-8 at byte {e.start}", raw_excerpt(line))
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        return Rejected(source, "invalid_json", f"{where}: malformed JSON ({_at(e.msg, f'column {e.colno}')})",
                        raw_excerpt(text))
    if not isinstance(obj, dict):
        return Rejected(source, "wrong_type", f"{where}: record is a JSON {type(obj).__name__}, expected an object",
                        raw_excerpt(text))
    return Row(obj, relpath, lineno, where)


def _at(msg: str, place: str) -> str:
    """json's message and where: some of its messages end in "at" already ("Unterminated string starting
    at"), the others get one ("Expecting value at column 3")."""
    return f"{msg} {place}" if msg.endswith(" at") else f"{msg} at {place}"


def _line_records(path: Path, relpath: str, file_format: str, source: str) -> Iterator[Row | Rejected]:
    n_records = 0
    lineno = 0
    for lineno, line in enumerate(_lines(path, file_format), start=1):
        rec = _parse_line(line, relpath, lineno, source)
        if rec is not None:
            n_records += 1
            yield rec
    if n_records == 0:
        raise CorruptFileError(path, f"holds no records ({lineno} blank lines after decompression)")


def _lines(path: Path, file_format: str) -> Iterator[bytes]:
    if file_format == "jsonl":
        with open(path, "rb") as f:
            yield from f
    elif file_format == "json.gz":
        yield from _gzip_lines(path)
    elif file_format == "jsonl.zst":
        yield from _zstd_lines(path)
    else:  # pragma: no cover - guarded by SourceSpec
        raise ValueError(file_format)


def _gzip_lines(path: Path) -> Iterator[bytes]:
    try:
        with gzip.open(path, "rb") as f:
            yield from f
    except OSError as e:
        if e.errno is not None:  # the disk's error, not the stream's (gzip's own errors carry no errno)
            raise
        raise CorruptFileError(path, f"is not a complete gzip stream ({type(e).__name__}: {e})") from e
    except (EOFError, zlib.error) as e:
        raise CorruptFileError(path, f"is not a complete gzip stream ({type(e).__name__}: {e})") from e


def _zstd_lines(path: Path) -> Iterator[bytes]:
    # Hand-written on top of zstandard's decompressobj: its stream_reader ends quietly at a truncated
    # frame (it cannot tell a cut file from a finished one), and a cut .jsonl.zst must be reported.
    import zstandard

    dctx = zstandard.ZstdDecompressor()
    dobj = dctx.decompressobj()
    pending = b""
    in_frame = False
    try:
        with open(path, "rb") as f:
            while True:
                chunk = f.read(CHUNK_BYTES)
                if not chunk:
                    break
                while chunk:
                    in_frame = True
                    out = dobj.decompress(chunk)
                    chunk = b""
                    if out:
                        pending += out
                        *lines, pending = pending.split(b"\n")
                        for line in lines:
                            yield line + b"\n"
                    if dobj.eof:  # a frame ended; a file may hold several (zstd --rsyncable, pzstd)
                        chunk = dobj.unused_data
                        dobj = dctx.decompressobj()
                        in_frame = False
    except zstandard.ZstdError as e:
        raise CorruptFileError(path, f"is not a valid zstd stream ({e})") from e
    if in_frame:
        raise CorruptFileError(path, "is truncated: the last zstd frame ends early")
    if pending:
        yield pending


def _json_records(path: Path, relpath: str, source: str) -> Iterator[Row | Rejected]:
    # Hub ``.json`` files are either one big JSON array (OpenHermes 2.5: 1.9 GB, Code-290k) or JSON Lines
    # under a .json name. JSON Lines are streamed like .jsonl; an array is streamed element by element.
    with open(path, "rb") as f:
        head = f.read(4096).lstrip()
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:].lstrip()
    if not head.startswith(b"["):
        yield from _line_records(path, relpath, "jsonl", source)
        return
    n = 0
    for i, obj in enumerate(_json_array_items(path)):
        n += 1
        where = f"{relpath}[{i}]"
        if not isinstance(obj, dict):
            yield Rejected(source, "wrong_type", f"{where}: record is a JSON {type(obj).__name__}, expected an object",
                           raw_excerpt(obj))
            continue
        yield Row(obj, relpath, i, where)
    if n == 0:
        raise CorruptFileError(path, "holds an empty JSON array")


def _json_array_items(path: Path) -> Iterator[Any]:
    # Hand-written because the stdlib json module only parses whole documents and loading a 1.9 GB array
    # costs ~10 GB of Python objects: decode the text incrementally and let json's raw_decode parse one
    # element at a time from a rolling buffer. An element is accepted only when a character follows it,
    # so a number or literal cut at the buffer's end is never taken for a whole one.
    import codecs

    decoder = json.JSONDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8-sig")()
    buf, pos, eof, line_base = "", 0, False, 0

    def more(f) -> bool:
        nonlocal buf, pos, eof, line_base
        if eof:
            return False
        chunk = f.read(CHUNK_BYTES)
        try:
            text = utf8.decode(chunk, final=not chunk)
        except UnicodeDecodeError as e:
            raise CorruptFileError(path, f"is not UTF-8 ({e.reason} in the JSON array)") from e
        line_base += buf.count("\n", 0, pos)
        buf, pos = buf[pos:] + text, 0
        eof = not chunk
        return True

    def skip_ws(f) -> str:
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n":
                pos += 1
            if pos < len(buf) or not more(f):
                return buf[pos] if pos < len(buf) else ""

    def bad(what: str):
        line = line_base + buf.count("\n", 0, pos) + 1
        return CorruptFileError(path, f"is not valid JSON ({_at(what, f'line {line}')})")

    with open(path, "rb") as f:
        if skip_ws(f) != "[":
            raise bad("expected '['")
        pos += 1
        first = True
        while True:
            c = skip_ws(f)
            if c == "]":
                pos += 1
                break
            if not first:
                if c != ",":
                    raise bad("expected ',' or ']'" if c else "unexpected end of file")
                pos += 1
                skip_ws(f)
            first = False
            while True:
                try:
                    obj, end = decoder.raw_decode(buf, pos)
                    if end < len(buf) or eof:
                        break
                except json.JSONDecodeError as e:
                    if eof or len(buf) - pos > MAX_JSON_ELEMENT:
                        raise bad(e.msg) from e
                if not more(f):
                    raise bad("unexpected end of file")
            pos = end
            yield obj
        if skip_ws(f):
            raise bad("trailing data after the array")


def _parquet_records(path: Path, relpath: str, source: str, columns: tuple[str, ...],
                     optional: tuple[str, ...]) -> Iterator[Row | Rejected]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise CorruptFileError(path, f"is not a readable parquet file ({e})") from e
    names = pf.schema_arrow.names
    missing = [c for c in columns if c not in names]
    if missing:
        raise CorruptFileError(
            path, f"has another schema: needs columns {list(columns)}, missing {missing}, found {names}")
    wanted = [c for c in names if c in columns or c in optional] if (columns or optional) else None
    row = 0
    try:
        for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=wanted):
            try:
                recs = batch.to_pylist()
            except UnicodeDecodeError:
                # parquet does not validate its strings: find the bad rows one by one, keep the others
                recs = [_parquet_row(batch, i, relpath, row + i, source) for i in range(batch.num_rows)]
            for rec in recs:
                yield rec if isinstance(rec, Rejected) else Row(rec, relpath, row, f"{relpath}#row {row}")
                row += 1
    except (pa.ArrowException, OSError) as e:
        raise CorruptFileError(path, f"cannot be decoded after row {row} ({e})") from e
    if row == 0:
        raise CorruptFileError(path, "holds no rows")


def _parquet_row(batch, i: int, relpath: str, row: int, source: str) -> dict | Rejected:
    import pyarrow as pa

    one = batch.slice(i, 1)
    try:
        return one.to_pylist()[0]
    except UnicodeDecodeError:
        pass
    raw, bad = {}, []
    for name, col in zip(one.schema.names, one.columns):
        try:
            raw[name] = col.to_pylist()[0]
        except UnicodeDecodeError as e:
            bad.append(f"'{name}' (byte {e.start})")
            try:
                raw[name] = col.cast(pa.binary()).to_pylist()[0]
            except pa.ArrowException:  # nested types holding bad strings: leave them out of the raw copy
                raw[name] = None
    return Rejected(source, "invalid_utf8", f"{relpath}#row {row}: invalid UTF-8 in field {', '.join(bad)}",
                    raw_excerpt(raw))
