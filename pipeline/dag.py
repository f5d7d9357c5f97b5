"""The corpus DAG runner: ``python -m pipeline build|status <corpus config>``.

    python -m pipeline build  pipeline/configs/sample.toml    # offline, the embedded sample (make corpus)
    python -m pipeline build  pipeline/configs/jetmoe.toml    # the real datasets from the hub
    python -m pipeline status pipeline/configs/sample.toml    # per source and stage: tasks, docs, bytes

The config lists the stages (``[corpus] stages``); each stage class says what it runs after and whether
it runs per input group, per source or once for the corpus. The runner orders those units, runs every
datatrove job of a unit with the configured executor, checks that every task finished (Ray and Slurm do
not fail loudly), collects the unit's accounting and writes ``_DONE.json`` last. So:

* a rerun skips units whose ``_DONE.json`` matches (stage version + a fingerprint of the config values and
  upstream units it depends on) and, inside an unfinished unit, every task datatrove marked complete: a
  build killed at any point resumes where it stopped, with the same outputs;
* a failed task (a corrupt file) does not stop the others: units that need it are skipped, everything
  else runs, and the build exits 1 listing each failed task with its message and log file;
* with ``[executor] kind = "slurm"`` the whole DAG is submitted at once as dependent job arrays (afterok);
  run ``build`` again once they ended to check completion and write the accounting.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# datatrove logs every task at INFO to the console; the build shows progress bars and a summary instead
# (the full logs stay in each stage's _logs/<job>/logs/). Must be set before loguru is first imported.
os.environ.setdefault("LOGURU_LEVEL", "WARNING")

from datatrove.executor import LocalPipelineExecutor  # noqa: E402
from datatrove.executor.ray import RayPipelineExecutor  # noqa: E402
from datatrove.executor.slurm import SlurmPipelineExecutor  # noqa: E402

from jetmoe_core.io import write_json_atomic  # noqa: E402

from pipeline.accounting import StageAccount  # noqa: E402
from pipeline.config import ConfigError, CorpusConfig, fingerprint, load_config  # noqa: E402

DONE = "_DONE.json"
STARTED = "_STARTED.json"


class BuildError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------- planning
@dataclass
class Unit:
    """One stage for one input group, one source, or the whole corpus."""

    stage: str
    key: str | None
    deps: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.stage}/{self.key or '_corpus'}"


@dataclass
class Plan:
    config: CorpusConfig
    ctx: Any
    units: list[Unit]

    def unit(self, uid: str) -> Unit:
        return next(u for u in self.units if u.id == uid)

    def instance(self, unit: Unit):
        from pipeline.stages.base import STAGES

        return STAGES[unit.stage](self.ctx, unit.key)


def stage_order(names: list[str]) -> list[str]:
    """Topological order of the configured stages; ties keep the config's order."""
    from pipeline.stages.base import STAGES

    done: list[str] = []
    pending = list(names)
    while pending:
        ready = [n for n in pending if all(d in done for d in STAGES[n].after)]
        if not ready:
            raise ConfigError(f"[corpus] stages have a dependency cycle among {pending}")
        done.append(ready[0])
        pending.remove(ready[0])
    return done


def resolve_sources(cfg: CorpusConfig, registry: dict[str, Any] | None = None):
    """Specs with the config's overrides applied; selected groups; every known group's members."""
    if registry is None:
        from pipeline.sources import SOURCES, get_source

        registry = SOURCES
    else:
        get_source = registry.__getitem__
    specs = {}
    for name in cfg.sources:
        spec = get_source(name)
        o = cfg.override(name)
        changes = {k: v for k, v in (("revision", o.revision), ("repo_id", o.repo_id)) if v}
        if o.allow_patterns:
            changes["allow_patterns"] = tuple(o.allow_patterns)
        specs[name] = dataclasses.replace(spec, **changes) if changes else spec
    groups: dict[str, list[str]] = {}
    for name, spec in specs.items():
        groups.setdefault(spec.input_group or name, []).append(name)
    known: dict[str, list[str]] = {}
    for name, spec in registry.items():
        known.setdefault(spec.input_group or name, []).append(name)
    return specs, groups, known


def make_plan(cfg: CorpusConfig, registry: dict[str, Any] | None = None) -> Plan:
    import pipeline.stages  # noqa: F401
    from pipeline.stages.base import STAGES, StageContext

    specs, groups, known = resolve_sources(cfg, registry)
    ctx = StageContext(corpus=cfg.name, config=cfg, work_dir=cfg.work_dir, shards_dir=cfg.shards_dir,
                       sources=list(cfg.sources), options=dict(cfg.options), groups=groups, specs=specs,
                       known_groups=known)
    group_of = {m: g for g, ms in groups.items() for m in ms}
    units: list[Unit] = []
    for name in stage_order(cfg.corpus.stages):
        cls = STAGES[name]
        keys: list[str | None] = (list(groups) if cls.scope == "group" else list(cfg.sources)
                                  if cls.scope == "source" else [None])
        for key in keys:
            members = groups[key] if cls.scope == "group" else [key] if cls.scope == "source" else list(cfg.sources)
            deps: list[str] = []
            for d in cls.after:
                dcls = STAGES[d]
                if dcls.scope == "corpus":
                    dkeys = ["_corpus"]
                elif dcls.scope == "group":
                    dkeys = sorted({group_of[m] for m in members}, key=list(groups).index)
                else:
                    dkeys = members
                deps += [f"{d}/{k}" for k in dkeys]
            units.append(Unit(name, key, deps))
    return Plan(cfg, ctx, units)


# ---------------------------------------------------------------------------------------------- executors
class _RecordFailures:
    """Mixin for datatrove executors: a task that raises leaves ``failures/<rank>.json`` with its message.

    ``swallow``: the local executor stops scheduling (one worker) or tears down its pool (several workers)
    at the first exception; swallowing it lets every other task run, and the runner finds the failed rank
    by its missing completion marker. Ray and Slurm re-raise: there a failed task is isolated already.
    """

    swallow = True

    def _run_for_rank(self, rank: int, local_rank: int = 0, node_rank: int = -1):
        from datatrove.utils.stats import PipelineStats

        failure = f"failures/{rank:05d}.json"
        try:
            # local_rank > 0 keeps datatrove's per-task INFO lines out of the console (they go to the log file)
            stats = super()._run_for_rank(rank, local_rank + 1, node_rank)
        except Exception as e:  # noqa: BLE001 - any error is the task's failure, recorded and reported
            with self.logging_dir.open(failure, "w") as f:
                json.dump({"rank": rank, "error": str(e), "type": type(e).__name__,
                           "log": self.logging_dir.resolve_paths(f"logs/task_{rank:05d}.log")}, f)
            if self.swallow:
                return PipelineStats()
            raise
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
    out = []
    for r in ranks:
        p = logging_dir / "failures" / f"{r:05d}.json"
        if p.is_file():
            out.append(json.loads(p.read_text()))
        else:
            out.append({"rank": r, "error": "did not finish (killed, or still running on the cluster)",
                        "log": str(logging_dir / "logs" / f"task_{r:05d}.log")})
    return out


# ---------------------------------------------------------------------------------------------- units
def _spec_summary(spec) -> dict:
    keep = ("name", "repo_id", "repo_type", "revision", "allow_patterns", "file_format", "config", "input_group")
    return {k: getattr(spec, k, None) for k in keep}


def unit_fingerprint(plan: Plan, unit: Unit, cache: dict[str, str]) -> str:
    """What a unit's output depends on: stage version, its config table, its sources, upstream units."""
    if unit.id in cache:
        return cache[unit.id]
    stage = plan.instance(unit)
    cfg = plan.config
    members = stage.members
    parts: list[Any] = [unit.stage, stage.version, unit.key,
                        [_spec_summary(plan.ctx.specs[m]) for m in members if m in plan.ctx.specs],
                        [dataclasses.asdict(cfg.override(m)) for m in members]]
    extra = getattr(stage, "fingerprint_extra", None)
    parts.append(extra() if callable(extra) else (stage.options if stage.section else None))
    parts.append([unit_fingerprint(plan, plan.unit(d), cache) for d in unit.deps])
    cache[unit.id] = fingerprint(*parts)
    return cache[unit.id]


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _out_dirs(stage) -> list[Path]:
    """Where a unit writes: its own folder, plus each member's folder for a group stage."""
    dirs = [stage.output_dir]
    if stage.scope == "group":
        dirs += [stage.ctx.dir(stage.name, m) for m in stage.members if stage.ctx.dir(stage.name, m) not in dirs]
    return dirs


def is_done(stage, fp: str) -> bool:
    done = _read_json(stage.output_dir / DONE)
    return bool(done) and done.get("version") == stage.version and done.get("fingerprint") == fp


def dir_bytes(path: Path) -> tuple[int, int]:
    """Files and bytes of a stage's outputs (its _logs excluded)."""
    n = size = 0
    if path.is_dir():
        for p in path.rglob("*"):
            rel = p.relative_to(path).parts
            if p.is_file() and rel[0] != "_logs" and p.name not in (DONE, STARTED) and p.name != "stats.json":
                n += 1
                size += p.stat().st_size
    return n, size


@dataclass
class Outcome:
    unit: str
    state: str  # done | cached | failed | blocked | submitted
    failures: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def prepare(stage, fp: str) -> None:
    """Start (or resume) a unit: a changed config or stage version invalidates what an earlier run left."""
    started = _read_json(stage.output_dir / STARTED)
    done = _read_json(stage.output_dir / DONE)
    stale = (started and started.get("fingerprint") != fp) or (done and done.get("fingerprint") != fp)
    if stale:
        for d in _out_dirs(stage):
            if d.is_dir():
                shutil.rmtree(d)
    write_json_atomic(stage.output_dir / STARTED, {"stage": stage.name, "version": stage.version,
                                                   "fingerprint": fp})


def finish(stage, fp: str) -> dict[str, StageAccount]:
    """Collect and check the unit's accounting, then write _DONE.json (last, atomically)."""
    accounts = stage.accounts()
    for src, acc in accounts.items():
        acc.check(f"{stage.name}/{src}")
    extra_fn = getattr(stage, "done_extra", None)
    extra = extra_fn() if callable(extra_fn) else {}
    files, size = 0, 0
    for d in _out_dirs(stage):
        f, b = dir_bytes(d)
        files, size = files + f, size + b
    record = {"stage": stage.name, "version": stage.version, "fingerprint": fp,
              "accounts": {s: a.to_dict() for s, a in accounts.items()},
              "outputs": {"files": files, "bytes": size}, **extra}
    if stage.scope == "group":  # each member's folder gets its own record, for the manifest's chain
        for m in stage.members:
            d = stage.ctx.dir(stage.name, m)
            if d != stage.output_dir:
                mf, mb = dir_bytes(d)
                write_json_atomic(d / DONE, {"stage": stage.name, "version": stage.version, "fingerprint": fp,
                                             "accounts": {m: accounts[m].to_dict()} if m in accounts else {},
                                             "outputs": {"files": mf, "bytes": mb}, "group": stage.source})
    write_json_atomic(stage.output_dir / DONE, record)
    return accounts


def run_unit(plan: Plan, unit: Unit, fp: str) -> Outcome:
    stage = plan.instance(unit)
    t0 = time.monotonic()
    if is_done(stage, fp):
        return Outcome(unit.id, "cached")
    prepare(stage, fp)
    for d in _out_dirs(stage):
        d.mkdir(parents=True, exist_ok=True)  # a member that ends up with no documents still has a folder
    try:
        jobs = stage.jobs()
    except Exception as e:  # noqa: BLE001 - a stage that cannot even plan its jobs fails this unit only
        return Outcome(unit.id, "failed", [{"rank": None, "error": f"{type(e).__name__}: {e}", "log": None}],
                       time.monotonic() - t0)
    for job in jobs:
        logs = stage.logs_dir(job.name)
        ex = make_executor(plan.config, job, logs)
        try:
            ex.run()
        except Exception as e:  # noqa: BLE001 - executor-level errors; task errors are in failures/
            print(f"{unit.id}: executor error {type(e).__name__}: {e}", file=sys.stderr)
        missing = incomplete_ranks(logs, job.tasks)
        if missing:
            fails = read_failures(logs, missing)
            for f in fails:
                f["job"] = job.name
            return Outcome(unit.id, "failed", fails, time.monotonic() - t0)
    finish(stage, fp)
    return Outcome(unit.id, "done", seconds=time.monotonic() - t0)


# ---------------------------------------------------------------------------------------------- build
def build(config: str | Path | CorpusConfig, *, registry: dict[str, Any] | None = None,
          progress: bool = True) -> list[Outcome]:
    """Run the corpus DAG. Returns one outcome per unit; raises nothing for failed tasks (see outcomes)."""
    cfg = config if isinstance(config, CorpusConfig) else load_config(config, registry=registry)
    plan = make_plan(cfg, registry)
    lock = _lock_work_dir(cfg.work_dir)
    if sys.platform == "linux" and _PRCTL[0] is None:
        import ctypes

        # resolved here, not in the forked child: a child of a threaded process must not dlopen
        _PRCTL[0] = ctypes.CDLL(None, use_errno=True).prctl
    _BUILD_PID[0] = os.getpid()
    try:
        return _build(plan, cfg, progress)
    finally:
        _LOCK_FD[0] = None
        _BUILD_PID[0] = None
        os.close(lock)


#: the open lock file of the running build, and the build's pid; see _after_fork
_LOCK_FD: list[int | None] = [None]
_BUILD_PID: list[int | None] = [None]
_PRCTL: list[Any] = [None]


def _after_fork() -> None:
    """In every process forked by a running build (datatrove's pool workers and its Manager process):

    * close the copy of the lock file, so the lock ends with the build process itself;
    * ask Linux to SIGKILL the process when the build dies (prctl PR_SET_PDEATHSIG; Python has no
      binding for it, hence ctypes). Without it a SIGKILLed build leaves its pool workers finishing
      their task, and writing its files, while the rerun writes the same ones; and datatrove's Manager
      process lingers forever.
    """
    if _LOCK_FD[0] is not None:
        try:
            os.close(_LOCK_FD[0])
        except OSError:
            pass
        _LOCK_FD[0] = None
    if _BUILD_PID[0] is not None and os.getppid() == _BUILD_PID[0] and _PRCTL[0] is not None:
        import signal

        _PRCTL[0](1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
        if os.getppid() != _BUILD_PID[0]:  # the build died before prctl took effect
            os._exit(1)
    _BUILD_PID[0] = None  # grandchildren are their parent's business


os.register_at_fork(after_in_child=_after_fork)


def _lock_work_dir(work_dir: Path) -> int:
    """Hold an exclusive lock on the work folder for the whole build: two builds of one corpus at once
    would write the same task files.

    flock locks belong to the open file, which forked processes inherit; datatrove's local executor forks
    a Manager process that can outlive a SIGKILLed build, so children close their copy and the lock ends
    with the build process itself.
    """
    import fcntl

    work_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(work_dir / ".build.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise BuildError(f"another build is using {work_dir}; wait for it to end (find it with "
                         f"`fuser {work_dir / '.build.lock'}`)") from None
    _LOCK_FD[0] = fd
    return fd


def _build(plan: Plan, cfg: CorpusConfig, progress: bool) -> list[Outcome]:
    if cfg.executor.kind == "slurm":
        return submit_slurm(plan)
    ray_started = False
    if cfg.executor.kind == "ray":
        ray_started = _ray_init(cfg)
    from tqdm.auto import tqdm

    tqdm.monitor_interval = 0  # no monitor thread: the local executor forks, and a fork copies no threads

    cache: dict[str, str] = {}
    state: dict[str, str] = {}
    outcomes: list[Outcome] = []
    try:
        bar = tqdm(plan.units, desc=f"corpus {cfg.name}", unit="unit", disable=not progress, dynamic_ncols=True,
                   mininterval=0.5 if sys.stderr.isatty() else 10)
        for unit in bar:
            bar.set_postfix_str(unit.id)
            blocked = [d for d in unit.deps if state.get(d) not in ("done", "cached")]
            if blocked:
                out = Outcome(unit.id, "blocked", [{"rank": None, "error": f"needs {', '.join(blocked)}",
                                                    "log": None}])
            else:
                out = run_unit(plan, unit, unit_fingerprint(plan, unit, cache))
            state[unit.id] = out.state
            outcomes.append(out)
            if out.state == "failed":
                bar.write(f"FAILED {unit.id}: " + "; ".join(f["error"] for f in out.failures)[:500])
    finally:
        if ray_started:
            import ray

            ray.shutdown()
    return outcomes


def _ray_init(cfg: CorpusConfig) -> bool:
    import ray

    if ray.is_initialized():
        return False
    r = cfg.executor.ray
    kwargs: dict[str, Any] = {"ignore_reinit_error": True, "include_dashboard": False, "log_to_driver": False}
    if r.address:
        kwargs["address"] = r.address
    else:
        kwargs["num_cpus"] = r.num_cpus or os.cpu_count()
    ray.init(**kwargs)
    return True


def submit_slurm(plan: Plan, *, launch: bool = True) -> list[Outcome]:
    """Finalize finished units, then submit every other unit as Slurm job arrays chained by afterok.

    While any job an earlier ``build`` submitted is still queued or running (``squeue``), nothing is
    finalized or submitted: its unfinished tasks would otherwise be submitted a second time.
    """
    cache: dict[str, str] = {}
    last_job: dict[str, Any] = {}  # unit id → its last executor (for dependants)
    outcomes: list[Outcome] = []
    executors: list[Any] = []
    submitted: list[tuple[Any, str, list[Any]]] = []  # (stage, fingerprint, its executors)
    earlier = [j for u in plan.units for j in (_read_json(plan.instance(u).output_dir / STARTED) or {})
               .get("slurm_jobs", [])]
    active = _slurm_active(earlier) if earlier else []
    if active:
        return [Outcome(u.id, "queued", [{"rank": None, "log": None,
                                          "error": f"Slurm jobs {', '.join(active)} still queued or running"}])
                for u in plan.units]
    for unit in plan.units:
        stage = plan.instance(unit)
        fp = unit_fingerprint(plan, unit, cache)
        if is_done(stage, fp):
            outcomes.append(Outcome(unit.id, "cached"))
            continue
        deps = [last_job[d] for d in unit.deps if d in last_job]
        started = _read_json(stage.output_dir / STARTED)
        if not deps and started and started.get("fingerprint") == fp:
            jobs = stage.jobs()
            if all(not incomplete_ranks(stage.logs_dir(j.name), j.tasks) for j in jobs):
                finish(stage, fp)  # the cluster ran it; check and account for it now
                outcomes.append(Outcome(unit.id, "done"))
                continue
        prepare(stage, fp)
        prev = deps
        mine = []
        for job in stage.jobs():
            name = f"{plan.config.name}-{unit.stage}-{unit.key or 'corpus'}-{job.name}"
            ex = make_executor(plan.config, job, stage.logs_dir(job.name), job_name=name, depends_on=prev)
            executors.append(ex)
            mine.append(ex)
            prev = [ex]
        submitted.append((stage, fp, mine))
        last_job[unit.id] = prev[0] if prev else None
        if last_job[unit.id] is None:
            del last_job[unit.id]
        outcomes.append(Outcome(unit.id, "submitted"))
    if launch:
        for ex in executors:
            if ex.job_id is None:
                ex.launch_job()
        for stage, fp, mine in submitted:  # remembered, so that a rerun can tell they are still queued
            ids = [str(ex.job_id) for ex in mine if ex.job_id not in (None, -1)]
            write_json_atomic(stage.output_dir / STARTED, {"stage": stage.name, "version": stage.version,
                                                           "fingerprint": fp, "slurm_jobs": ids})
    plan.slurm_executors = executors  # kept for inspection (tests)
    return outcomes


def _slurm_active(job_ids: list[str]) -> list[str]:
    """Which of these Slurm jobs are still queued or running (empty when squeue knows none of them)."""
    import subprocess

    try:
        r = subprocess.run(["squeue", "-h", "-o", "%F", "-j", ",".join(sorted(set(job_ids)))],
                           capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        print("warning: squeue not found; cannot tell whether earlier Slurm jobs are still running",
              file=sys.stderr)
        return []
    if r.returncode != 0:  # squeue exits 1 with "Invalid job id" once every job has left the queue
        return []
    wanted = set(job_ids)
    return sorted({line.split()[0] for line in r.stdout.splitlines() if line.strip()} & wanted)


# ---------------------------------------------------------------------------------------------- reports
def _fmt_int(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def table(headers: list[str], rows: list[list[str]], right: set[int] | None = None) -> str:
    # a plain fixed-width table: the console output must stay readable in CI logs, without a dependency
    right = right or set()
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)] if rows else [len(h) for h in headers]
    def line(cells):
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(headers), "  ".join("-" * w for w in widths)] + [line(r) for r in rows])


def source_accounts(plan: Plan, source: str) -> list[dict]:
    """The source's finished stage records in DAG order (per-source view of each _DONE.json)."""
    out = []
    for name in stage_order(plan.config.corpus.stages):
        # per-source and group stages write a record in the source's folder; corpus stages (dedup_cross)
        # keep every source's account in the one record under _corpus/
        for folder in (plan.ctx.dir(name, source), plan.ctx.dir(name)):
            done = _read_json(folder / DONE)
            if done and source in done.get("accounts", {}):
                out.append(done["accounts"][source])
                break
    return out


def summary(plan: Plan) -> str:
    manifest = _read_json(plan.config.shards_dir / "manifest.json") or {}
    rows = []
    tot = [0, 0, 0, 0, 0, 0]
    for src in plan.config.sources:
        accs = source_accounts(plan, src)
        if not accs:
            rows.append([src, "-", "-", "-", "-", "-", "-", "not built"])
            continue
        dropped: dict[str, int] = {}
        rejected = 0
        deduped = 0
        for a in accs:
            for k, v in a.get("dropped", {}).items():
                if a["stage"].startswith("dedup") or "dedup" in k:
                    deduped += v
                else:
                    dropped[k] = dropped.get(k, 0) + v
            rejected += sum(a.get("rejected", {}).values())
        splits = manifest.get("sources", {}).get(src, {}).get("splits", {})
        tokens = sum(s.get("n_tokens", 0) for s in splits.values()) if splits else None
        top = ", ".join(f"{k}={v}" for k, v in sorted(dropped.items(), key=lambda kv: -kv[1])[:3])
        n_drop = sum(dropped.values())
        rows.append([src, _fmt_int(accs[0]["docs_in"]), _fmt_int(accs[-1]["docs_out"]), _fmt_int(n_drop),
                     _fmt_int(rejected), _fmt_int(deduped), _fmt_int(tokens), top or ""])
        for i, v in enumerate([accs[0]["docs_in"], accs[-1]["docs_out"], n_drop, rejected, deduped, tokens or 0]):
            tot[i] += v
    rows.append(["TOTAL"] + [_fmt_int(v) for v in tot[:5]] + [_fmt_int(tot[5]) if manifest else "-", ""])
    return table(["source", "docs in", "kept", "dropped", "rejected", "deduped", "tokens", "top drop reasons"],
                 rows, right={1, 2, 3, 4, 5, 6})


def status_rows(plan: Plan) -> list[list[str]]:
    rows = []
    cache: dict[str, str] = {}
    for unit in plan.units:
        stage = plan.instance(unit)
        fp = unit_fingerprint(plan, unit, cache)
        done = _read_json(stage.output_dir / DONE)
        started = _read_json(stage.output_dir / STARTED)
        tasks_done = tasks_total = 0
        logs_root = stage.output_dir / "_logs"
        job_dirs = sorted(p for p in logs_root.iterdir() if p.is_dir()) if logs_root.is_dir() else []
        partial_docs = 0
        for jd in job_dirs:
            ex = _read_json(jd / "executor.json") or {}
            total = int(ex.get("world_size") or ex.get("tasks") or 0)
            comp = len(list((jd / "completions").glob("*"))) if (jd / "completions").is_dir() else 0
            tasks_done += comp
            tasks_total += max(total, comp)
            for sp in (jd / "stats").glob("*.json") if (jd / "stats").is_dir() else []:
                steps = json.loads(sp.read_text())
                steps = steps["stats"] if isinstance(steps, dict) and "stats" in steps else steps
                if steps:
                    partial_docs += _stat_total(steps[-1])
        if done and done.get("fingerprint") == fp:
            state = "done"
        elif done or started:
            state = "stale" if (started or done).get("fingerprint") != fp else "running/partial"
        else:
            state = "pending"
        if not job_dirs:
            try:
                tasks_total = sum(j.tasks for j in stage.jobs())
            except Exception:  # noqa: BLE001 - a stage that needs upstream outputs to plan: unknown yet
                tasks_total = 0
        failed = sum(len(list((jd / "failures").glob("*.json"))) for jd in job_dirs if (jd / "failures").is_dir())
        if failed and state != "done":
            state = f"failed ({failed})"
        listing = _read_json(stage.output_dir / "files.json")
        if listing is not None:  # a download: its size is the listed files' (a mirror is not copied)
            who = unit.key if len(stage.members) == 1 else f"{unit.key} ({len(stage.members)} sources)"
            rows.append([who, stage.name, state, f"{tasks_done}/{tasks_total or '?'}",
                         f"{len(listing['files'])} files", _fmt_bytes(sum(f["size"] for f in listing["files"]))])
            continue
        for m in stage.members if stage.scope != "corpus" else [None]:
            if m is not None:
                mdone = _read_json(plan.ctx.dir(stage.name, m) / DONE) if state == "done" else None
                acc = (mdone or {}).get("accounts", {}).get(m)
                docs = acc["docs_out"] if acc else None
                _, size = dir_bytes(plan.ctx.dir(stage.name, m))
            else:
                accs = (done or {}).get("accounts", {}) if state == "done" else {}
                docs = sum(a["docs_out"] for a in accs.values()) if accs else None
                _, size = dir_bytes(stage.output_dir)
            if docs is None and partial_docs and stage.scope != "group":
                docs_s = f"~{partial_docs:,}"
            else:
                docs_s = _fmt_int(docs)
            rows.append([m or "(corpus)", stage.name, state, f"{tasks_done}/{tasks_total or '?'}", docs_s,
                         _fmt_bytes(size)])
    return rows


def _stat_total(step: dict) -> int:
    v = step.get("stats", {}).get("total", 0)
    return int(v.get("total", 0)) if isinstance(v, dict) else int(v)


def failure_report(outcomes: list[Outcome]) -> str:
    lines = []
    for o in outcomes:
        if o.state == "failed":
            for f in o.failures:
                rank = f"task {f['rank']}" if f.get("rank") is not None else "plan"
                log = f"\n      log: {f['log']}" if f.get("log") else ""
                lines.append(f"  {o.unit} [{f.get('job', '')} {rank}]: {f['error']}{log}")
    blocked = [o.unit for o in outcomes if o.state == "blocked"]
    if blocked:
        lines.append(f"  skipped because an earlier unit failed: {', '.join(blocked)}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- CLI
def _parser(prog: str, doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=doc)
    p.add_argument("config", help="corpus config TOML, e.g. pipeline/configs/sample.toml")
    return p


def build_main(argv: list[str] | None = None) -> int:
    p = _parser("python -m pipeline build", "Build a corpus (resumes where an earlier run stopped).")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs, CI)")
    p.add_argument("--rebuild", action="store_true", help="forget earlier runs: delete the work folder first")
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.config)
        if args.rebuild and cfg.work_dir.is_dir():
            shutil.rmtree(cfg.work_dir)
        t0 = time.monotonic()
        outcomes = build(cfg, progress=not args.no_progress)
        plan = make_plan(cfg)
    except (ConfigError, BuildError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.state] = counts.get(o.state, 0) + 1
    print()
    print(summary(plan))
    print(f"\ncorpus {cfg.name}: {len(outcomes)} units (" + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
          + f") in {time.monotonic() - t0:.1f}s; work dir {cfg.work_dir}")
    if counts.get("queued"):
        print(f"jobs submitted by an earlier build are still queued or running on Slurm "
              f"({outcomes[0].failures[0]['error']}); run the same command again when they have ended")
        return 0
    if cfg.executor.kind == "slurm" and counts.get("submitted"):
        print(f"submitted to Slurm; when the jobs have ended run `python -m pipeline build {args.config}` again "
              f"to check them and write the accounting (`python -m pipeline status {args.config}` shows progress)")
    report = failure_report(outcomes)
    if report:
        print("\nFAILED:\n" + report, file=sys.stderr)
        print("\nfix or delete the files named above and run the same command again: finished work is kept.",
              file=sys.stderr)
        return 1
    return 0


def status_main(argv: list[str] | None = None) -> int:
    p = _parser("python -m pipeline status", "Per source and stage: state, tasks done/total, docs, bytes.")
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.config)
        plan = make_plan(cfg)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows = status_rows(plan)
    print(table(["source", "stage", "state", "tasks", "docs", "bytes"], rows, right={3, 4, 5}))
    states = [r[2] for r in rows]
    print(f"\n{states.count('done')}/{len(states)} done; work dir {cfg.work_dir}")
    return 0
