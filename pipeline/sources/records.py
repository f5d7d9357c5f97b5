"""What a source adapter works with: one raw record (:class:`Row`), the verdicts on records and files.

    row.text("content")                  # a required, non-blank string field, or BadRecord
    row.get("meta", dict)                # typed access; BadRecord("wrong_type", "<file>:<line>: ...")
    row.doc(spec.name, text, doc_id, url=...)   # a datatrove Document (empty text is a BadRecord)

Two kinds of failure, kept apart on purpose:

* a bad **record** (invalid UTF-8, a malformed JSON line, a missing field, a wrong type, empty text) becomes
  a :class:`Rejected` and the file goes on: one bad line in a 2 GB file must not cost the file;
* a bad **file** (empty, truncated, not the format it claims, a parquet whose schema lacks the needed
  columns) raises :class:`CorruptFileError`: nothing in it can be trusted, and the fix is a re-download.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from datatrove.data import Document

#: raw records kept in a Rejected are cut to this many characters (the rejects file stays small)
RAW_LIMIT = 4096


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


def raw_excerpt(obj: Any) -> str | None:
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
