"""The records a build leaves in every unit's folder, and the one place that reads and writes them.

    <stage dir>/_STARTED.json   {"stage", "version", "fingerprint", "inputs"[, "slurm_jobs"]}: when a unit starts
    <stage dir>/_DONE.json      {"stage", "version", "fingerprint", "inputs": {upstream unit: record digest},
                                 "accounts": {source: account},
                                 "outputs": {"files", "bytes", "list": {file: [size, sha256]}},
                                 ...stage.done_extra()}: written last

    fp, inputs = unit_fingerprint(plan, unit, cache), unit_inputs(plan, unit)
    reason = not_done_reason(stage, fp, inputs)    # None: done; else "stale", "outputs missing: ...", ...
    if reason:
        prepare(stage, fp, inputs)  # clears what no longer holds; a killed run of the same settings resumes
        ...run the stage's jobs...
        finish(stage, fp, inputs)   # accounts, checked, then _DONE.json (atomically)
    source_accounts(ctx, stages, "pile_arxiv")   # that source's account of every finished stage, DAG order

A unit is done only while its record holds: the stage version and the fingerprint of the config values it
depends on are the same, the records of the units it read are the same (an upstream rerun that changed
nothing reruns nothing), every output file it listed is there with the same size (and sha256, for files up
to 1 MiB), and the stage's own check passes (a download re-lists its mirror or hub).

The runner, ``status``, the build summary and the manifest stage all read the records through this module,
so they cannot disagree about what is done or about a source's accounting.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jetmoe_core.config import fingerprint
from jetmoe_core.io import sha256_file, write_json_atomic

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
    reason: str | None = None
    """Why a unit that was not cached ran ("pending", "stale", "outputs missing: ...")."""

    @property
    def io_fault(self) -> bool:
        """A failure of the disk rather than of the data: the build stops and exits 2."""
        return any(f.get("io") for f in self.failures)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def stage_order(names: list[str]) -> list[str]:
    """Topological order of the configured stages, ties in the config's order. A stage runs after those of
    its ``runs_after(names)`` that the list names (the config loader checks that a full build names all of
    its ``after``)."""
    from pipeline.stages.base import STAGES

    done: list[str] = []
    pending = list(names)
    while pending:
        ready = [n for n in pending if all(d in done or d not in pending for d in STAGES[n].runs_after(names))]
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
#: outputs up to this size get their sha256 in the record and are hashed again on every check (cheap); larger
#: ones are checked by size (the shard parts' hashes are in the manifest, and ``verify`` checks them)
HASH_MAX_BYTES = 1 << 20


def _is_output(rel: tuple[str, ...]) -> bool:
    # task logs, the records themselves, datatrove's merged stats and hidden files (temp files of atomic
    # writes, huggingface_hub's download metadata) are bookkeeping, not outputs
    return rel[0] != "_logs" and rel[-1] not in (DONE, STARTED, "stats.json") and not any(
        part.startswith(".") for part in rel)


def output_files(stage) -> dict[str, Path]:
    """Every output file of a unit, keyed by its path relative to the unit's folder (``../`` for files it
    writes elsewhere: the shards), sorted."""
    out: dict[str, Path] = {}
    base = stage.output_dir
    for root in stage.output_paths():
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
        for p in files:
            rel = p.relative_to(root).parts if p != root else (p.name,)
            if _is_output(rel):
                out[os.path.relpath(p, base)] = p
    return dict(sorted(out.items()))


def outputs_record(stage) -> dict[str, Any]:
    """``{"files", "bytes", "list": {relpath: [size, sha256 or None]}}`` of a unit's outputs now."""
    listed: dict[str, list] = {}
    total = 0
    for rel, p in output_files(stage).items():
        size = p.stat().st_size
        total += size
        listed[rel] = [size, sha256_file(p) if size <= HASH_MAX_BYTES else None]
    return {"files": len(listed), "bytes": total, "list": listed}


def check_outputs(stage, record: dict) -> str | None:
    """Why the outputs a record lists are not there as listed ("outputs missing: ..." / "outputs changed:
    ..."), or ``None``."""
    listed = (record.get("outputs") or {}).get("list")
    if listed is None:
        return "outputs unknown (a record from an older version)"
    base = stage.output_dir
    missing, changed = [], []
    for rel, (size, sha) in listed.items():
        p = base / rel
        try:
            now = p.stat().st_size
        except FileNotFoundError:
            missing.append(rel)
            continue
        if now != size or (sha is not None and sha256_file(p) != sha):
            changed.append(rel)
    if missing:
        return f"outputs missing: {len(missing)} of {len(listed)} files, e.g. {os.path.normpath(base / missing[0])}"
    if changed:
        return f"outputs changed: {len(changed)} of {len(listed)} files, e.g. {os.path.normpath(base / changed[0])}"
    return None


def dir_bytes(path: Path) -> tuple[int, int]:
    """Files and bytes of a stage's outputs in one folder (its _logs excluded)."""
    n = size = 0
    if path.is_dir():
        for p in path.rglob("*"):
            if p.is_file() and _is_output(p.relative_to(path).parts):
                n += 1
                size += p.stat().st_size
    return n, size


# ---------------------------------------------------------------------------------------------- lifecycle
def record_digest(stage) -> str | None:
    """A short hash of a unit's ``_DONE.json`` (None without one): downstream units record it, so a rerun of
    an upstream unit that changed its outputs or accounts reruns them, and one that did not leaves them be."""
    try:
        return hashlib.sha256((stage.output_dir / DONE).read_bytes()).hexdigest()[:16]
    except FileNotFoundError:
        return None


def unit_inputs(plan, unit) -> dict[str, str | None]:
    """The record digest of each unit this one depends on."""
    return {d: record_digest(plan.instance(plan.unit(d))) for d in unit.deps}


def not_done_reason(stage, fp: str, inputs: dict[str, str | None]) -> str | None:
    """``None`` when the unit's finished record still holds: same stage version and fingerprint, the same
    upstream records, every output it lists there unchanged, and nothing the stage checks itself changed
    (``Stage.stale_reason``). Otherwise why not: "pending", "stale", "inputs changed", "outputs missing: ...",
    "outputs changed: ..." or the stage's reason."""
    done = read_json(stage.output_dir / DONE)
    if not done:
        return "pending"
    if done.get("version") != stage.version or done.get("fingerprint") != fp:
        return "stale"
    if done.get("inputs") != inputs:
        return "inputs changed"
    return check_outputs(stage, done) or stage.stale_reason()


def is_done(stage, fp: str, inputs: dict[str, str | None]) -> bool:
    return not_done_reason(stage, fp, inputs) is None


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def clear(stage, *, keep_files: bool = False) -> None:
    """Remove what an earlier run of the unit left: all its outputs, or with ``keep_files`` (a stage that
    repairs its files in place) only its records and task logs, so that every task runs again."""
    if keep_files:
        _remove(stage.output_dir / "_logs")
        _remove(stage.output_dir / DONE)
        return
    for path in stage.output_paths():
        _remove(path)


def prepare(stage, fp: str, inputs: dict[str, str | None]) -> None:
    """Start (or resume) a unit that is not done. Only a started run of the same settings resumes (datatrove
    skips its finished tasks); everything else is cleared first: a finished record that no longer holds (its
    config, its inputs, its outputs or its sources changed), a run of other settings, and files with no
    record at all (left by a build whose work folder was deleted, e.g. stray parts in the shards folder)."""
    started = read_json(stage.output_dir / STARTED)
    done = read_json(stage.output_dir / DONE)

    def same(r: dict | None) -> bool:
        # a Slurm submission records no inputs: its upstream units had not run yet when it was queued
        return bool(r) and r.get("fingerprint") == fp and r.get("version") == stage.version and \
            r.get("inputs") in (None, inputs)

    if done or not same(started):
        settings_same = all(r is None or (r.get("fingerprint") == fp and r.get("version") == stage.version)
                            for r in (started, done))
        clear(stage, keep_files=stage.repairs_in_place and settings_same)
    mark_started(stage, fp, inputs=inputs)


def mark_started(stage, fp: str, **extra: Any) -> None:
    write_json_atomic(stage.output_dir / STARTED, {"stage": stage.name, "version": stage.version,
                                                   "fingerprint": fp, **extra})


def finish(stage, fp: str, inputs: dict[str, str | None]) -> dict[str, StageAccount]:
    """Collect and check the unit's accounting, then write _DONE.json (last, atomically) with the list of its
    outputs and the records of the units it read."""
    accounts = stage.accounts()
    for src, acc in accounts.items():
        acc.check(f"{stage.name}/{src}")
    extra = stage.done_extra()
    record = {"stage": stage.name, "version": stage.version, "fingerprint": fp,
              "accounts": {s: a.to_dict() for s, a in accounts.items()},
              "inputs": inputs, "outputs": outputs_record(stage), **extra}
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
