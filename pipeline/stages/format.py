"""Stage ``format``: read every listed file of an input group, turn records into documents, reject bad ones.

One instance per input group; its ``tasks`` ranks split the group's files (file i goes to rank
i mod tasks, files sorted by path, so the split is the same every run). Outputs::

    work/<corpus>/<source>/format/<rank>.jsonl.gz            documents (datatrove JSONL, metadata.source)
    work/<corpus>/<source>/format/_rejects/<rank>.jsonl.gz   {source, reason, detail, raw, file}
    work/<corpus>/<group>/format/_logs/format/               datatrove logs, stats, completion markers

A bad record is rejected with a reason and the file goes on; a corrupt file (``CorruptFileError`` or any
error while reading it) fails its task with the file's name and what to do, which depends on where the file
came from (replace it in the mirror; delete the downloaded copy so that the next build fetches it again), and
the runner lets the other tasks finish. A file that cannot be read at all (it vanished, a disk error) is an
I/O fault: the build stops with exit status 2. Control characters in a document are handled by the policy
of its source's family (``pipeline.stages.control_chars``). Config::

    [format]
    tasks = 1              # ranks per input group ([sources.<name>] tasks overrides)
    scratch_dir = ""       # where streamed files are fetched one at a time; default <work_dir>/_scratch
    control_chars = {web = "strip", code = "strip", chat = "strip"}   # or "reject" / "keep", per family
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.writers import JsonlWriter

from pipeline import hub
from pipeline.dag import progress
from pipeline.accounting import AccountingError, StageAccount, from_datatrove_stats
from pipeline.stages import control_chars
from pipeline.stages.base import GZIP, Job, Stage, register
from pipeline.stages.control_chars import ControlChars

DOCS_FILE = "${source}/format/${rank}.jsonl.gz"
REJECTS_FILE = "${source}/format/_rejects/${rank}.jsonl.gz"
#: per-member counters in the reader step's stats; the "rejected_<reason>" / "dropped_<reason>" counters
#: next to them are the group totals that ``from_datatrove_stats`` reads
IN, REJ, NORM = "member_in:", "member_rejected:", "member_normalised:"


@dataclass
class FormatOptions:
    tasks: int = 1
    """Ranks per input group; [sources.<name>] tasks overrides it for that source's group."""
    scratch_dir: str | None = None
    """Where streamed (hf://) files are fetched one at a time; default <work_dir>/_scratch."""
    control_chars: ControlChars = field(default_factory=ControlChars)
    """What happens to control characters, per source family: "strip", "reject" or "keep"."""

    def validate(self) -> None:
        if self.tasks < 1:
            raise ValueError(f"tasks must be >= 1, got {self.tasks}")


class FormatFailure(RuntimeError):
    """A file of the group could not be read; the message names it."""


def corrupt_file_advice(listing: dict, relpath: str) -> str:
    """What to do about a corrupt input file, by where it came from (files.json's ``mode``)."""
    mode = listing.get("mode")
    if mode == "local":
        return (f"replace or remove it in {listing.get('root')} (or leave it out with allow_patterns) and run the "
                f"build again: a replaced file is noticed and read again")
    if mode == "mirror":
        return (f"replace it in the mirror (e.g. huggingface-cli download {listing.get('repo_id')} {relpath} "
                f"--repo-type {listing.get('repo_type', 'dataset')} --local-dir {listing.get('root')}) and run the "
                f"build again: the replaced file is noticed and read again")
    if mode == "hub":
        return "delete it and run the build again: the download fetches it again"
    return ("run the build again, which fetches it again; if it fails the same way, the hub's copy is bad: leave "
            "it out with [sources.<name>] allow_patterns")


def _reject_adapter(self, doc: Document) -> dict:
    m = doc.metadata
    return {"source": m["source"], "reason": m["reason"], "detail": m["detail"], "raw": doc.text, "file": m["file"]}


class FormatReader(PipelineStep):
    """Yields the group's documents from the files of this rank; writes rejects as it goes."""

    name = "📖 format"
    type = "📖 - READER"

    def __init__(self, *, group: str, listing: str, reader: Any, members: list[str], all_members: list[str],
                 template: Any, work_dir: str, scratch_dir: str, endpoint: str | None = None, retries: int = 5,
                 backoff_s: float = 2.0, families: dict[str, str] | None = None,
                 control: ControlChars | None = None):
        super().__init__()
        self.families = dict(families or {})
        self.control = control or ControlChars()
        self.group = group
        self.listing = listing
        self.reader = reader
        self.members = list(members)
        self.all_members = list(all_members)
        self.template = template
        self.work_dir = work_dir
        self.scratch_dir = scratch_dir
        self.endpoint, self.retries, self.backoff_s = endpoint, retries, backoff_s

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        from pipeline.sources import Rejected

        listing = json.loads(Path(self.listing).read_text())
        self._listing = listing
        files = listing["files"][rank::world_size]
        rejects = JsonlWriter(self.work_dir, output_filename=REJECTS_FILE, compression=GZIP,
                              adapter=_reject_adapter)
        with rejects:
            for f in files:
                path, scratch = f["path"], None
                if path.startswith("hf://"):
                    scratch = hub.fetch_streamed(path, Path(self.scratch_dir) / f"{self.group}-{rank:05d}",
                                                 endpoint=self.endpoint, retries=self.retries,
                                                 backoff_s=self.backoff_s)
                    path = str(scratch)
                try:
                    yield from self._read_file(path, f["relpath"], rank, rejects, Rejected)
                finally:
                    if scratch is not None:
                        scratch.unlink(missing_ok=True)
                progress.input_read(f["size"])  # the build's progress: this file's bytes are read

    def _read_file(self, path: str, relpath: str, rank: int, rejects: JsonlWriter, Rejected):
        n = 0
        try:
            for item in self.reader.read(path, relpath=relpath, template=self.template):
                n += 1
                self.stat_update("total")
                if isinstance(item, Rejected):
                    self._reject(rejects, rank, item.source, item.reason, item.detail, item.raw,
                                 f"{relpath}#reject{n}", relpath)
                    continue
                src = item.metadata.get("source")
                if src not in self.all_members:
                    raise FormatFailure(f"{relpath}: the {self.reader.name} reader routed a document to "
                                        f"{src!r}, which is not a source of input group {self.group!r} "
                                        f"({', '.join(self.all_members)}): a bug in pipeline/sources")
                if src not in self.members:
                    self.stat_update("dropped_source_not_selected")
                    continue
                family = self.families.get(src, "web")
                verdict, text = control_chars.apply(item.text, getattr(self.control, family))
                if verdict == "rejected":
                    self._reject(rejects, rank, src, control_chars.REASON,
                                 f"{relpath}: document {item.id}: {control_chars.describe(item.text)} "
                                 f"([format.control_chars] {family} = \"{getattr(self.control, family)}\")",
                                 item.text, f"{relpath}#reject{n}", relpath)
                    continue
                self.stat_update(IN + src)
                if verdict == "stripped":
                    item.text = text
                    self.stat_update(f"normalised_{control_chars.REASON}", f"{NORM}{src}:{control_chars.REASON}")
                self.update_doc_stats(item)
                yield item
        except FormatFailure:
            raise
        except OSError as e:
            from pipeline.sources.records import CorruptFileError

            if isinstance(e, CorruptFileError) or e.errno is None:  # a decoder's verdict on the bytes
                raise self._corrupt(e, path, relpath) from e
            raise  # the disk's fault, not the file's: the runner explains it and stops the build
        except Exception as e:
            raise self._corrupt(e, path, relpath) from e

    def _corrupt(self, e: Exception, path: str, relpath: str) -> FormatFailure:
        from pipeline.sources.records import CorruptFileError

        advice = corrupt_file_advice(getattr(self, "_listing", {}), relpath)
        if isinstance(e, CorruptFileError):
            return FormatFailure(f"format of {self.group}: {e.path}: {e.problem}. The file is corrupt or "
                                 f"incomplete: {advice}")
        # anything else while reading (a decoder bug) gets the file's name
        return FormatFailure(f"format of {self.group}: {path}: {type(e).__name__}: {e}")

    def _reject(self, rejects: JsonlWriter, rank: int, source: str, reason: str, detail: str, raw: str | None,
                doc_id: str, relpath: str) -> None:
        src = source if source in self.members else self.group
        self.stat_update(f"rejected_{reason}")
        if source in self.members:
            self.stat_update(IN + source, f"{REJ}{source}:{reason}")
        rejects.write(Document(text=raw or "", id=doc_id, metadata={"source": src, "reason": reason,
                                                                    "detail": detail, "file": relpath}), rank)


@register
class FormatStage(Stage):
    name = "format"
    version = "v2"  # v2: control characters handled by a policy per family
    after = ("download",)
    scope = "group"
    section = "format"
    Options = FormatOptions

    @property
    def tasks(self) -> int:
        opts = self.options or FormatOptions()
        cfg = self.ctx.config
        per_source = [cfg.override(m).tasks for m in self.members] if cfg is not None else []
        return max([t for t in per_source if t] or [opts.tasks])

    def jobs(self) -> list[Job]:
        from pipeline.sources.chat import ChatTemplate
        from pipeline.stages.download import DownloadOptions

        members = self.members
        specs = self.ctx.specs
        # the group's members share one reader: each member's read() routes every record of the shared
        # files, so reading through the first one reads the files once
        reader = specs[members[0]]
        all_members = self.ctx.known_groups.get(self.source) or members
        cfg = self.ctx.config
        template = ChatTemplate.from_dict(cfg.chat_template if cfg is not None else None)
        dl = self.ctx.options.get("download") or DownloadOptions()
        opts = self.options or FormatOptions()
        scratch = opts.scratch_dir or str(self.ctx.work_dir / "_scratch")
        step = FormatReader(group=self.source, listing=str(self.input_dir("download") / hub.LISTING),
                            reader=reader, members=members, all_members=all_members, template=template,
                            work_dir=str(self.ctx.work_dir), scratch_dir=scratch, endpoint=dl.endpoint,
                            retries=dl.retries, backoff_s=dl.backoff_s,
                            families={m: specs[m].family for m in members}, control=opts.control_chars)
        writer = JsonlWriter(str(self.ctx.work_dir), output_filename=DOCS_FILE, compression=GZIP)
        return [Job("format", [step, writer], tasks=self.tasks, counts=True)]

    def input_dir(self, stage: str, source: str | None = None) -> Path:
        return self.ctx.dir(stage, source if source is not None else self.source)

    def group_account(self) -> StageAccount:
        """Every record of the group's files: those of selected members, of members this build does not
        select (dropped: source_not_selected) and bad records no member can claim."""
        return from_datatrove_stats(self.name, self.task_stats("format")).check(f"format/{self.source}")

    def accounts(self) -> dict[str, StageAccount]:
        stats = self.task_stats("format")
        self.group_account()  # the group as a whole balances too
        counters: Counter = Counter()
        written: Counter = Counter()
        for task in stats:
            steps = task["stats"] if isinstance(task, dict) and "stats" in task else task
            for key, val in steps[0].get("stats", {}).items():
                counters[key] += int(val.get("total", 0) if isinstance(val, dict) else val)
            for key, val in steps[-1].get("stats", {}).items():
                if key.endswith(".jsonl.gz") and "/format/" in key:
                    written[key.split("/", 1)[0]] += int(val.get("total", 0) if isinstance(val, dict) else val)
        out: dict[str, StageAccount] = {}
        for m in self.members:
            acc = StageAccount(self.name, docs_in=counters[IN + m])
            for key, n in counters.items():
                if key.startswith(f"{REJ}{m}:"):
                    acc.reject(key.split(":", 2)[2], n)
                elif key.startswith(f"{NORM}{m}:"):
                    acc.normalise(key.split(":", 2)[2], n)
            acc.docs_out = acc.docs_in - sum(acc.rejected.values())
            if acc.docs_out != written[m]:
                raise AccountingError(f"format/{m}: {acc.docs_out} documents read but {written[m]} written")
            out[m] = acc.check(f"format/{m}")
        return out

    def fingerprint_extra(self) -> dict[str, Any]:
        # the documents depend on the file split and the chat rendering, not on where streamed files wait
        cfg = self.ctx.config
        opts = self.options or FormatOptions()
        return {"tasks": self.tasks, "chat_template": cfg.chat_template if cfg is not None else None,
                "control_chars": opts.control_chars}

    def done_extra(self) -> dict[str, Any]:
        """Written into the group's _DONE.json: the account of every record of its files."""
        return {"group": {"name": self.source, "account": self.group_account().to_dict()}}
