"""``python -m pipeline build|status <corpus config> [--section.key=value ...]``.

    python -m pipeline build  pipeline/configs/sample.toml                       # resumes where it stopped
    python -m pipeline build  pipeline/configs/jetmoe.toml --executor.kind=slurm --executor.workers=64
    python -m pipeline status pipeline/configs/sample.toml                       # one row per unit

Overrides are applied to the config file before it is read (``pipeline.config``). Exit status: 0 when every
unit is done (or submitted to Slurm), 1 when a task failed on the data (each is listed with its message and
log file), 2 when the config cannot be used, an input folder is missing, or the disk failed (ENOSPC, EROFS,
EACCES, a vanished file: the path, what the error means and the fix; never a traceback).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import time

from jetmoe_core.io import IOFault

from pipeline.config import ConfigError, load_config
from pipeline.dag.plan import BuildError, make_plan
from pipeline.dag.report import (STATUS_HEADERS, failure_report, fidelity_summary, status_rows, status_total,
                                 summary, table)
from pipeline.dag.runner import build


def _parser(prog: str, doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=doc, allow_abbrev=False,
                                epilog="Any config value can be overridden: --section.key=value, e.g. "
                                       "--executor.workers=8 --executor.kind=slurm --dedup.minhash=false")
    p.add_argument("config", help="corpus config TOML, e.g. pipeline/configs/sample.toml")
    return p


def _parse(p: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    args, rest = p.parse_known_args(argv)
    bad = [a for a in rest if not (a.startswith("--") and "=" in a and "." in a.split("=", 1)[0])]
    if bad:
        p.error(f"unrecognized arguments: {' '.join(bad)} (a config override is --section.key=value)")
    args.overrides = rest
    return args


def build_main(argv: list[str] | None = None) -> int:
    p = _parser("python -m pipeline build", "Build a corpus (resumes where an earlier run stopped).")
    p.add_argument("--no-progress", action="store_true",
                   help="print no progress, only failures and the summary (progress lines without a terminal "
                        "come every $JETMOE_PROGRESS_INTERVAL seconds, default 30)")
    p.add_argument("--rebuild", action="store_true", help="forget earlier runs: delete the work folder first")
    args = _parse(p, argv)
    try:
        cfg = load_config(args.config, overrides=args.overrides)
        if args.rebuild and cfg.work_dir.is_dir():
            shutil.rmtree(cfg.work_dir)
        t0 = time.monotonic()
        outcomes = build(cfg, progress=not args.no_progress)
        plan = make_plan(cfg)
    except (ConfigError, BuildError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the work folder itself (an IOFault is explained already)
        print(f"error: {IOFault.from_os_error(e, 'building the corpus', e.filename)}", file=sys.stderr)
        return 2
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.state] = counts.get(o.state, 0) + 1
    print()
    print(summary(plan))
    fidelity = fidelity_summary(plan)
    if fidelity:
        print("\n" + fidelity)
    print(f"\ncorpus {cfg.name}: {len(outcomes)} units (" + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
          + f") in {time.monotonic() - t0:.1f}s; work dir {cfg.work_dir}")
    if counts.get("queued"):
        print(f"jobs submitted by an earlier build are still queued or running on Slurm "
              f"({outcomes[0].failures[0]['error']}); run the same command again when they have ended")
        return 0
    if cfg.executor.kind == "slurm" and counts.get("submitted"):
        again = shlex.join([str(args.config), *cfg.cli_overrides])  # the overrides too: the executor is one
        print(f"submitted to Slurm; when the jobs have ended run `python -m pipeline build {again}` again "
              f"to check them and write the accounting (`python -m pipeline status {again}` shows progress)")
    report = failure_report(outcomes)
    faults = [f["error"] for o in outcomes if o.io_fault for f in o.failures if f.get("io")]
    if faults:  # the disk, not the data: say what and where, and stop with the documented status
        print("\nFAILED:\n" + report, file=sys.stderr)
        print(f"\nerror: {faults[0]}\nfix that and run the same command again: finished work is kept, and "
              f"nothing half-written is used.", file=sys.stderr)
        return 2
    if report:
        print("\nFAILED:\n" + report, file=sys.stderr)
        print("\nfix or delete the files named above (or change the settings a failed check names) and run the "
              "same command again: finished work is kept.",
              file=sys.stderr)
        return 1
    return 0


def status_main(argv: list[str] | None = None) -> int:
    p = _parser("python -m pipeline status", "One row per unit of the build (the ids the build prints): state, "
                                             "tasks done/total, documents, output files and bytes; a total line.")
    args = _parse(p, argv)
    try:
        cfg = load_config(args.config, overrides=args.overrides)
        plan = make_plan(cfg)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    notes: list[str] = []
    rows = status_rows(plan, notes)
    total = status_total(rows)
    print(table(STATUS_HEADERS, [r.cells() for r in rows], right={2, 3, 4, 5}, footer=[total.cells()]))
    for note in notes:
        print(f"  {note}")
    n_done = sum(r.state == "done" for r in rows)
    print(f"\n{n_done}/{len(rows)} units done; work dir {cfg.work_dir}"
          + ("" if n_done == len(rows) else f"; `python -m pipeline build {' '.join([args.config, *args.overrides])}` "
             "runs what is not done"))
    return 0
