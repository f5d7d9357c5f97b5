"""What a build prints: the per-source summary, the status table and the list of failed tasks.

    print(summary(plan))            # per source: docs in, kept, dropped, rejected, deduped, tokens, top reasons
    print(fidelity_summary(plan))   # per source: share removed per stage against [fidelity] (pipeline.fidelity)
    rows = status_rows(plan)        # one StatusRow per unit of the plan: the build's units, its unit ids
    print(table(STATUS_HEADERS, [r.cells() for r in rows], right={2, 3, 4, 5}, footer=[status_total(rows).cells()]))
    print(failure_report(outcomes)) # each failed task with its message and log file

Every figure comes from the unit records (``records``), the manifest and the tasks' progress files
(``progress``), the same files the runner and the manifest stage read, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from jetmoe_core import shards as contract

from pipeline.dag.plan import Plan
from pipeline.dag.progress import read_unit
from pipeline.dag.records import (DONE, STARTED, Outcome, not_done_reason, output_files, read_json,
                                  source_accounts, unit_fingerprint, unit_inputs)
from pipeline.fidelity import FidelityOptions, evaluate, render
from pipeline.hub import LISTING


def _fmt_int(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def table(headers: list[str], rows: list[list[str]], right: set[int] | None = None,
          footer: list[list[str]] | None = None) -> str:
    # a plain fixed-width table: the console output must stay readable in CI logs, without a dependency
    right = right or set()
    every = rows + (footer or [])
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *every)] if every else [len(h) for h in headers]
    def line(cells):
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule] + [line(r) for r in rows] + ([rule] + [line(r) for r in footer]
                                                                      if footer else []))


def summary(plan: Plan) -> str:
    manifest = read_json(plan.config.shards_dir / contract.MANIFEST) or {}
    rows = []
    tot = [0, 0, 0, 0, 0, 0]
    for src in plan.config.sources:
        accs = source_accounts(plan.ctx, plan.config.corpus.stages, src)
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


def fidelity_summary(plan: Plan) -> str:
    """The fidelity table (share of each source removed per stage, the rule that removed the most, the verdict
    of the ``[fidelity]`` thresholds, default ones when the config sets none) and a line per source past its
    threshold; "" before any source has a finished stage. Read from the unit records like the summary, so a
    fully cached build prints it too, and it agrees with the manifest's ``fidelity`` entry."""
    chains = {s: source_accounts(plan.ctx, plan.config.corpus.stages, s) for s in plan.config.sources}
    chains = {s: c for s, c in chains.items() if c}
    if not chains:
        return ""
    return render(evaluate(chains, plan.ctx.options.get("fidelity") or FidelityOptions()))


@dataclass
class StatusRow:
    """One unit of the plan as ``status`` shows it (``cells()`` for the table)."""

    unit: str
    state: str
    tasks_done: int
    tasks_total: int | None
    docs: str
    files: int
    bytes: int

    def cells(self) -> list[str]:
        return [self.unit, self.state, f"{self.tasks_done}/{self.tasks_total or '?'}", self.docs,
                _fmt_int(self.files), fmt_bytes(self.bytes)]


STATUS_HEADERS = ["unit", "state", "tasks", "docs", "files", "bytes"]


def unit_outputs(stage, done: dict | None) -> tuple[int, int]:
    """``(files, bytes)`` a unit provides: a download's listed files (a mirror is not copied); else the
    outputs its finished record lists (its folder and what it writes elsewhere: a shard unit's parts under
    ``shards/<corpus>/<source>/``, the manifest's ``manifest.json`` and ``tokenizer.json``); else, for a unit
    not finished, what is there now. Task logs and records are not outputs."""
    listing = read_json(stage.output_dir / LISTING)
    if listing is not None:
        return len(listing["files"]), sum(int(f["size"]) for f in listing["files"])
    out = (done or {}).get("outputs") or {}
    if "files" in out and "bytes" in out:
        return int(out["files"]), int(out["bytes"])
    sizes = []
    for p in output_files(stage).values():
        try:
            sizes.append(p.stat().st_size)
        except FileNotFoundError:  # removed while we looked
            pass
    return len(sizes), sum(sizes)


def status_rows(plan: Plan, notes: list[str] | None = None) -> list[StatusRow]:
    """One row per unit of the plan, in the build's order and with its unit ids (a group stage's unit, e.g.
    ``format/pile``, is one row: its members' documents summed). The state is the runner's own verdict
    (``records.not_done_reason``): "done" only while the unit's record holds, else "pending", "stale",
    "inputs changed", "outputs missing", "outputs changed", "listing changed", ..., or "running/partial" /
    "failed (n)" for a unit that started; ``notes`` gets the details. ``docs``: documents out of a finished
    unit; ``~n``: documents its tasks have read so far."""
    rows = []
    cache: dict[str, str] = {}
    for unit in plan.units:
        stage = plan.instance(unit)
        fp = unit_fingerprint(plan, unit, cache)
        try:
            reason = not_done_reason(stage, fp, unit_inputs(plan, unit))
        except Exception as e:  # noqa: BLE001 - a check that cannot run (the hub unreachable) is reported
            reason = f"cannot check: {type(e).__name__}: {e}"
        done = read_json(stage.output_dir / DONE)
        started = read_json(stage.output_dir / STARTED)
        live = read_unit(stage)
        if reason is None:
            state = "done"
        elif done:  # finished once, but its record no longer holds
            state = reason.split(":")[0]
            if notes is not None and ":" in reason:
                notes.append(f"{unit.id}: {reason}")
        elif started:
            state = "stale" if started.get("fingerprint") != fp else "running/partial"
        else:
            state = "pending"
        tasks_total = live.tasks
        if not tasks_total:
            try:
                tasks_total = sum(j.tasks for j in stage.jobs())
            except Exception:  # noqa: BLE001 - a stage that needs upstream outputs to plan: unknown yet
                tasks_total = 0
        failed = _failed_tasks(stage)
        if failed and state != "done":
            state = f"failed ({failed})"
        accounts = (done or {}).get("accounts") or {}
        if state == "done" and accounts:
            docs = _fmt_int(sum(a["docs_out"] for a in accounts.values()))
        elif state != "done" and live.docs:
            docs = f"~{live.docs:,}"
        else:
            docs = "-"
        files, size = unit_outputs(stage, done if state == "done" else None)
        rows.append(StatusRow(unit.id, state, live.tasks_done, tasks_total, docs, files, size))
    return rows


def status_total(rows: list[StatusRow]) -> StatusRow:
    """The total line: units per state, tasks, output files and bytes (docs are per stage: not summed)."""
    states: dict[str, int] = {}
    for r in rows:
        key = "failed" if r.state.startswith("failed") else r.state
        states[key] = states.get(key, 0) + 1
    summary_ = ", ".join(f"{n} {s}" for s, n in sorted(states.items(), key=lambda kv: (kv[0] != "done", kv[0])))
    return StatusRow(f"total: {len(rows)} units", summary_, sum(r.tasks_done for r in rows),
                     sum(r.tasks_total or 0 for r in rows), "", sum(r.files for r in rows),
                     sum(r.bytes for r in rows))


def _failed_tasks(stage) -> int:
    logs_root = stage.output_dir / "_logs"
    if not logs_root.is_dir():
        return 0
    return sum(len(list((jd / "failures").glob("*.json"))) for jd in logs_root.iterdir() if (jd / "failures").is_dir())


def failure_report(outcomes: list[Outcome]) -> str:
    lines = []
    for o in outcomes:
        if o.state == "failed":
            for f in o.failures:
                where = " ".join(x for x in (f.get("job"), f"task {f['rank']}" if f.get("rank") is not None
                                             else None) if x)
                log = f"\n      log: {f['log']}" if f.get("log") else ""
                lines.append(f"  {o.unit}{f' [{where}]' if where else ''}: {f['error']}{log}")
    blocked = [o.unit for o in outcomes if o.state == "blocked"]
    if blocked:
        lines.append(f"  skipped because an earlier unit failed: {', '.join(blocked)}")
    return "\n".join(lines)
