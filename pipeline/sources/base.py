"""The source interface: what a dataset is on the hub, and how one of its files becomes documents.

A :class:`SourceSpec` names a hub dataset (repo id, pinned revision, file patterns, file format) and
carries an *adapter*: a function that turns one raw record (a parsed JSON object or a parquet row as a
dict) into a datatrove :class:`~datatrove.data.Document`. ``SourceSpec.read`` does the rest: it streams
one local file, hands every record to the adapter, and yields documents and :class:`Rejected` records.

Records and verdicts (:class:`Row`, :class:`Rejected`, :class:`BadRecord`, :class:`CorruptFileError`) are in
``pipeline.sources.records``; the streaming decoders of each file format in ``pipeline.sources.formats``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from datatrove.data import Document
# a source's kind is the shard contract's: pretraining text, SFT conversations or DPO pairs
from jetmoe_core.shards import KINDS

from pipeline.sources.formats import FILE_FORMATS, iter_records
from pipeline.sources.records import RAW_LIMIT, BadRecord, CorruptFileError, Rejected, Row, raw_excerpt

if TYPE_CHECKING:  # pragma: no cover
    from pipeline.sources.chat import ChatTemplate

__all__ = ["SourceSpec", "Adapter", "FileAdapter", "FAMILIES", "KINDS", "FILE_FORMATS", "UnknownSourceError", "Row",
           "Rejected", "BadRecord", "CorruptFileError", "RAW_LIMIT"]

FAMILIES = ("web", "code", "chat")


class UnknownSourceError(ValueError):
    """A source name that is not in :data:`pipeline.sources.SOURCES`."""


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
    #: for a group: the member a bad record belongs to, read from what of the record is readable (the Pile's
    #: meta.pile_set_name), or None to count it against ``reject_source``
    reject_router: Callable[[dict], str | None] | None = field(default=None, repr=False, compare=False)
    #: "pretrain" (documents of text), "sft" (conversations) or "dpo" (preference pairs); decides the shards
    kind: str = "pretrain"

    def __post_init__(self):
        if not re.fullmatch(r"[a-z0-9_]+", self.name):
            raise ValueError(f"source name {self.name!r} must match [a-z0-9_]+")
        if self.family not in FAMILIES:
            raise ValueError(f"source {self.name}: family {self.family!r} is not one of {FAMILIES}")
        if self.kind not in KINDS:
            raise ValueError(f"source {self.name}: kind {self.kind!r} is not one of {KINDS}")
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
                yield self._routed(rec)
                continue
            try:
                yield self.adapter(rec, self, template)
            except BadRecord as bad:
                yield Rejected(self.reject_source_of(rec.data), bad.reason, bad.detail, raw_excerpt(rec.data))

    @property
    def reject_source(self) -> str:
        """The source a bad record counts against when nothing in it names one (for the pile group:
        pile_rest)."""
        return self.rejects_to or self.name

    def reject_source_of(self, record: Any) -> str:
        """The source a bad record counts against: the member its own fields name (``reject_router``), if it
        has readable ones that do, else ``reject_source``."""
        if self.reject_router is not None and isinstance(record, dict):
            try:
                routed = self.reject_router(record)
            except Exception:  # noqa: BLE001 - a record bad enough to break the router counts as unroutable
                routed = None
            if routed:
                return routed
        return self.reject_source

    def _routed(self, rej: Rejected) -> Rejected:
        """A record the file reader rejected (bad UTF-8, wrong type), routed if its text still parses."""
        if self.reject_router is None or not rej.raw:
            return rej
        try:
            record = json.loads(rej.raw)
        except ValueError:
            try:  # a line with bad UTF-8 is kept with its bad bytes as \xNN escapes, which JSON does not have
                record = json.loads(re.sub(r"\\x[0-9a-f]{2}", "\ufffd", rej.raw))
            except ValueError:
                return rej
        src = self.reject_source_of(record)
        return rej if src == rej.source else Rejected(src, rej.reason, rej.detail, rej.raw)

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
