"""datatrove's executors as the runner uses them: every failed task leaves a record with its message.

    ex = make_executor(cfg, job, stage.logs_dir(job.name))   # local, Ray or Slurm, from [executor]
    ex.run()
    missing = incomplete_ranks(logs, job.tasks)             # ranks without a completion marker
    read_failures(logs, missing)                            # [{"rank", "error", "type", "log"}]

A task that raises writes ``<logging dir>/failures/<rank>.json``; a rank with neither a completion marker
nor a failure record did not finish (killed, or still running on a cluster). Ray and Slurm report a failed
rank as a success, so the runner always decides from the markers, never from the executor's return.

A failure caused by the disk (an ``OSError`` such as ENOSPC, EROFS, EACCES, EIO, or ENOENT for a file that
vanished) is recorded with ``"io": true`` and a message naming the path, what the errno means and the fix;
when even the failure record cannot be written, ``read_failures`` finds that out by writing a probe file and
reports the disk's error instead. A failed task's traceback goes to its log file only: the console gets the
runner's one line per failure.

Every task also reports its progress (``progress``: documents and bytes read, in ``<logging dir>/progress/``),
and what the libraries print on stderr while it runs (datatrove's and huggingface_hub's tqdm bars) goes to
its log file, not to the console, where the build draws its own progress (``display``).
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import sys
from pathlib import Path
from typing import Iterator

# datatrove logs every task at INFO to the console; the build shows progress bars and a summary instead
# (the full logs stay in each stage's _logs/<job>/logs/). Must be set before loguru is first imported.
os.environ.setdefault("LOGURU_LEVEL", "WARNING")

from datatrove.executor import LocalPipelineExecutor  # noqa: E402
from datatrove.executor.ray import RayPipelineExecutor  # noqa: E402
from datatrove.executor.slurm import SlurmPipelineExecutor  # noqa: E402

import datatrove.executor.base as _dt_base  # noqa: E402
from datatrove.utils.logging import DATATROVE_COLORIZE_LOGS  # noqa: E402
from jetmoe_core.io import IOFault, write_json_atomic  # noqa: E402
from loguru import logger  # noqa: E402

from pipeline.config import CorpusConfig  # noqa: E402
from pipeline.dag.progress import TASK_WRITE_S, meter_pipeline, task_meter  # noqa: E402

#: errnos that mean the disk or the filesystem failed, not the data: the build stops and exits 2
IO_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.ENOENT,
             errno.EMFILE, errno.ENFILE, errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR, errno.EFBIG}


def io_fault_in(e: BaseException) -> OSError | None:
    """The disk error behind an exception (following ``raise ... from``), or None. A file that was read but
    is corrupt is the data's fault, not the disk's, even when a decoder reported it as an OSError."""
    from pipeline.sources.records import CorruptFileError

    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, CorruptFileError):
            return None
        if isinstance(e, OSError) and e.errno in IO_ERRNOS:
            return e
        e = e.__cause__ or e.__context__
    return None


def describe_failure(e: BaseException) -> dict:
    """``{"error", "type"[, "io", "errno"]}`` for a task's exception; an I/O fault is explained: its path,
    what the errno means and the fix."""
    fault = io_fault_in(e)
    if fault is not None:
        return {"error": str(IOFault.from_os_error(fault, "", fault.filename)), "type": type(fault).__name__,
                "io": True, "errno": errno.errorcode.get(fault.errno, str(fault.errno))}
    return {"error": str(e), "type": type(e).__name__}


def _task_logger(logging_dir, rank: int, local_rank: int = 0, node_rank: int = -1):
    """datatrove's ``add_task_logger`` (same log file, same format) with two changes, because datatrove has no
    option for them: a record that carries an exception goes to the task's log file only, so a failed task
    prints no traceback on the console (the runner reports it in one line); and a write error of the log
    file fails the task (``catch=False``) instead of loguru printing its own traceback to the console."""
    logger.remove()
    logfile = logging_dir.open(f"logs/task_{rank:05d}.log", "w")
    node_prefix = f"[NODE {node_rank}] " if node_rank != -1 else ""
    fmt = (f"{node_prefix}{{time:YYYY-MM-DD HH:mm:ss.SSS}} | <level>{{level: <8}}</level> | "
           f"{{name}}:{{function}}:{{line}} - <level>{{message}}</level>")
    logger.add(_console or sys.stderr, colorize=DATATROVE_COLORIZE_LOGS, level="INFO" if local_rank == 0 else "ERROR",
               format=fmt, filter=lambda record: record["exception"] is None)
    logger.add(logfile, colorize=False, level="DEBUG", format=fmt, catch=False)
    logger.info(f"Launching pipeline for {rank=}")
    return logfile


_dt_base.add_task_logger = _task_logger

#: the console while a task runs: ``sys.stderr`` then points at the task's log (``_StderrToLog``)
_console = None


class _StderrToLog(io.TextIOBase):
    """``sys.stderr`` while a task runs: what the libraries print there (datatrove's and huggingface_hub's
    tqdm bars, warnings) goes to the task's log file as DEBUG lines instead of the console, where the build
    shows its own progress. A bar's carriage-return frames keep only the last frame of each line."""

    def __init__(self) -> None:
        super().__init__()
        self._pending = ""
        self._busy = False

    def write(self, s: str) -> int:
        if self._busy:  # loguru reporting its own error through stderr: never loop back into it
            return len(s)
        self._busy = True
        try:
            self._pending += s
            *lines, self._pending = self._pending.split("\n")
            self._pending = self._pending.rsplit("\r", 1)[-1]
            for line in lines:
                line = line.rsplit("\r", 1)[-1].strip()
                if line:
                    logger.debug(f"stderr: {line}")
        finally:
            self._busy = False
        return len(s)

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True


@contextlib.contextmanager
def _task_console() -> Iterator[None]:
    global _console
    saved, _console = (sys.stderr, _console), sys.stderr
    sys.stderr = _StderrToLog()
    try:
        yield
    finally:
        sys.stderr, _console = saved


class _RecordFailures:
    """Mixin for datatrove executors: a task that raises leaves ``failures/<rank>.json`` with its message.

    ``swallow``: the local executor stops scheduling (one worker) or tears down its pool (several workers)
    at the first exception; swallowing it lets every other task run, and the runner finds the failed rank
    by its missing completion marker. Ray and Slurm re-raise: there a failed task is isolated already.
    """

    swallow = True
    #: seconds between a task's progress-file writes (``progress``); the runner sets it per job
    progress_every = TASK_WRITE_S
    #: set in a process whose task failed on the disk: its later tasks of this job are not started (the
    #: disk that failed one fails them all; the runner finds them unfinished and reports the disk's error)
    _disk_failed = False

    def _run_for_rank(self, rank: int, local_rank: int = 0, node_rank: int = -1):
        from datatrove.utils.stats import PipelineStats

        if self._disk_failed and self.swallow:
            return PipelineStats()
        if self.is_rank_completed(rank):  # datatrove skips it; its progress file stays as it was
            return super()._run_for_rank(rank, local_rank + 1, node_rank)
        failure = f"failures/{rank:05d}.json"
        pipeline = self.pipeline
        try:
            self.pipeline = meter_pipeline(pipeline)
            with task_meter(Path(self.logging_dir.path), rank, self.progress_every), _task_console():
                # local_rank > 0 keeps datatrove's per-task INFO lines out of the console (they go to the log file)
                stats = super()._run_for_rank(rank, local_rank + 1, node_rank)
        except Exception as e:  # noqa: BLE001 - any error is the task's failure, recorded and reported
            record = {"rank": rank, **describe_failure(e),
                      "log": self.logging_dir.resolve_paths(f"logs/task_{rank:05d}.log")}
            self._disk_failed = bool(record.get("io"))
            try:
                with self.logging_dir.open(failure, "w") as f:
                    json.dump(record, f)
            except OSError:  # the disk that failed the task refuses the record too: say it on the console
                print(f"error: task {rank}: {record['error']}", file=sys.stderr)
            if self.swallow:
                return PipelineStats()
            raise
        finally:
            self.pipeline = pipeline
        if self.logging_dir.exists(failure):
            self.logging_dir.rm(failure)
        return stats


class LocalExecutor(_RecordFailures, LocalPipelineExecutor):
    pass


class RayExecutor(_RecordFailures, RayPipelineExecutor):
    # a swallowed error would make Ray count the rank as done and merge stats that do not exist; raised,
    # it fails that Ray task only (not retried: it is the application's error) and the others go on
    swallow = False


class SlurmExecutor(_RecordFailures, SlurmPipelineExecutor):
    swallow = False
    #: the executors this one waits for (all must succeed: sbatch --dependency=afterok:<id>:<id>)
    depends_on: list = []

    def get_sbatch_args(self, max_array: int = 1) -> dict:
        # datatrove always writes --partition; without one ([executor.slurm] partition unset) sbatch uses the
        # cluster's default partition, which a directive "--partition=None" would not
        args = super().get_sbatch_args(max_array)
        if self.partition is None:
            args.pop("partition", None)
        return args

    def launch_job(self):
        # datatrove's ``depends`` takes one executor; a unit can need several (a corpus stage needs every
        # source), so launch them all and hand their ids to sbatch as one afterok list
        ids = []
        for dep in self.depends_on:
            if dep.job_id is None:
                dep.launch_job()
            if dep.job_id not in (None, -1):
                ids.append(str(dep.job_id))
        self.depends_on = []
        if ids:
            self.depends_job_id = ":".join(ids)
        return super().launch_job()


def make_executor(cfg: CorpusConfig, job, logging_dir: Path, *, job_name: str = "", depends_on=()):
    ex = cfg.executor
    workers = max(1, min(job.workers or ex.workers, job.tasks))
    if ex.kind == "local":
        return LocalExecutor(job.pipeline, tasks=job.tasks, workers=workers, logging_dir=str(logging_dir),
                             start_method=ex.start_method)
    if ex.kind == "ray":
        r = ex.ray
        return RayExecutor(job.pipeline, tasks=job.tasks, workers=workers, logging_dir=str(logging_dir),
                            cpus_per_task=r.cpus_per_task, mem_per_cpu_gb=r.mem_per_cpu_gb)
    s = ex.slurm
    logs = Path(s.logs_dir) / job_name if s.logs_dir else cfg.work_dir / "_slurm_logs" / job_name
    obj = SlurmExecutor(
        job.pipeline, tasks=job.tasks, workers=job.workers or ex.workers, time=s.time, partition=s.partition,
        cpus_per_task=s.cpus_per_task, mem_per_cpu_gb=s.mem_per_cpu_gb, qos=s.qos, job_name=job_name,
        venv_path=None if s.env_command else s.venv_path, env_command=s.env_command,
        max_array_size=s.max_array_size, sbatch_args=dict(s.sbatch_args), logging_dir=str(logging_dir),
        slurm_logs_folder=str(logs))
    obj.depends_on = list(depends_on)
    return obj


def incomplete_ranks(logging_dir: Path, tasks: int) -> list[int]:
    done = {p.name for p in (logging_dir / "completions").glob("*")} if (logging_dir / "completions").is_dir() else set()
    return [r for r in range(tasks) if f"{r:05d}" not in done]


def read_failures(logging_dir: Path, ranks: list[int]) -> list[dict]:
    """The failure record of each rank; for a rank without one, whether the disk is why (a probe write)."""
    out = []
    for r in ranks:
        p = logging_dir / "failures" / f"{r:05d}.json"
        log = str(logging_dir / "logs" / f"task_{r:05d}.log")
        try:
            out.append(json.loads(p.read_text()))
            continue
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        try:
            write_json_atomic(p.with_name(".probe.json"), {})
            p.with_name(".probe.json").unlink()
        except OSError as e:
            out.append({"rank": r, "log": log, **describe_failure(e)})
            continue
        out.append({"rank": r, "error": "did not finish (killed, or still running on the cluster)", "log": log})
    return out
