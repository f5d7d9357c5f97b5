"""A build on Slurm: the whole DAG submitted at once as job arrays chained by ``afterok``.

    outcomes = submit_slurm(plan)     # "cached" | "done" (finalized) | "submitted" | "queued", per unit

Run ``build`` again once the jobs ended: units whose every task completed are checked and get their
``_DONE.json``; the others (and what waits for them) are submitted again. While any job an earlier build
submitted is still queued or running, nothing is finalized or submitted.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from pipeline.dag.executors import incomplete_ranks, make_executor
from pipeline.dag.plan import Plan
from pipeline.dag.records import (DONE, STARTED, Outcome, finish, is_done, mark_started, prepare, read_json, unit_fingerprint,
                                  unit_inputs)


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
    earlier = [j for u in plan.units for j in (read_json(plan.instance(u).output_dir / STARTED) or {})
               .get("slurm_jobs", [])]
    active = slurm_active(earlier) if earlier else []
    if active:
        return [Outcome(u.id, "queued", [{"rank": None, "log": None,
                                          "error": f"Slurm jobs {', '.join(active)} still queued or running"}])
                for u in plan.units]
    for unit in plan.units:
        stage = plan.instance(unit)
        fp = unit_fingerprint(plan, unit, cache)
        inputs = unit_inputs(plan, unit)
        if is_done(stage, fp, inputs):
            outcomes.append(Outcome(unit.id, "cached"))
            continue
        deps = [last_job[d] for d in unit.deps + unit.gates if d in last_job]
        started = read_json(stage.output_dir / STARTED)
        # finalize what the cluster ran since the last build (a unit finalized before, whose record no longer
        # holds, is cleared and submitted again instead)
        if not deps and started and started.get("fingerprint") == fp and not (stage.output_dir / DONE).exists():
            jobs = stage.jobs()
            if all(not incomplete_ranks(stage.logs_dir(j.name), j.tasks) for j in jobs):
                finish(stage, fp, inputs)  # the cluster ran it; check and account for it now
                outcomes.append(Outcome(unit.id, "done"))
                continue
        prepare(stage, fp, inputs)
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
            mark_started(stage, fp, slurm_jobs=ids, inputs=None)
    plan.slurm_executors = executors  # kept for inspection (tests)
    return outcomes


def slurm_active(job_ids: list[str]) -> list[str]:
    """Which of these Slurm jobs are still queued or running (empty when squeue knows none of them)."""
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
