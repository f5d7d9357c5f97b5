"""The records a build leaves in every unit's folder, and the one place that reads and writes them.

    <stage dir>/_STARTED.json   {"stage", "version", "fingerprint"[, "slurm_jobs"]}: written when a unit starts
    <stage dir>/_DONE.json      {"stage", "version", "fingerprint", "accounts": {source: account},
                                 "outputs": {"files", "bytes"}, ...stage.done_extra()}: written last

    fp = unit_fingerprint(plan, unit, cache)
    if not is_done(stage, fp):
        prepare(stage, fp)         # a changed fingerprint clears what an earlier run left
        ...run the stage's jobs...
        finish(stage, fp)          # accounts, checked, then _DONE.json (atomically)
    source_accounts(ctx, stages, "pile_arxiv")   # that source's account of every finished stage, DAG order

The runner, ``status``, the build summary and the manifest stage all read the records through this module,
so they cannot disagree about what is done or about a source's accounting.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jetmoe_core.config import fingerprint
from jetmoe_core.io import write_json_atomic

from pipeline.accounting import StageAccount
from pipeline.config import ConfigError

DONE = "_DONE.json"
STARTED = "_STARTED.json"


@dataclass
class Outcome:
    """What happened to one unit in one build."""

    unit: str
    state: str  # done | cached | failed | blocked | submitted | queued
    failures: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def stage_order(names: list[str]) -> list[str]:
    """Topological order of the configured stages, ties in the config's order. A stage runs after those of
    its ``after`` that the list names (the config loader checks that a full build names them all)."""
    from pipeline.stages.base import STAGES

    done: list[str] = []
    pending = list(names)
    while pending:
        ready = [n for n in pending if all(d in done or d not in pending for d in STAGES[n].after)]
        if not ready:
            raise ConfigError(f"[corpus] stages have a dependency cycle among {pending}")
        done.append(ready[0])
        pending.remove(ready[0])
    return done


# ---------------------------------------------------------------------------------------------- fingerprints
def _spec_summary(spec) -> dict:
    keep = ("name", "repo_id", "repo_type", "revision", "allow_patterns", "file_format", "config", "input_group")
    return {k: getattr(spec, k, None) for k in keep}


def unit_fingerprint(plan, unit, cache: dict[str, str]) -> str:
    """What a unit's output depends on: stage version, its config table, its sources, upstream units."""
    if unit.id in cache:
        return cache[unit.id]
    stage = plan.instance(unit)
    cfg = plan.config
    members = stage.members
    parts: list[Any] = [unit.stage, stage.version, unit.key,
                        [_spec_summary(plan.ctx.specs[m]) for m in members if m in plan.ctx.specs],
                        [dataclasses.asdict(cfg.override(m)) for m in members],
                        stage.fingerprint_extra(),
                        [unit_fingerprint(plan, plan.unit(d), cache) for d in unit.deps]]
    cache[unit.id] = fingerprint(*parts)
    return cache[unit.id]


# ---------------------------------------------------------------------------------------------- outputs
def out_dirs(stage) -> list[Path]:
    """Where a unit writes: its own folder, plus each member's folder for a group stage."""
    dirs = [stage.output_dir]
    if stage.scope == "group":
        dirs += [stage.ctx.dir(stage.name, m) for m in stage.members if stage.ctx.dir(stage.name, m) not in dirs]
    return dirs


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


# ---------------------------------------------------------------------------------------------- lifecycle
def is_done(stage, fp: str) -> bool:
    done = read_json(stage.output_dir / DONE)
    return bool(done) and done.get("version") == stage.version and done.get("fingerprint") == fp


def prepare(stage, fp: str) -> None:
    """Start (or resume) a unit: a changed config or stage version invalidates what an earlier run left."""
    started = read_json(stage.output_dir / STARTED)
    done = read_json(stage.output_dir / DONE)
    stale = (started and started.get("fingerprint") != fp) or (done and done.get("fingerprint") != fp)
    if stale:
        for d in out_dirs(stage):
            if d.is_dir():
                shutil.rmtree(d)
    mark_started(stage, fp)


def mark_started(stage, fp: str, **extra: Any) -> None:
    write_json_atomic(stage.output_dir / STARTED, {"stage": stage.name, "version": stage.version,
                                                   "fingerprint": fp, **extra})


def finish(stage, fp: str) -> dict[str, StageAccount]:
    """Collect and check the unit's accounting, then write _DONE.json (last, atomically)."""
    accounts = stage.accounts()
    for src, acc in accounts.items():
        acc.check(f"{stage.name}/{src}")
    extra = stage.done_extra()
    files, size = 0, 0
    for d in out_dirs(stage):
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


# ---------------------------------------------------------------------------------------------- accounting
def stage_account(ctx, stage: str, source: str) -> dict | None:
    """The source's account in ``stage``'s finished record: the source's own folder (per-source stages, and
    the member records of group stages), its group's folder, or the corpus folder (corpus stages keep every
    source's account in one record under ``_corpus/``)."""
    groups = [g for g, ms in ctx.groups.items() if source in ms and g != source]
    for folder in [ctx.dir(stage, source), *(ctx.dir(stage, g) for g in groups), ctx.dir(stage)]:
        done = read_json(folder / DONE)
        if done and source in (done.get("accounts") or {}):
            return done["accounts"][source]
    return None


def source_accounts(ctx, stages: list[str], source: str) -> list[dict]:
    """The source's finished stage accounts in DAG order (stages that count no documents are left out)."""
    return [a for a in (stage_account(ctx, s, source) for s in stage_order(stages)) if a is not None]
