"""Your own data as a source, declared in the corpus config: no Python.

    [sources.notes]                     # any new name ([a-z0-9_]+) beside the 22 recipe sources
    path = "data/notes"                 # a local folder (relative to where the build runs) ... or
    # repo_id = "my-org/my-dataset"     # ... a hub dataset, with revision = "<commit>" (default "main")
    format = "jsonl"                    # parquet, jsonl, jsonl.zst, json.gz or json (JSON Lines or one array)
    allow_patterns = ["**.jsonl"]       # default: every file ending in the format's extension
    text_field = "body"                 # the text; a dotted path reaches nested fields: "meta.body"
    # chat_field = "messages"           # instead: a list of turns rendered with [chat_template]
    # chat_role_key = "role"            # each turn's role and text keys (ShareGPT: "from" and "value")
    # chat_text_key = "content"
    id_field = "id"                     # optional: the document id (default <file>#<line or row>)
    metadata_fields = ["url"]           # optional: fields kept in the document's metadata
    family = "web"                      # web (default), code or chat (default with chat_field): its filters;
                                        # [filters.policy] notes = "prose" gives curated text the prose rules

    opts = from_table(UserSource, table, source=path, where="sources.notes")
    spec = user_spec("notes", opts)          # a SourceSpec: the stages read it like a recipe source
    problem = check_first_record(spec)       # None, or why the first file cannot be read as configured

Records are read by the same decoders as the recipe sources (``pipeline.sources.formats``), so bad records
are rejected with the same reasons (``missing_field``, ``wrong_type``, ``empty_text``, ``invalid_json``, ...)
and counted. A field missing from the *first* record of a file is taken for a wrong setting, not for a bad
record: the build stops, naming the file and line (or row) and the fields that record has, before any work
for a local folder (``check_first_record``, the download stage's preflight), in the format task for a hub
dataset.
"""
from __future__ import annotations

import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal

from datatrove.data import Document

from pipeline.sources.base import FILE_FORMATS, SourceSpec
from pipeline.sources.chat import ChatTemplate, ChatTemplateError
from pipeline.sources.records import BadRecord, CorruptFileError, Rejected, Row, raw_excerpt

Format = Literal["parquet", "jsonl", "jsonl.zst", "json.gz", "json"]
assert set(typing.get_args(Format)) == set(FILE_FORMATS), "user sources must read every file format"
#: the keys that make a [sources.<name>] table a source of your own rather than a recipe source's override
USER_KEYS = ("path", "format", "text_field", "chat_field")


class UserSourceError(ValueError):
    """A source of your own that does not match its data (a field name, a folder); the message names the
    file and record, what it has, and the key to fix."""


@dataclass
class UserSource:
    """``[sources.<name>]`` for data of your own (see the module docstring)."""

    format: Format
    """File format of every matching file."""
    path: str | None = None
    """A local folder holding the files (searched recursively)."""
    repo_id: str | None = None
    """Or a Hugging Face dataset repo."""
    revision: str | None = None
    """Branch, tag or commit of repo_id (default "main": pin a commit for a build that can be repeated)."""
    allow_patterns: list[str] | None = None
    """Which files (fnmatch on the path inside the folder or repo); default every *.<format> file."""
    text_field: str | None = None
    """The field holding the text; a dotted path reaches nested objects ("meta.body")."""
    chat_field: str | None = None
    """Instead of text_field: a list of turns, rendered with the corpus config's [chat_template]."""
    chat_role_key: str = "role"
    chat_text_key: str = "content"
    id_field: str | None = None
    """The document id (default: <file>#<line or row>)."""
    metadata_fields: list[str] = field(default_factory=list)
    """Fields copied into the document's metadata (dotted paths allowed)."""
    family: Literal["web", "code", "chat"] | None = None
    """The kind of text (as the catalog's sources have one): its filter rules and control-character handling;
    default "chat" with chat_field, else "web". Curated text gets the prose rules with [filters.policy]."""
    tasks: int | None = None
    """Format tasks (ranks) for this source; default [format] tasks."""
    stream: bool = False
    """repo_id only: read the files one at a time from the hub instead of downloading the repo."""

    def validate(self) -> None:
        if (self.path is None) == (self.repo_id is None):
            raise ValueError("give path (a local folder) or repo_id (a hub dataset), one of the two")
        if (self.text_field is None) == (self.chat_field is None):
            raise ValueError("give text_field (the field holding the text) or chat_field (a list of turns), one "
                             "of the two")
        for key in ("path", "repo_id", "revision", "text_field", "chat_field", "id_field", "chat_role_key",
                    "chat_text_key"):
            if getattr(self, key) == "":
                raise ValueError(f"{key} is empty: give one, or leave the key out")
        if self.path is not None and (self.revision is not None or self.stream):
            raise ValueError("revision and stream are for a hub repo_id, not a local path")
        if self.allow_patterns is not None and (not self.allow_patterns or not all(self.allow_patterns)):
            raise ValueError(f"allow_patterns = {self.allow_patterns!r}: give at least one non-empty pattern, e.g. "
                             f"[\"*.{self.format}\"], or leave the key out for every *.{self.format} file")
        if self.tasks is not None and self.tasks < 1:
            raise ValueError(f"tasks must be >= 1, got {self.tasks}")

    @property
    def fields(self) -> list[str]:
        """Every dotted field the source reads, the text (or chat) field first."""
        return [f for f in (self.text_field or self.chat_field, self.id_field, *self.metadata_fields) if f]


@dataclass(frozen=True)
class UserSourceSpec(SourceSpec):
    """A SourceSpec built from ``[sources.<name>]``; ``options`` says how a record becomes a document."""

    options: UserSource | None = field(default=None, compare=False)

    @property
    def local_path(self) -> str | None:
        return str(Path(self.options.path).expanduser()) if self.options and self.options.path else None


def user_spec(name: str, opts: UserSource) -> UserSourceSpec:
    where = opts.path or f"{opts.repo_id}@{opts.revision or 'main'}"
    return UserSourceSpec(
        name=name, family=opts.family or ("chat" if opts.chat_field else "web"), repo_id=opts.repo_id or "",
        revision=opts.revision or ("main" if opts.repo_id else ""),
        allow_patterns=tuple(opts.allow_patterns or (f"*.{opts.format}",)), file_format=opts.format,
        file_adapter=read_records, options=opts, fields=", ".join(opts.fields),
        description=f"your own data: {where} ({opts.format})",
        rendering=f"{opts.chat_field}: {opts.chat_role_key} → role, {opts.chat_text_key} → text"
        if opts.chat_field else "")


# ---------------------------------------------------------------------------------------------- reading
def _walk(data: Any, dotted: str) -> tuple[Any, str | None]:
    """The value at a dotted path, or (None, why not) naming the part that is missing and what is there."""
    node, done = data, []
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None, f"'{'.'.join(done)}' is a {type(node).__name__}, not an object with fields"
        if part not in node:
            at = f"'{'.'.join(done)}' has" if done else "the record has"
            have = ", ".join(map(str, node)) or "none"
            return None, f"field '{dotted}' is absent ({at} fields: {have})"
        node = node[part]
        done.append(part)
    return node, None


def _value(row: Row, dotted: str, typ, required: bool = True, **kw) -> Any:
    """A field at a dotted path through Row.get, so bad records get the usual reasons and places."""
    *parents, last = dotted.split(".")
    obj = row.data
    for i, part in enumerate(parents):
        obj = row.get(part, dict, obj=obj, path=".".join(parents[:i + 1]), required=required)
        if obj is None:
            return None
    return row.get(last, typ, obj=obj, path=dotted, required=required, **kw)


def _turns(row: Row, o: UserSource) -> list[tuple[str, str]]:
    items = _value(row, o.chat_field, list, nonempty=True)
    turns = []
    for i, item in enumerate(items):
        path = f"{o.chat_field}[{i}]"
        if not isinstance(item, dict):
            raise BadRecord("wrong_type", f"{row.where}: field '{path}' is {type(item).__name__}, expected object")
        turns.append((row.get(o.chat_role_key, str, obj=item, path=f"{path}.{o.chat_role_key}"),
                      row.get(o.chat_text_key, str, obj=item, path=f"{path}.{o.chat_text_key}")))
    return turns


def _document(row: Row, spec: UserSourceSpec, template: ChatTemplate) -> Document:
    o = spec.options
    if o.chat_field:
        try:
            text = template.render(_turns(row, o))
        except ChatTemplateError as e:
            raise BadRecord("unknown_role", f"{row.where}: {e}") from e
    else:
        text = _value(row, o.text_field, str, nonempty=True)
    doc_id = _value(row, o.id_field, (str, int), required=False) if o.id_field else None
    meta = {}
    for f in o.metadata_fields:
        v, _ = _walk(row.data, f)
        if v is not None:
            meta[f] = v if isinstance(v, (str, int, float, bool)) else str(v)
    return row.doc(spec.name, text, doc_id, **meta)


def first_record_problem(spec: UserSourceSpec, row: Row) -> str | None:
    """Why the first record of a file does not fit the source's settings (a field it lacks), or None."""
    o = spec.options
    key = "text_field" if o.text_field else "chat_field"
    for name, dotted in ((key, o.text_field or o.chat_field), ("id_field", o.id_field)):
        if dotted:
            _, why = _walk(row.data, dotted)
            if why:
                return (f"[sources.{spec.name}] {name} = {dotted!r}: {why} in the first record of "
                        f"{o.path or o.repo_id}/{row.where}; "
                        f"set {name} to the field that holds it (a dotted path such as meta.body reaches nested "
                        f"fields)")
    return None


def read_records(records: Iterator[Row | Rejected], spec: UserSourceSpec, template: ChatTemplate,
                 relpath: str) -> Iterator[Document | Rejected]:
    """The file adapter of a user source: one document per record; the first record is checked against the
    settings (``first_record_problem``), later bad records are rejected with their reason and place."""
    first = True
    for rec in records:
        if isinstance(rec, Rejected):
            yield rec
            continue
        if first:
            first = False
            problem = first_record_problem(spec, rec)
            if problem:
                raise UserSourceError(problem)
        try:
            yield _document(rec, spec, template)
        except BadRecord as bad:
            yield Rejected(spec.name, bad.reason, bad.detail, raw_excerpt(rec.data))


def check_first_record(spec: UserSourceSpec, template: ChatTemplate | None = None,
                       config: str | Path | None = None) -> str | None:
    """Before a build: the local folder is there, some file matches, and the first file's first record has the
    configured fields. Returns the problem in one line, or None."""
    o = spec.options
    where = f"[sources.{spec.name}] path = {o.path!r}" + (f" in {config}" if config else "")
    root = Path(o.path).expanduser()
    if root.is_file():
        return (f"{where}: {root.absolute()} is a file: give its folder as path and its name in allow_patterns "
                f"(e.g. allow_patterns = [{root.name!r}])")
    if not root.is_dir():
        return (f"{where}: no such folder {root.absolute()}; point path at the folder that holds the files "
                f"(relative paths start at {Path.cwd()})")
    files = spec.local_files(root)
    if not files:
        seen = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())[:5]
        return (f"{where}: no file under {root.absolute()} matches allow_patterns {list(spec.allow_patterns)} "
                f"(files there: {', '.join(seen) or 'none'}); fix allow_patterns or format")
    path, relpath = files[0]
    try:
        next(iter(spec.read(path, relpath=relpath, template=template)), None)
    except (UserSourceError, CorruptFileError) as e:
        return str(e)
    return None
