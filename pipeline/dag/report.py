"""What a build prints: the per-source summary, the status table and the list of failed tasks.

    print(summary(plan))            # per source: docs in, kept, dropped, rejected, deduped, tokens, top reasons
    print(table(headers, status_rows(plan), right={3, 4, 5}))
    print(failure_report(outcomes)) # each failed task with its message and log file

Every figure comes from the unit records (``records``) and the manifest, the same files the manifest stage
reads, so the summary and the manifest cannot disagree.
"""

from __future__ import annotations

import json

from jetmoe_core import shards as contract

from pipeline.dag.plan import Plan
from pipeline.dag.records import (DONE, STARTED, Outcome, dir_bytes, not_done_reason, read_json, source_accounts,
                                  unit_fingerprint, unit_inputs)


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


def status_rows(plan: Plan, notes: list[str] | None = None) -> list[list[str]]:
    """One row per unit (per member for group stages): source, stage, state, tasks, docs, bytes. The state
    is the runner's own verdict (``records.not_done_reason``): "done" only while the unit's record holds,
    else "pending", "stale", "inputs changed", "outputs missing", "outputs changed", "listing changed", ...,
    or "running/partial" / "failed (n)" for a unit that started; ``notes`` gets the details."""
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
        tasks_done = tasks_total = 0
        logs_root = stage.output_dir / "_logs"
        job_dirs = sorted(p for p in logs_root.iterdir() if p.is_dir()) if logs_root.is_dir() else []
        partial_docs = 0
        for jd in job_dirs:
            ex = read_json(jd / "executor.json") or {}
            total = int(ex.get("world_size") or ex.get("tasks") or 0)
            comp = len(list((jd / "completions").glob("*"))) if (jd / "completions").is_dir() else 0
            tasks_done += comp
            tasks_total += max(total, comp)
            for sp in (jd / "stats").glob("*.json") if (jd / "stats").is_dir() else []:
                steps = json.loads(sp.read_text())
                steps = steps["stats"] if isinstance(steps, dict) and "stats" in steps else steps
                if steps:
                    partial_docs += _stat_total(steps[-1])
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
        if not job_dirs:
            try:
                tasks_total = sum(j.tasks for j in stage.jobs())
            except Exception:  # noqa: BLE001 - a stage that needs upstream outputs to plan: unknown yet
                tasks_total = 0
        failed = sum(len(list((jd / "failures").glob("*.json"))) for jd in job_dirs if (jd / "failures").is_dir())
        if failed and state != "done":
            state = f"failed ({failed})"
        listing = read_json(stage.output_dir / "files.json")
        if listing is not None:  # a download: its size is the listed files' (a mirror is not copied)
            who = unit.key if len(stage.members) == 1 else f"{unit.key} ({len(stage.members)} sources)"
            rows.append([who, stage.name, state, f"{tasks_done}/{tasks_total or '?'}",
                         f"{len(listing['files'])} files", _fmt_bytes(sum(f["size"] for f in listing["files"]))])
            continue
        for m in stage.members if stage.scope != "corpus" else [None]:
            if m is not None:
                mdone = read_json(plan.ctx.dir(stage.name, m) / DONE) if state == "done" else None
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
                where = " ".join(x for x in (f.get("job"), f"task {f['rank']}" if f.get("rank") is not None
                                             else None) if x)
                log = f"\n      log: {f['log']}" if f.get("log") else ""
                lines.append(f"  {o.unit}{f' [{where}]' if where else ''}: {f['error']}{log}")
    blocked = [o.unit for o in outcomes if o.state == "blocked"]
    if blocked:
        lines.append(f"  skipped because an earlier unit failed: {', '.join(blocked)}")
    return "\n".join(lines)
