"""The source interface: what a dataset is on the hub, and how one of its files becomes documents.

A :class:`SourceSpec` names a hub dataset (repo id, pinned revision, file patterns, file format) and
carries an *adapter*: a function that turns one raw record (a parsed JSON object or a parquet row as a
dict) into a datatrove :class:`~datatrove.data.Document`. ``SourceSpec.read`` does the rest: it streams
one local file, hands every record to the adapter, and yields documents and :class:`Rejected` records.

Two kinds of failure, kept apart on purpose:

* a bad **record** (invalid UTF-8, a malformed JSON line, a missing field, a wrong type, empty text) is
  yielded as :class:`Rejected` and the file goes on: one bad line in a 2 GB file must not cost the file;
* a bad **file** (empty, truncated, not the format it claims, a parquet whose schema lacks the needed
  columns) raises :class:`CorruptFileError`: nothing in it can be trusted, and the fix is a re-download.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from datatrove.data import Document

if TYPE_CHECKING:  # pragma: no cover
    from pipeline.sources.chat import ChatTemplate

FILE_FORMATS = ("parquet", "jsonl", "json", "json.gz", "jsonl.zst")
FAMILIES = ("web", "code", "chat")
#: raw records kept in a Rejected are cut to this many characters (the rejects file stays small)
RAW_LIMIT = 4096
#: rows per parquet record batch: small enough that a 300 MB shard never sits in memory at once
PARQUET_BATCH_ROWS = 1024
#: bytes read from a compressed stream or a JSON array at a time
CHUNK_BYTES = 1 << 20
#: a JSON array element larger than this is taken as a sign of a corrupt file (not read on to the end)
MAX_JSON_ELEMENT = 64 << 20


class UnknownSourceError(ValueError):
    """A source name that is not in :data:`pipeline.sources.SOURCES`."""


class CorruptFileError(RuntimeError):
    """A file that cannot be read as what it claims to be. ``path`` names it; the message says what is
    wrong and how to fix it (delete it and download it again)."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(
            f"{self.path}: {problem}. The file is corrupt or incomplete: delete it and download it again "
            f"(huggingface_hub snapshot_download re-fetches missing files).")


@dataclass(frozen=True)
class Rejected:
    """A bad record in an otherwise readable file."""

    source: str
    reason: str
    detail: str
    raw: str | None = None


class BadRecord(Exception):
    """Raised by adapters (through :class:`Row`) for a record that must be rejected."""

    def __init__(self, reason: str, detail: str):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


_TYPE_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "list", dict: "object"}


class Row:
    """One raw record plus where it came from; typed field access that raises :class:`BadRecord`.

    ``where`` is ``relpath:line`` for line formats, ``relpath#row N`` for parquet and ``relpath[i]`` for
    JSON arrays, so every message points at the exact record.
    """

    __slots__ = ("data", "relpath", "index", "where")

    def __init__(self, data: dict, relpath: str, index: int, where: str):
        self.data = data
        self.relpath = relpath
        self.index = index
        self.where = where

    @property
    def default_id(self) -> str:
        """``relpath#index``: stable as long as the hub file is (the revision is pinned)."""
        return f"{self.relpath}#{self.index}"

    def get(self, name: str, typ: type | tuple[type, ...] = str, *, required: bool = True,
            nonempty: bool = False, obj: dict | None = None, path: str | None = None) -> Any:
        d = self.data if obj is None else obj
        label = path or name
        if not isinstance(d, dict) or name not in d or d[name] is None:
            if required:
                raise BadRecord("missing_field", f"{self.where}: field '{label}' missing")
            return None
        val = d[name]
        types = typ if isinstance(typ, tuple) else (typ,)
        # bool is an int in Python; a JSON true where a count is expected is still the wrong type
        if not isinstance(val, types) or (isinstance(val, bool) and bool not in types):
            want = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
            raise BadRecord("wrong_type", f"{self.where}: field '{label}' is {type(val).__name__}, expected {want}")
        if nonempty and isinstance(val, (str, list)) and not (val.strip() if isinstance(val, str) else val):
            raise BadRecord("empty_text", f"{self.where}: field '{label}' is empty")
        return val

    def text(self, name: str, *, obj: dict | None = None, path: str | None = None) -> str:
        """A required, non-blank string field."""
        return self.get(name, str, nonempty=True, obj=obj, path=path)

    def doc(self, source: str, text: str, doc_id: str | None = None, /, **metadata: Any) -> Document:
        if not text.strip():
            raise BadRecord("empty_text", f"{self.where}: rendered text is empty")
        meta = {"source": source}
        meta.update({k: v for k, v in metadata.items() if v is not None})
        return Document(text=text, id=str(doc_id) if doc_id is not None else self.default_id, metadata=meta)


#: adapter(row, spec, template) -> Document ; raises BadRecord for a bad record
Adapter = Callable[[Row, "SourceSpec", "ChatTemplate"], Document]
#: file_adapter(records, spec, template, relpath) -> documents/rejects; for sources whose documents span
#: several records (oasst1 message trees)
FileAdapter = Callable[[Iterator["Row | Rejected"], "SourceSpec", "ChatTemplate", str],
                       Iterator["Document | Rejected"]]


@dataclass(frozen=True)
class SourceSpec:
    """One dataset of the recipe: where it is on the hub and how a record becomes a document."""

    name: str
    family: str
    repo_id: str
    revision: str
    allow_patterns: tuple[str, ...]
    file_format: str
    description: str
    adapter: Adapter | None = field(default=None, repr=False, compare=False)
    config: str | None = None
    repo_type: str = "dataset"
    input_group: str = ""
    #: parquet columns the adapter needs; a parquet file without them is a CorruptFileError
    required_columns: tuple[str, ...] = ()
    #: further parquet columns read when present (metadata)
    optional_columns: tuple[str, ...] = ()
    #: instead of ``adapter``: an adapter over a whole file's records (oasst1 trees)
    file_adapter: FileAdapter | None = field(default=None, repr=False, compare=False)
    #: the hub-side fields, for docs and tests: "content, url, ..."
    fields: str = ""
    #: for chat sets: how the record's fields become turns (the table in docs/sources.md prints it)
    rendering: str = ""
    #: why a revision is a branch, or which fields are unverified
    notes: str = ""
    #: the source bad records count against when it is not this one (a group's catch-all member)
    rejects_to: str | None = None

    def __post_init__(self):
        if not re.fullmatch(r"[a-z0-9_]+", self.name):
            raise ValueError(f"source name {self.name!r} must match [a-z0-9_]+")
        if self.family not in FAMILIES:
            raise ValueError(f"source {self.name}: family {self.family!r} is not one of {FAMILIES}")
        if self.file_format not in FILE_FORMATS:
            raise ValueError(f"source {self.name}: file_format {self.file_format!r} is not one of {FILE_FORMATS}")
        if (self.adapter is None) == (self.file_adapter is None):
            raise ValueError(f"source {self.name}: give exactly one of adapter / file_adapter")
        if not self.input_group:
            object.__setattr__(self, "input_group", self.name)

    # -- reading ---------------------------------------------------------------------------------
    def read(self, path: str | os.PathLike, *, relpath: str,
             template: "ChatTemplate | None" = None) -> Iterator[Document | Rejected]:
        """Read one local file whose path inside the hub repo is ``relpath``.

        Yields documents (``metadata["source"]`` = the source the row belongs to) and :class:`Rejected`
        for bad records. Raises :class:`CorruptFileError` for a file that cannot be read: empty,
        truncated, not valid for its format, or a parquet file without the needed columns. A truncated
        compressed stream is only detected at its end, after the records before the cut were yielded.
        """
        from pipeline.sources.chat import ChatTemplate

        template = template if template is not None else ChatTemplate()
        records = iter_records(path, relpath, self.file_format, source=self.reject_source,
                               columns=self.required_columns, optional_columns=self.optional_columns)
        if self.file_adapter is not None:
            yield from self.file_adapter(records, self, template, relpath)
            return
        for rec in records:
            if isinstance(rec, Rejected):
                yield rec
                continue
            try:
                yield self.adapter(rec, self, template)
            except BadRecord as bad:
                yield Rejected(self.reject_source, bad.reason, bad.detail, _raw(rec.data))

    @property
    def reject_source(self) -> str:
        """The source a bad record counts against (for the pile group: pile_rest, since an unreadable
        record cannot be routed by its ``meta.pile_set_name``)."""
        return self.rejects_to or self.name

    def matches(self, relpath: str) -> bool:
        """Whether a repo path is one of this source's files (fnmatch, as huggingface_hub does)."""
        from fnmatch import fnmatch

        return any(fnmatch(relpath, p) for p in self.allow_patterns)

    def local_files(self, root: str | os.PathLike) -> list[tuple[Path, str]]:
        """``(path, relpath)`` of this source's files under a local mirror root laid out as
        ``<root>/<repo_id>/<path in repo>`` (the embedded samples, or a snapshot_download target),
        sorted by relpath so every run sees the same order."""
        base = Path(root) / self.repo_id
        out = []
        if base.is_dir():
            for p in base.rglob("*"):
                if p.is_file():
                    rel = p.relative_to(base).as_posix()
                    if self.matches(rel):
                        out.append((p, rel))
        return sorted(out, key=lambda t: t[1])


def _raw(obj: Any) -> str | None:
    if obj is None:
        return None
    if isinstance(obj, bytes):
        s = obj.decode("utf-8", errors="backslashreplace")
    elif isinstance(obj, str):
        s = obj
    else:
        try:
            s = json.dumps(obj, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            s = repr(obj)
    return s if len(s) <= RAW_LIMIT else s[:RAW_LIMIT] + "…"


# -- record iteration per file format --------------------------------------------------------------
def iter_records(path: str | os.PathLike, relpath: str, file_format: str, *, source: str,
                 columns: Iterable[str] = (), optional_columns: Iterable[str] = ()) -> Iterator[Row | Rejected]:
    """Stream the records of one file as :class:`Row` (dict records) or :class:`Rejected`."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise CorruptFileError(path, f"cannot be opened ({e.strerror or e})") from e
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
        return Rejected(source, "invalid_utf8", f"{where}: invalid UTF-8 at byte {e.start}", _raw(line))
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        return Rejected(source, "invalid_json", f"{where}: malformed JSON ({e.msg} at column {e.colno})", _raw(text))
    if not isinstance(obj, dict):
        return Rejected(source, "wrong_type", f"{where}: record is a JSON {type(obj).__name__}, expected an object",
                        _raw(text))
    return Row(obj, relpath, lineno, where)


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
    except (gzip.BadGzipFile, EOFError, zlib.error, OSError) as e:
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
                           _raw(obj))
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
        return CorruptFileError(path, f"is not valid JSON ({what} at line {line})")

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
                    _raw(raw))

