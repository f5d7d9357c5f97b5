"""Running the DAG on one machine (datatrove's local executor, or Ray): ``build(config)``.

    outcomes = build("pipeline/configs/sample.toml", progress=False)   # one Outcome per unit
    outcomes = build(cfg, registry=FAKE_SOURCES)                         # tests: tiny fake sources

Units run in plan order. A unit whose record still holds (``records.not_done_reason``: same settings, same
upstream records, its outputs there and unchanged) is ``cached``; otherwise it is prepared, every datatrove
job of it runs with the configured executor, every task is checked for its completion marker, and the unit's
accounting is collected and ``_DONE.json`` written last. A failed task fails its unit only: units that need it
are ``blocked`` (and a blocked unit marked ``clear_when_blocked``, the manifest, has its outputs removed when
its record no longer holds), everything else runs. An I/O fault (a full or read-only disk, a vanished file),
in this process or in a task, stops the build: its outcome carries the explained error (path, errno, fix).
With ``[executor] kind = "slurm"`` the DAG is submitted instead (``pipeline.dag.slurm``). While a job runs,
the build shows its tasks' progress (``pipeline.dag.display``; ``progress=False`` shows only failures).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any

from jetmoe_core.io import IOFault

from pipeline.config import CorpusConfig, load_config
from pipeline.dag.display import Display
from pipeline.dag.executors import incomplete_ranks, make_executor, read_failures
from pipeline.dag.lock import build_lock
from pipeline.dag.plan import BuildError, Plan, Unit, make_plan
from pipeline.dag.records import (Outcome, clear, finish, not_done_reason, prepare, unit_fingerprint,
                                  unit_inputs)
from pipeline.dag.slurm import submit_slurm


def run_unit(plan: Plan, unit: Unit, fp: str, show: Display | None = None) -> Outcome:
    """Run one unit unless its record still holds. An OSError in this process (disk full, read-only folder,
    a vanished file) becomes an I/O-fault outcome that names the path and the fix. ``show`` displays the
    progress of its jobs while they run."""
    stage = plan.instance(unit)
    t0 = time.monotonic()
    action = f"checking {unit.id}:"
    try:
        inputs = unit_inputs(plan, unit)
        try:
            reason = not_done_reason(stage, fp, inputs)
        except OSError:
            raise
        except Exception as e:  # noqa: BLE001 - a stage check that cannot run (the hub unreachable) fails the unit
            return Outcome(unit.id, "failed", [{"rank": None, "error": f"{type(e).__name__}: {e}", "log": None}],
                           time.monotonic() - t0)
        if reason is None:
            return Outcome(unit.id, "cached")
        action = f"starting {unit.id}:"
        prepare(stage, fp, inputs)
        members = [stage.ctx.dir(stage.name, m) for m in stage.members] if stage.scope == "group" else []
        for d in [stage.output_dir, *members]:  # a member that ends up with no documents still has a folder
            d.mkdir(parents=True, exist_ok=True)
        try:
            jobs = stage.jobs()
        except OSError:
            raise
        except Exception as e:  # noqa: BLE001 - a stage that cannot even plan its jobs fails this unit only
            return Outcome(unit.id, "failed", [{"rank": None, "error": f"{type(e).__name__}: {e}", "log": None}],
                           time.monotonic() - t0, reason)
        for i, job in enumerate(jobs):
            logs = stage.logs_dir(job.name)
            action = f"running {unit.id} ({job.name}):"
            ex = make_executor(plan.config, job, logs)
            if show is not None:
                ex.progress_every = show.task_write_s
            try:
                with show.job(stage, job, i, len(jobs)) if show is not None else contextlib.nullcontext():
                    ex.run()
            except OSError:
                raise
            except Exception as e:  # noqa: BLE001 - executor-level errors; task errors are in failures/
                msg = f"{unit.id}: executor error {type(e).__name__}: {e}"
                show.message(msg) if show is not None else print(msg, file=sys.stderr)
            missing = incomplete_ranks(logs, job.tasks)
            if missing:
                fails = read_failures(logs, missing)
                for f in fails:
                    f["job"] = job.name
                return Outcome(unit.id, "failed", fails, time.monotonic() - t0, reason)
        action = f"recording {unit.id}:"
        finish(stage, fp, unit_inputs(plan, unit))
    except OSError as e:
        fault = IOFault.from_os_error(e, action, e.filename)
        return Outcome(unit.id, "failed", [{"rank": None, "error": str(fault), "log": None, "io": True}],
                       time.monotonic() - t0)
    return Outcome(unit.id, "done", seconds=time.monotonic() - t0, reason=reason)


def preflight(plan: Plan) -> None:
    """Stop before any unit runs when an input cannot be there (``Stage.preflight``): one line per problem."""
    problems: list[str] = []
    for unit in plan.units:
        problem = plan.instance(unit).preflight()
        if problem and problem not in problems:
            problems.append(problem)
    if problems:
        raise BuildError("; ".join(problems))


def build(config: str | Path | CorpusConfig, *, registry: dict[str, Any] | None = None,
          progress: bool = True) -> list[Outcome]:
    """Run the corpus DAG. Returns one outcome per unit; raises nothing for failed tasks (see outcomes), a
    ``BuildError`` when the build cannot start, an ``IOFault`` when its work folder cannot be used."""
    cfg = config if isinstance(config, CorpusConfig) else load_config(config, registry=registry)
    plan = make_plan(cfg, registry)
    preflight(plan)
    with build_lock(cfg.work_dir):
        return _build(plan, cfg, progress)


def _build(plan: Plan, cfg: CorpusConfig, progress: bool) -> list[Outcome]:
    if cfg.executor.kind == "slurm":
        return submit_slurm(plan)
    ray_started = False
    if cfg.executor.kind == "ray":
        ray_started = _ray_init(cfg)
    cache: dict[str, str] = {}
    state: dict[str, str] = {}
    outcomes: list[Outcome] = []
    io_fault = False
    try:
        with Display(plan, enabled=progress) as show:
            for index, unit in enumerate(plan.units, 1):
                show.unit(index, unit)
                blocked = [d for d in unit.deps + unit.gates if state.get(d) not in ("done", "cached")]
                if io_fault:  # a full or read-only disk fails everything after it: stop at the first fault
                    out = Outcome(unit.id, "blocked", [{"rank": None, "log": None,
                                                        "error": "not run: an I/O fault stopped the build"}])
                elif blocked:
                    out = Outcome(unit.id, "blocked", [{"rank": None, "error": f"needs {', '.join(blocked)}",
                                                        "log": None}])
                    stale = plan.instance(unit)
                    if stale.clear_when_blocked and not_done_reason(stale, unit_fingerprint(plan, unit, cache),
                                                                    unit_inputs(plan, unit)) is not None:
                        clear(stale)
                else:
                    out = run_unit(plan, unit, unit_fingerprint(plan, unit, cache), show)
                state[unit.id] = out.state
                outcomes.append(out)
                show.finished(unit, out)
                if out.state == "failed":
                    io_fault = io_fault or out.io_fault
                    show.message(f"FAILED {unit.id}: " + "; ".join(f["error"] for f in out.failures)[:500])
                elif out.state == "done" and out.reason and out.reason not in ("pending", "inputs changed"):
                    show.message(f"{unit.id}: ran again ({out.reason})")
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
