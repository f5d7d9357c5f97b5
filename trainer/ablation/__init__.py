"""`python -m trainer ablation`: train a grid of model variants at equal active parameters and tokens, over seeds,
and say which differences from the control exceed the seed-to-seed spread.

    python -m trainer ablation trainer/configs/ablations/cpu.toml              # make ablation (~25 min, 2 CPU cores)
    python -m trainer ablation trainer/configs/ablations/cpu.toml --quick      # a smoke run: 2 seeds, a few steps
    python -m trainer ablation <grid.toml> --plan                               # the variants and counts; trains nothing
    python -m trainer ablation <grid.toml> --model.d_model=1024 --data.corpus=shards/jetmoe --train.phase1_tokens=2e9

Writes to --out (default runs/ablation/<grid name>, or <name>-quick): one folder per variant (model.toml, and per
seed a run folder with run.toml, metrics.jsonl, train.log, result.json), then results.json, results.csv,
summary.md and the plots val_loss.png, loss_vs_flops.png, expert_load.png. Exit codes: 0 done, 2 bad grid or
config (the message names the file and key), 3 a run failed.

Modules: grid (the TOML and the sizing), run (the trainer per variant and seed), stats (intervals), summary
(tables), plots.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]


def _plan(grid) -> str:
    c = grid.control
    rows = [f"ablation {grid.name}: {len(grid.variants)} variants × seeds {grid.section.seeds} "
            f"(control {c.name}; active parameters within {grid.section.active_tolerance:.1%} of its)",
            f"{'variant':<12} {'attn E/k':>8} {'mlp E/k':>8} {'kv heads':>8} {'ffn':>6} {'total params':>13} "
            f"{'active params':>13} {'vs control':>10} {'FLOPs/token':>11}"]
    for v in grid.variants.values():
        (ea, ka), (em, km) = v.model.experts("attn"), v.model.experts("mlp")
        gap = (v.active_params - c.active_params) / c.active_params
        rows.append(f"{v.name:<12} {f'{ea}/{ka}':>8} {f'{em}/{km}':>8} {v.model.n_kv_heads:>8} {v.model.ffn_hidden:>6} "
                    f"{v.total_params:>13,} {v.active_params:>13,} {gap:>+10.2%} {v.flops_per_token:>11.3e}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    from jetmoe_core.config import ConfigError
    from jetmoe_core.io import IOFault

    from .grid import load_grid

    p = argparse.ArgumentParser(prog="python -m trainer ablation", description=__doc__.split("\n\n")[0])
    p.add_argument("grid", help="grid TOML, e.g. trainer/configs/ablations/cpu.toml")
    p.add_argument("--quick", action="store_true", help="apply the grid's [quick] tables (a smoke run for tests)")
    p.add_argument("--plan", action="store_true", help="print the variants, their sizes and counts; train nothing")
    p.add_argument("--out", help="output folder (default runs/ablation/<grid name>[-quick])")
    args, overrides = p.parse_known_args(sys.argv[1:] if argv is None else argv)
    bad = [a for a in overrides if not (a.startswith("--") and "=" in a and "." in a.split("=", 1)[0])]
    if bad:
        p.error(f"unrecognised arguments {bad}; overrides are written --section.key=value")
    try:
        grid = load_grid(args.grid, overrides, quick=args.quick)
    except (ValueError, FileNotFoundError) as e:  # ConfigError is a ValueError naming the file and key
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(_plan(grid), flush=True)
    print(f"{len(grid.variants) * len(grid.section.seeds)} runs, {grid.jobs} at a time "
          f"([grid] jobs = {grid.section.jobs or 'auto'}; train.threads = {grid.run_threads or 'all'} per run)",
          flush=True)
    if args.plan:
        return 0
    out = Path(args.out or f"runs/ablation/{grid.name}{'-quick' if args.quick else ''}")
    from .plots import plot_all
    from .run import run_grid
    from .summary import summary_markdown, write_results
    try:
        results = run_grid(grid, out, jobs=grid.jobs)
    except (ConfigError, FileNotFoundError, IOFault) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (RuntimeError, ValueError) as e:  # a run that diverged or failed; its train.log has the details
        print(f"error: {e}", file=sys.stderr)
        return 3
    paths = write_results(results, out)
    plots = plot_all(results, out)
    print()
    print(summary_markdown(results))
    print("wrote " + ", ".join(str(p) for p in [*paths.values(), *plots.values()]))
    return 0
