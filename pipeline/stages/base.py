"""The plug-in interface between the DAG runner (``pipeline.dag``) and its stages.

A stage is a small class that says what it needs (``after``), where it writes (``output_dir``) and which
datatrove pipelines (``jobs``) produce that output. The runner owns everything else: ordering the DAG,
running each job with the executor the corpus config names (local, Slurm, Ray), skipping tasks that
datatrove's completion markers say are done, checking that every task finished, and collecting the
accounting. Stages never call an executor themselves, so every stage runs unchanged on a laptop or a
cluster.

Layout of a build's working folder (``work/<corpus>/``, git-ignored)::

    work/<corpus>/<source>/<stage>/...          output of a per-source stage
    work/<corpus>/_corpus/<stage>/...           output of a corpus-wide stage (cross-source dedup, tokenizer)
    work/<corpus>/<group>/<stage>/...           logs of a per-input-group stage (download, format), whose
                                                documents still land in each member's <source>/<stage>/
    <stage dir>/_logs/<job>/                    datatrove logging dir: completions/, stats/, logs/
    <stage dir>/_DONE.json                      written last by the runner: version, accounting

Documents pass between stages as datatrove JSONL(.gz) files (``JsonlWriter`` / ``JsonlReader``), with
``Document.metadata["source"]`` set, so any stage's output can be read with datatrove or a text editor.
Read a stage's documents with ``JsonlReader(dir, glob_pattern="*.jsonl.gz")``: the glob keeps ``_logs/``,
``_rejects/`` and ``_DONE.json`` out. Write them with ``compression=GZIP`` (below) so that the same input
gives the same bytes.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pipeline.accounting import StageAccount, from_datatrove_stats

#: fsspec compression name for gzip with a zero timestamp. Plain "gzip" stamps the write time into every
#: file header, so two identical builds would differ in bytes; fsspec's registry is the hook datatrove's
#: writers open files through, so registering a variant is enough (readers infer gzip from ".gz").
GZIP = "gzip_mtime0"


def _register_gzip() -> None:
    import gzip

    import fsspec.compression

    if GZIP in fsspec.compression.compr:
        return

    def _open(infile, mode="rb", **kwargs):
        if "r" in mode:
            return gzip.GzipFile(fileobj=infile, mode=mode, **kwargs)
        return gzip.GzipFile(fileobj=infile, mode=mode, mtime=0, filename="", **kwargs)

    fsspec.compression.register_compression(GZIP, _open, [])


_register_gzip()


@dataclass
class Job:
    """One datatrove pipeline that the runner executes with ``tasks`` independent ranks.

    ``counts`` marks the job whose datatrove stats are the stage's accounting (first step = docs in,
    last step = docs out); a stage with several jobs (e.g. MinHash signatures → buckets → clusters →
    filter) marks the one that reads the stage's input and writes its output.
    """

    name: str
    pipeline: list[Any]
    tasks: int = 1
    workers: int | None = None
    counts: bool = False


@dataclass
class StageContext:
    """What every stage of one build may read. ``config`` is the parsed corpus config."""

    corpus: str
    config: Any
    work_dir: Path
    shards_dir: Path
    sources: list[str]
    options: dict[str, Any] = field(default_factory=dict)
    #: input group → member sources selected in this build (the 4 pile_* sources share group "pile")
    groups: dict[str, list[str]] = field(default_factory=dict)
    #: source name → its ``pipeline.sources.SourceSpec`` (with the config's overrides applied)
    specs: dict[str, Any] = field(default_factory=dict)
    #: input group → every source of the group, selected or not (a shared file routes to all of them)
    known_groups: dict[str, list[str]] = field(default_factory=dict)

    def dir(self, stage: str, source: str | None = None) -> Path:
        return self.work_dir / (source or "_corpus") / stage

    @property
    def stages(self) -> list[str]:
        """The stages the config lists (``[corpus] stages``)."""
        return list(getattr(getattr(self.config, "corpus", None), "stages", None) or [])


class Stage(ABC):
    name: ClassVar[str]
    #: bump when the stage's output for the same input changes (dolma-style versioned names)
    version: ClassVar[str] = "v1"
    #: stages that must be done first: for a per-source stage, those of the same source; for a corpus
    #: stage, those of every source
    after: ClassVar[tuple[str, ...]] = ()
    #: stages this one runs after only when the config lists them: a stage that may be left out of the DAG
    #: (decontamination before dedup, the fidelity guard before the tokenizer and the shards)
    after_if_configured: ClassVar[tuple[str, ...]] = ()
    #: True for a stage whose outputs no other stage reads (a check, such as the fidelity guard): the units
    #: after it wait for it and are skipped when it fails, but its record is not one of their inputs, so
    #: rerunning it (another threshold) reruns nothing after it
    gate: ClassVar[bool] = False
    #: "source": one instance per source; "group": one per input group (``self.source`` is the group name and
    #: ``self.members`` its sources; reads shared files once, writes each member's <source>/<stage>/ and
    #: returns one account per member); "corpus": one instance for the whole build
    scope: ClassVar[str] = "source"
    #: the corpus-config table this stage reads (e.g. "filters"), parsed by the config loader into an
    #: ``Options`` dataclass (unknown keys are errors that name the key); ``None`` if it takes none
    section: ClassVar[str | None] = None
    Options: ClassVar[type | None] = None
    #: True when a rerun must keep the unit's files because its job brings them up to date in place (a hub
    #: download resumes and fetches only what is missing); the runner then clears only the task markers
    repairs_in_place: ClassVar[bool] = False
    #: True for a unit whose outputs must not outlive its record: when a build skips it (a unit it waits for
    #: failed) and its record no longer holds (another config, changed inputs), the runner removes them. The
    #: manifest: a trainer must not read a corpus that the current config did not finish
    clear_when_blocked: ClassVar[bool] = False

    @classmethod
    def runs_after(cls, stages: list[str] | tuple[str, ...]) -> tuple[str, ...]:
        """The stages this one runs after in a DAG of ``stages``: ``after``, then those of
        ``after_if_configured`` that ``stages`` lists."""
        return cls.after + tuple(d for d in cls.after_if_configured if d in stages and d not in cls.after)

    def __init__(self, ctx: StageContext, source: str | None = None):
        if self.scope in ("source", "group") and source is None:
            raise ValueError(f"stage {self.name} runs per {self.scope}: give a {self.scope}")
        self.ctx = ctx
        self.source = source

    @property
    def options(self) -> Any:
        return self.ctx.options.get(self.section) if self.section else None

    @property
    def members(self) -> list[str]:
        """The sources this instance writes: the group's members, the one source, or every source."""
        if self.scope == "group":
            return list(self.ctx.groups.get(self.source, [self.source]))
        if self.scope == "source":
            return [self.source]
        return list(self.ctx.sources)

    @property
    def output_dir(self) -> Path:
        return self.ctx.dir(self.name, self.source)

    def input_dir(self, stage: str, source: str | None = None) -> Path:
        return self.ctx.dir(stage, source if source is not None else self.source)

    def logs_dir(self, job: str) -> Path:
        return self.output_dir / "_logs" / job

    @abstractmethod
    def jobs(self) -> list[Job]:
        """The datatrove pipelines that produce this stage's output, in order."""

    # -- hooks the runner calls; override them where the defaults do not fit -----------------------------
    def accounts(self) -> dict[str, StageAccount]:
        """Per source: what went in and what came out. Called after every job finished.

        The default reads the datatrove stats of the job marked ``counts``; a corpus stage (or one that
        counts another way) overrides it. Must return one account per source the stage touched; a stage
        that makes files rather than passing documents on (download, tokenizer) returns ``{}``.
        """
        job = next((j for j in self.jobs() if j.counts), None)
        if job is None:
            return {}
        return {self.source: from_datatrove_stats(self.name, self.task_stats(job.name))}

    def fingerprint_extra(self) -> Any:
        """What the unit's output depends on besides the stage version, its sources' specs and overrides,
        and the upstream units: hashed into the unit's fingerprint, so a change reruns the unit and what
        depends on it. Default: the stage's parsed config table (``None`` for a stage without one). Override
        it to leave out settings that do not change the output (retries, worker counts)."""
        return self.options if self.section else None

    def done_extra(self) -> dict[str, Any]:
        """More keys for the unit's ``_DONE.json``, written after ``accounts()``. Default: none. It must not
        rely on ``accounts()`` having run in the same process (the runner may call either alone)."""
        return {}

    def output_paths(self) -> list[Path]:
        """Every folder or file this unit writes, its own folder first. The runner lists the files in them in
        ``_DONE.json`` (name, size; sha256 of the small ones), checks them on every build and ``status``
        (missing or changed files rerun the unit), and clears them before a rerun. Default: the unit's
        folder, plus each member's folder for a group stage; a stage writing elsewhere adds those paths."""
        paths = [self.output_dir]
        if self.scope == "group":
            paths += [self.ctx.dir(self.name, m) for m in self.members if self.ctx.dir(self.name, m) not in paths]
        return paths

    def preflight(self) -> str | None:
        """A problem that must stop the whole build before any unit runs (an input folder that does not
        exist), as one line naming the path and the fix; or ``None``. Default: ``None``."""
        return None

    def stale_reason(self) -> str | None:
        """Called on a unit whose record, inputs and outputs all hold: why its outputs no longer stand for
        what they were made from (a download whose mirror or hub listing changed), or ``None``. Default:
        ``None``. It must be cheap: it runs on every build and ``status``."""
        return None

    def task_stats(self, job: str) -> list[dict]:
        """The datatrove stats of every finished task of one of this stage's jobs, in rank order."""
        stats_dir = self.logs_dir(job) / "stats"
        return [json.loads(p.read_text()) for p in sorted(stats_dir.glob("*.json"))]


#: name → stage class; filled by ``@register``. The runner builds the DAG from this and the config.
STAGES: dict[str, type[Stage]] = {}


def register(cls: type[Stage]) -> type[Stage]:
    if cls.name in STAGES and STAGES[cls.name] is not cls:
        raise ValueError(f"two stages named {cls.name!r}: {STAGES[cls.name].__module__} and {cls.__module__}")
    STAGES[cls.name] = cls
    return cls
