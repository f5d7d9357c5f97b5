"""Progress inside a running unit: what each datatrove task reports, and what the runner and ``status`` read.

    # task side (the executor does this around every task; see ``executors._RecordFailures``)
    with task_meter(logging_dir, rank, every_s=1.0) as pipeline_with_meter:   # see meter_pipeline
        ...
    input_read(f["size"])                 # a reader step: one input file read to its end (no-op outside a task)
    input_progress(there, total)          # a download: bytes on disk so far out of the listing's total

    # runner side
    now = read_job(logs_dir, tasks)       # JobProgress: docs, bytes, input_bytes, tasks_done over all ranks
    docs, input_bytes = job_totals(ctx, job)   # what the job will read, when known (for the ETA)

A task writes ``<logging dir>/progress/<rank>.json`` = ``{"docs", "bytes", "input_bytes", "done"}``:

* ``docs``: documents its first step (the reader) has handed on so far;
* ``bytes``: the UTF-8 bytes of those documents' text (exact and continuous: the text the stage works on);
* ``input_bytes``: bytes of input files read to their end (``input_read``; the format stage reports each
  listed file, so a stage reading raw files gets an ETA before any document count is known);
* ``input_total``: present only for a task that knows what it will read before the runner does (a hub
  download learns its files' sizes from the hub): the bytes of all of it; ``input_bytes`` then counts the
  bytes there so far (``input_progress``), so a long download shows a percentage, a rate and an ETA;
* ``done``: the task finished (written once more at its end).

Writes are atomic (a temp file renamed over the old one), throttled to one every ``every_s`` seconds, and
best-effort: progress is not a record the build trusts, so a write that fails (a full disk) stops the task's
progress reports and nothing else; the task's real outputs meet the same disk and report it. No fsync: a
progress file lost in a crash costs nothing. The files work the same for the local executor's forked
workers, Ray and Slurm (the logging dir is on the shared work folder), so ``status`` shows a Slurm job's
progress too.

Totals: a job whose first step reads the documents of an earlier stage (``DocsReader``) will read exactly
the ``docs_out`` that stage's record counts for that source; the format stage's reader reads the files of
its download listing, whose sizes are listed. A job reading neither (MinHash buckets, the tokenizer) has
only its task count.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

PROGRESS = "progress"
#: seconds between progress lines without a terminal (CI, logs, Slurm); 0 prints at every poll that saw a
#: change (tests). Tasks write their progress files at most every min(1 s, this).
INTERVAL_ENV = "JETMOE_PROGRESS_INTERVAL"
DEFAULT_INTERVAL_S = 30.0
TASK_WRITE_S = 1.0


def interval_s() -> float:
    """The progress interval from ``$JETMOE_PROGRESS_INTERVAL`` (seconds, default 30)."""
    from pipeline.config import ConfigError

    raw = os.environ.get(INTERVAL_ENV, "").strip()
    if not raw:
        return DEFAULT_INTERVAL_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ConfigError(f"${INTERVAL_ENV} = {raw!r}: give the seconds between progress lines, a number >= 0 "
                         f"(e.g. {INTERVAL_ENV}=30, or 0 for a line at every change)")
    return value


class TaskMeter:
    """One task's counters and its throttled progress file."""

    def __init__(self, path: Path, every_s: float):
        self.path, self.every_s = Path(path), every_s
        self.docs = self.bytes = self.input_bytes = 0
        self.input_total: int | None = None
        self._next = 0.0
        self._broken = False

    def count(self, text: str) -> None:
        self.docs += 1
        self.bytes += len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
        if time.monotonic() >= self._next:
            self.flush()

    def add_input(self, nbytes: int) -> None:
        self.input_bytes += int(nbytes)
        if time.monotonic() >= self._next:
            self.flush()

    def set_input(self, there: int, total: int) -> None:
        self.input_bytes, self.input_total = int(there), int(total)
        if time.monotonic() >= self._next:
            self.flush()

    def flush(self, done: bool = False) -> None:
        self._next = time.monotonic() + self.every_s
        if self._broken:
            return
        record = {"docs": self.docs, "bytes": self.bytes, "input_bytes": self.input_bytes, "done": done}
        if self.input_total is not None:
            record["input_total"] = self.input_total
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(record))
            os.replace(tmp, self.path)
        except OSError:  # best-effort (see the module docstring): the task's own writes report the disk
            self._broken = True
            with contextlib.suppress(OSError):
                tmp.unlink()


#: the meter of the task running in this process (a worker runs one task at a time)
_current: TaskMeter | None = None


def input_read(nbytes: int) -> None:
    """Called by a reader step when it has read one input file of ``nbytes`` to its end."""
    if _current is not None:
        _current.add_input(nbytes)


def input_progress(there: int, total: int) -> None:
    """Called by a download while it runs: ``there`` bytes of the ``total`` it will fetch are on disk (no-op
    outside a task). Called from the download's watcher thread; the meter's writes are atomic renames."""
    if _current is not None:
        _current.set_input(there, total)


class _Meter:
    """A pipeline element after the reader that counts the documents passing. A plain callable, not a
    ``PipelineStep``: datatrove keeps stats only for steps (objects with ``.stats``), so the stages' stats,
    which the accounting reads by step position, are the same with or without it."""

    def __call__(self, data, rank: int = 0, world_size: int = 1):
        if data is None:
            return None
        return self._count(data)

    @staticmethod
    def _count(data):
        meter = _current
        for doc in data:
            if meter is not None:
                meter.count(doc.text or "")
            yield doc

    def __repr__(self) -> str:
        return "progress meter"


def meter_pipeline(pipeline: list) -> list:
    """``pipeline`` with the meter after its first step (the one that reads)."""
    return [pipeline[0], _Meter(), *pipeline[1:]] if pipeline else pipeline


@contextlib.contextmanager
def task_meter(logging_dir: Path, rank: int, every_s: float) -> Iterator[TaskMeter]:
    """Install a meter for one task: its file is written at the start (the task is running), throttled while
    documents pass, and with ``done`` when the block ends without an error."""
    global _current
    meter = TaskMeter(Path(logging_dir) / PROGRESS / f"{rank:05d}.json", every_s)
    previous, _current = _current, meter
    try:
        meter.flush()
        yield meter
        meter.flush(done=True)
    finally:
        _current = previous


# ---------------------------------------------------------------------------------------------- reading
@dataclass
class JobProgress:
    """One job's progress summed over its ranks."""

    tasks: int
    tasks_done: int = 0
    tasks_running: int = 0
    docs: int = 0
    bytes: int = 0
    input_bytes: int = 0
    input_total: int = 0
    """bytes the tasks announced they will read (``input_progress``); 0 when none did"""


def read_job(logs_dir: Path, tasks: int, cache: dict[str, dict] | None = None) -> JobProgress:
    """Sum the progress files of a job's logging dir. ``cache`` keeps the records of finished tasks (they
    no longer change) between polls."""
    out = JobProgress(tasks)
    comp = logs_dir / "completions"
    out.tasks_done = len(os.listdir(comp)) if comp.is_dir() else 0
    folder = logs_dir / PROGRESS
    names = sorted(n for n in os.listdir(folder) if n.endswith(".json") and not n.startswith(".")) \
        if folder.is_dir() else []
    for name in names:
        rec = cache.get(name) if cache is not None else None
        if rec is None:
            try:
                rec = json.loads((folder / name).read_text())
            except (OSError, ValueError):  # replaced between listing and reading: next poll
                continue
            if cache is not None and rec.get("done"):
                cache[name] = rec
        out.docs += int(rec.get("docs", 0))
        out.bytes += int(rec.get("bytes", 0))
        out.input_bytes += int(rec.get("input_bytes", 0))
        out.input_total += int(rec.get("input_total", 0))
        out.tasks_running += not rec.get("done")
    return out


def read_unit(stage) -> JobProgress:
    """A unit's progress over all its jobs (for ``status`` and the build's line per unit): tasks summed;
    documents and bytes summed over the jobs whose stats are the unit's accounting (``Job.counts``: the
    cross-source dedup has one per source), else those of the job that read the most (MinHash dedup reads the
    same documents in several jobs)."""
    try:
        counting = {j.name for j in stage.jobs() if j.counts}
    except Exception:  # noqa: BLE001 - a stage that cannot plan its jobs yet: no job counts
        counting = set()
    logs_root = stage.output_dir / "_logs"
    total, best, counted = JobProgress(0), JobProgress(0), JobProgress(0)
    for jd in sorted(p for p in logs_root.iterdir() if p.is_dir()) if logs_root.is_dir() else []:
        ex = _read_json(jd / "executor.json") or {}
        jp = read_job(jd, int(ex.get("world_size") or ex.get("tasks") or 0))
        total.tasks += max(jp.tasks, jp.tasks_done)
        total.tasks_done += jp.tasks_done
        total.tasks_running += jp.tasks_running
        if jd.name in counting:
            counted.docs, counted.bytes, counted.input_bytes = (counted.docs + jp.docs, counted.bytes + jp.bytes,
                                                                counted.input_bytes + jp.input_bytes)
            counted.input_total += jp.input_total
        if jp.docs > best.docs or jp.input_bytes > best.input_bytes:
            best = jp
    use = counted if counted.docs or counted.input_bytes else best
    total.docs, total.bytes, total.input_bytes, total.input_total = (use.docs, use.bytes, use.input_bytes,
                                                                     use.input_total)
    return total


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def job_totals(ctx: Any, job: Any) -> tuple[int | None, int | None]:
    """``(docs, input_bytes)`` the job will read, each ``None`` when not known (see the module docstring)."""
    from pipeline.dag.records import stage_account
    from pipeline.stages.documents import DocsReader
    from pipeline.stages.format import FormatReader

    first = job.pipeline[0] if job.pipeline else None
    if isinstance(first, DocsReader):
        folder = Path(first.data_folder.path)
        stage, source = folder.name, folder.parent.name
        if ctx.dir(stage, source) == folder:
            acc = stage_account(ctx, stage, source)
            if acc is not None:
                return int(acc["docs_out"]), None
        return None, None
    if isinstance(first, FormatReader):
        listing = _read_json(Path(first.listing)) or {}
        files = listing.get("files")
        return None, (sum(int(f.get("size", 0)) for f in files) if files else None)
    return None, None
