"""The grid's results as files a reader opens: results.json, results.csv (one row per run) and summary.md.

    write_results(results, out)       # -> out/results.json, out/results.csv, out/summary.md
    text = summary_markdown(results)  # the tables and the sentences, also printed by `python -m trainer ablation`

summary.md has: per variant its parameters, FLOPs/token, tokens/s and final held-out loss (mean over the val
sources, then per source) as mean ± interval over seeds; per comparison (variant vs each of its `against`) the
difference with its combined interval and a verdict in words (trainer.ablation.stats); the expert load of the
sparse variants at the end of training.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from jetmoe_core.io import write_json_atomic, write_text_atomic

from .stats import Interval, compare, interval

__all__ = ["write_results", "summary_markdown", "final_intervals", "comparisons", "by_variant"]


def by_variant(results: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {name: [] for name in results["variants"]}
    for r in results["runs"]:
        out[r["variant"]].append(r)
    return out


def final_intervals(results: dict, source: str | None = None) -> dict[str, Interval]:
    """Final held-out loss per variant over its seeds: the mean over sources, or one source's."""
    conf = results["grid"]["confidence"]
    return {name: interval([r["final"]["mean"] if source is None else r["final"]["loss"][source] for r in runs], conf)
            for name, runs in by_variant(results).items()}


def comparisons(results: dict) -> list[dict]:
    """(variant, reference, comparison) for every declared pair, on the mean final loss."""
    ivs = final_intervals(results)
    return [{"variant": name, "against": ref, "cmp": compare(ivs[name], ivs[ref])}
            for name, v in results["variants"].items() for ref in v["against"]]


def _words(results: dict, row: dict) -> str:
    v, ref, c = results["variants"][row["variant"]], results["variants"][row["against"]], row["cmp"]
    if c.verdict == "within spread":
        return (f"{v['label']} vs {ref['label']}: {c} — not distinguishable from the seed-to-seed spread "
                f"(|difference| {abs(c.diff):.4f} ≤ combined interval {c.half:.4f})")
    return (f"{v['label']} vs {ref['label']}: {c} — {c.verdict} held-out loss, beyond the seed-to-seed spread "
            f"(|difference| {abs(c.diff):.4f} > combined interval {c.half:.4f})")


def summary_markdown(results: dict) -> str:
    g = results["grid"]
    runs = by_variant(results)
    ivs = final_intervals(results)
    sources = sorted(results["runs"][0]["final"]["loss"])
    conf = f"{g['confidence']:.0%}"
    lines = [f"# Ablation grid `{g['name']}`" + (" (--quick)" if g["quick"] else ""), "",
             f"Seeds {g['seeds']}; each run trains {results['runs'][0]['tokens']:,} tokens. Loss = held-out "
             f"cross-entropy after the last step, mean over the {len(sources)} val sources; ± is the {conf} "
             "Student-t interval over seeds. A difference counts when it exceeds the combined interval "
             "√(h₁² + h₂²).", "",
             "| variant | active params | total params | FLOPs/token | tokens/s | final val loss |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, v in results["variants"].items():
        tps = sorted(r["tokens_per_s"] for r in runs[name])
        lines.append(f"| {v['label']} (`{name}`) | {v['active_params']:,} | {v['total_params']:,} | "
                     f"{v['flops_per_token']:.3e} | {tps[len(tps) // 2]:,.0f} | {ivs[name]} |")
    lines += ["", "## Differences in final val loss", "",
              "| variant | vs | difference | verdict |", "|---|---|---:|---|"]
    rows = comparisons(results)
    for row in rows:
        lines.append(f"| `{row['variant']}` | `{row['against']}` | {row['cmp']} | {row['cmp'].verdict} |")
    lines += [""] + [f"- {_words(results, row)}" for row in rows]
    beyond = [r for r in rows if r["cmp"].verdict != "within spread"]
    lines += ["", f"{len(beyond)} of {len(rows)} differences exceed the seed-to-seed spread."]
    lines += ["", "## Final val loss per source", "",
              "| variant | " + " | ".join(sources) + " |", "|---|" + "---:|" * len(sources)]
    per_source = {s: final_intervals(results, s) for s in sources}
    for name in results["variants"]:
        lines.append(f"| `{name}` | " + " | ".join(str(per_source[s][name]) for s in sources) + " |")
    lines += ["", "## Expert load at the end of training (max expert share × experts; 1.00 = balanced)", "",
              "| variant | kind | per layer (mean over seeds) |", "|---|---|---|"]
    for name, v in results["variants"].items():
        for kind in v["sparse_kinds"]:
            per_run = [r["expert_load"][kind]["max_over_mean"][-1] for r in runs[name]]
            layers = [sum(x[i] for x in per_run) / len(per_run) for i in range(len(per_run[0]))]
            lines.append(f"| `{name}` | {kind} | " + ", ".join(f"{x:.2f}" for x in layers) + " |")
    return "\n".join(lines) + "\n"


def _csv(results: dict) -> str:
    sources = sorted(results["runs"][0]["final"]["loss"])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["variant", "seed", "tokens", "active_params", "flops_per_token", "tokens_per_s", "val_loss_mean",
                *[f"val_loss_{s}" for s in sources]])
    for r in results["runs"]:
        v = results["variants"][r["variant"]]
        w.writerow([r["variant"], r["seed"], r["tokens"], v["active_params"], f"{v['flops_per_token']:.6g}",
                    f"{r['tokens_per_s']:.1f}", f"{r['final']['mean']:.6f}",
                    *[f"{r['final']['loss'][s]:.6f}" for s in sources]])
    return buf.getvalue()


def write_results(results: dict, out: Path) -> dict[str, Path]:
    out = Path(out)
    paths = {"json": out / "results.json", "csv": out / "results.csv", "summary": out / "summary.md"}
    write_json_atomic(paths["json"], results)
    write_text_atomic(paths["csv"], _csv(results))
    write_text_atomic(paths["summary"], summary_markdown(results))
    return paths
