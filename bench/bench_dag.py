"""Corpus DAG runner overhead: the download + format stages over the embedded samples, run twice in this
process on the same inputs, with the local executor's pools started by "fork" (this project's default)
and by "forkserver" (datatrove's default, the baseline).

    python bench/bench_dag.py                 # 8 sources, 2 tasks per format job (make bench)
    python bench/bench_dag.py --sources 22    # every source of the recipe

Every format job here has 2 tasks, so each one starts a 2-process pool: on the small sample the pool start
is most of a unit's time, which is what the start method changes. The two runs must produce the same
documents (checked: same bytes). Wall times are noisy on a shared machine. Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LOGURU_LEVEL", "ERROR")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.config import load_config  # noqa: E402
from pipeline.dag import build  # noqa: E402


def run(start_method: str, sources: list[str], tasks: int, root: Path) -> dict:
    cfg = load_config(REPO / "pipeline/configs/sample.toml")
    cfg.corpus.work_dir = str(root / start_method)
    cfg.corpus.stages = ["download", "format"]
    cfg.sources = sources
    cfg.executor.workers = 2
    cfg.executor.start_method = start_method
    cfg.options["format"].tasks = tasks
    cfg.options["download"].mirror_root = str(REPO / "pipeline/samples")
    t0 = time.perf_counter()
    outcomes = build(cfg, progress=False)
    wall = time.perf_counter() - t0
    assert {o.state for o in outcomes} == {"done"}, outcomes
    work = Path(cfg.corpus.work_dir)
    docs = sum(json.loads((work / s / "format/_DONE.json").read_text())["accounts"][s]["docs_out"] for s in sources)
    outputs = {p.relative_to(work).as_posix(): p.read_bytes() for p in sorted(work.glob("*/format/*.jsonl.gz"))}
    return {"wall_s": wall, "units": len(outcomes), "docs": docs, "outputs": outputs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", type=int, default=8, help="how many of the 22 sample sources (default 8)")
    ap.add_argument("--tasks", type=int, default=2, help="tasks per format job (default 2)")
    args = ap.parse_args()
    from pipeline.sources import SOURCES

    sources = list(SOURCES)[: args.sources]
    with tempfile.TemporaryDirectory() as tmp:
        fork = run("fork", sources, args.tasks, Path(tmp))
        base = run("forkserver", sources, args.tasks, Path(tmp))
    same = fork["outputs"] == base["outputs"]
    rows = [("forkserver (datatrove default)", base), ("fork (this project)", fork)]
    print(f"download + format of {len(sources)} sample sources, {args.tasks} tasks per format job, 2 workers")
    print(f"{'start method':<32}{'units':>7}{'docs':>8}{'wall s':>9}{'s/unit':>9}{'docs/s':>9}")
    for name, r in rows:
        print(f"{name:<32}{r['units']:>7}{r['docs']:>8}{r['wall_s']:>9.2f}{r['wall_s'] / r['units']:>9.3f}"
              f"{r['docs'] / r['wall_s']:>9.0f}")
    print(f"speed-up {base['wall_s'] / fork['wall_s']:.2f}x; identical outputs: {same}")
    print(json.dumps({"bench": "dag", "sources": len(sources), "tasks_per_format_job": args.tasks,
                      "units": fork["units"], "docs": fork["docs"], "wall_s_fork": round(fork["wall_s"], 3),
                      "wall_s_forkserver": round(base["wall_s"], 3),
                      "speedup": round(base["wall_s"] / fork["wall_s"], 3), "identical_outputs": same}))
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
