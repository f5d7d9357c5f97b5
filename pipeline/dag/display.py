"""What a build prints while it runs: live progress inside each unit, and one line per unit that ran.

    with Display(plan, enabled=True) as show:    # enabled=False: --no-progress (messages only)
        show.unit(i, unit)                       # unit i of the plan starts (or is found cached)
        with show.job(stage, job, j, n_jobs):     # while the job runs, a thread polls its tasks' progress files
            executor.run()
        show.finished(unit, outcome)             # its line: documents in and out, text read, outputs, time
        show.message("FAILED ...")               # a line that stays, on stdout (failures, "ran again")

On a terminal (stderr is a TTY) one live line is redrawn twice a second::

    [ 39/107] filter/refinedweb   52%|██████████▉          |  910 docs  767.4 KiB  212.2 KiB/s  ETA 0:03

Without one (CI, logs, Slurm) the same line is printed as a plain line every ``$JETMOE_PROGRESS_INTERVAL``
seconds (30 by default) or when the unit passes another tenth of its work, only when something changed,
never with carriage returns. In both modes every unit that ran ends with a line that stays::

    [ 39/107] filter/refinedweb  16%  279 docs  227.8 KiB  111.3 KiB/s  ETA 0:11
    [ 39/107] filter/refinedweb  done in 5.9s: 1,739 docs in, 468 out; 1.5 MiB of text read; 1 file, 149.7 KiB

The percentage and ETA are the job's: documents read out of those the upstream record counts, else input
bytes read out of the download listing's, else (a hub download) bytes on disk out of the hub's listing, else
tasks done (``progress.job_totals``). The rate is the text's (UTF-8 bytes of the documents read per second)
over this run; a hub download shows the bytes on disk out of the hub's total and their rate instead
(``25%  3.0 MiB of 12.0 MiB  1.2 MiB/s  ETA 0:07``: the form ``tests/test_dag_progress.py`` checks). A unit with several jobs (MinHash dedup) names
the job running: ``minhash_signatures 2/5``.

Thread safety: the poll thread and the main thread print under one lock, and every ``fork`` (datatrove's
local executor forks its workers while the thread runs) waits for that lock (``os.register_at_fork``), so no
child starts with a half-written line's lock held.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

from jetmoe_core.ticker import every
from pipeline.dag.progress import TASK_WRITE_S, JobProgress, interval_s, job_totals, read_job

_LOCK = threading.Lock()
_FORK_HOOKED = False
TTY_REFRESH_S = 0.5


def _hook_fork() -> None:
    global _FORK_HOOKED
    if not _FORK_HOOKED:
        os.register_at_fork(before=_LOCK.acquire, after_in_parent=_LOCK.release, after_in_child=_LOCK.release)
        _FORK_HOOKED = True


def fmt_duration(seconds: float) -> str:
    """``2:10``, ``1:02:05``."""
    minutes, secs = divmod(int(round(max(0.0, seconds))), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass
class _Job:
    label: str
    logs: Any
    tasks: int
    docs_total: int | None
    input_total: int | None
    start: JobProgress
    t0: float
    now: JobProgress
    cache: dict = field(default_factory=dict)
    printed_key: tuple = ()
    printed_t: float = 0.0
    printed_tenth: int = 0


class Display:
    """The build's console while it runs (see the module docstring). ``stream``, ``tty`` and ``interval``
    default to stderr, whether it is a terminal, and ``$JETMOE_PROGRESS_INTERVAL``."""

    def __init__(self, plan, *, enabled: bool = True, stream=None, tty: bool | None = None,
                 interval: float | None = None):
        self.plan = plan
        self.enabled = enabled
        self.err = stream or sys.stderr
        self.tty = enabled and (self.err.isatty() if tty is None else tty)
        self.interval = interval_s() if interval is None else interval
        #: how often tasks rewrite their progress files
        self.task_write_s = min(TASK_WRITE_S, self.interval)
        self.prefix = ""
        self.live = ""
        self.n_units = len(plan.units)
        self.unit_t0 = 0.0

    def __enter__(self) -> "Display":
        _hook_fork()
        return self

    def __exit__(self, *exc) -> None:
        with _LOCK:
            self._clear()

    # -- the main thread -----------------------------------------------------------------------------------
    def unit(self, index: int, unit) -> None:
        width = len(str(self.n_units))
        self.prefix = f"[{index:>{width}}/{self.n_units}] {unit.id}"
        self.unit_t0 = time.monotonic()
        if self.tty:
            with _LOCK:
                self._draw(self.prefix)

    @contextlib.contextmanager
    def job(self, stage, job, index: int, n_jobs: int) -> Iterator[None]:
        """Poll the job's progress in a thread while the block runs (nothing when disabled)."""
        if not self.enabled:
            yield
            return
        state = self.start_job(stage, job, index, n_jobs)
        period = TTY_REFRESH_S if self.tty else max(0.05, min(self.interval, 2.0))
        try:
            with every(period, lambda: self.poll(state), name="build-progress"):
                yield
        finally:
            self.poll(state)

    def start_job(self, stage, job, index: int, n_jobs: int) -> _Job:
        """What ``poll`` follows: the job's totals and its progress at the start (tasks finished earlier)."""
        logs = stage.logs_dir(job.name)
        docs_total, input_total = job_totals(stage.ctx, job)
        cache: dict = {}
        start = read_job(logs, job.tasks, cache)
        label = f"{job.name} {index + 1}/{n_jobs}" if n_jobs > 1 else ""
        return _Job(label, logs, job.tasks, docs_total, input_total, start, time.monotonic(), start, cache,
                    printed_t=self.unit_t0)

    def finished(self, unit, outcome) -> None:
        """The unit's line (units that ran), replacing its live line."""
        if not self.enabled:
            return
        if outcome.state != "done":
            with _LOCK:
                self._clear()
            return
        line = f"{self.prefix}  done in {_seconds(outcome.seconds)}" + done_details(self.plan, unit)
        with _LOCK:
            self._clear()
            print(line, file=self.err, flush=True)

    def message(self, text: str) -> None:
        """A line that stays, on stdout, above the live line."""
        with _LOCK:
            live = self.live
            self._clear()
            print(text, flush=True)
            if live:
                self._draw(live)

    # -- the poll thread -----------------------------------------------------------------------------------
    def poll(self, state: _Job) -> None:
        """Read the job's progress once and show it (a live line, or a plain line when one is due)."""
        with _LOCK:
            try:
                state.now = read_job(state.logs, state.tasks, state.cache)
            except OSError:  # the logging dir changing under us (a task creating its folders): next poll
                return
            frac = fraction(state, state.now)
            if self.tty:
                self._draw(self.render(state, frac, bar=True))
                return
            now = time.monotonic()
            key = (state.now.docs, state.now.input_bytes, state.now.tasks_done)
            tenth = int(frac * 10) if frac is not None else 0
            if key == state.printed_key or key == (state.start.docs, state.start.input_bytes, state.start.tasks_done):
                return
            # a tenth more (the end is the unit's own line), or the interval since the last line
            if now - state.printed_t >= self.interval or state.printed_tenth < tenth < 10:
                print(self.render(state, frac, bar=False), file=self.err, flush=True)
                state.printed_key, state.printed_t, state.printed_tenth = key, now, tenth

    def render(self, state: _Job, frac: float | None, *, bar: bool) -> str:
        from tqdm import tqdm

        from pipeline.dag.report import fmt_bytes

        now, start = state.now, state.start
        parts = [self.prefix + (f"  {state.label}" if state.label else "")]
        if frac is not None:
            parts.append(tqdm.format_meter(int(frac * 100), 100, 0, ncols=27, bar_format="{percentage:3.0f}%|{bar}|")
                         if bar else f"{int(frac * 100)}%")
        if state.tasks > 1:
            parts.append(f"tasks {now.tasks_done}/{state.tasks}")
        elapsed = time.monotonic() - state.t0
        if now.docs or state.docs_total:
            parts.append(f"{now.docs:,} docs")
            parts.append(fmt_bytes(now.bytes))
            if elapsed > 0 and now.bytes > start.bytes:
                parts.append(f"{fmt_bytes((now.bytes - start.bytes) / elapsed)}/s")
        elif now.input_total:  # a download: bytes on disk out of the hub's total, at the rate they arrive
            parts.append(f"{fmt_bytes(now.input_bytes)} of {fmt_bytes(now.input_total)}")
            if elapsed > 0 and now.input_bytes > start.input_bytes:
                parts.append(f"{fmt_bytes((now.input_bytes - start.input_bytes) / elapsed)}/s")
        eta = _eta(state, frac, elapsed)
        if eta is not None:
            parts.append(f"ETA {fmt_duration(eta)}")
        return "  ".join(parts)

    # -- drawing (under _LOCK) -----------------------------------------------------------------------------
    def _draw(self, line: str) -> None:
        if not self.tty:
            return
        cols = shutil.get_terminal_size((100, 20)).columns
        self.live = line
        self.err.write("\r" + line[: max(10, cols - 1)] + "\x1b[K")
        self.err.flush()

    def _clear(self) -> None:
        if self.tty and self.live:
            self.err.write("\r\x1b[K")
            self.err.flush()
        self.live = ""


def fraction(state: _Job, now: JobProgress) -> float | None:
    """How much of the job ``now`` is: documents, else input bytes, else tasks (see the module docstring)."""
    if now.tasks_done >= state.tasks:
        return 1.0
    if state.docs_total:
        f = now.docs / state.docs_total
    elif state.input_total or now.input_total:
        f = now.input_bytes / (state.input_total or now.input_total)
    elif state.tasks > 1:
        f = now.tasks_done / state.tasks
    else:
        return None
    return min(f, 0.999)


def _eta(state: _Job, frac: float | None, elapsed: float) -> float | None:
    if frac is None or frac >= 1.0 or elapsed <= 0:
        return None
    f0 = fraction(state, state.start) or 0.0
    if frac <= f0:
        return None
    return elapsed * (1.0 - frac) / (frac - f0)


def _seconds(s: float) -> str:
    return f"{s:.1f}s" if s < 60 else fmt_duration(s)


def done_details(plan, unit) -> str:
    """``: 1,739 docs in, 468 out; 2.3 MiB of text read; 1 file, 149.7 KiB`` from the unit's record, its
    tasks' progress files and its outputs (``report.unit_outputs``: a download's listed files)."""
    from pipeline.dag.progress import read_unit
    from pipeline.dag.records import DONE, read_json
    from pipeline.dag.report import fmt_bytes, unit_outputs

    stage = plan.instance(unit)
    done = read_json(stage.output_dir / DONE) or {}
    bits = []
    accounts = (done.get("accounts") or {}).values()
    if accounts:
        bits.append(f"{sum(a['docs_in'] for a in accounts):,} docs in, {sum(a['docs_out'] for a in accounts):,} out")
    read = read_unit(stage)
    if read.bytes:
        bits.append(f"{fmt_bytes(read.bytes)} of text read")
    files, size = unit_outputs(stage, done)
    bits.append(f"{files:,} file{'s' if files != 1 else ''}, {fmt_bytes(size)}")
    return ": " + "; ".join(bits)
