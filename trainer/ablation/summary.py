"""The grid's results as files a reader opens: results.json, results.csv (one row per run) and summary.md.

    write_results(results, out)       # -> out/results.json, out/results.csv, out/summary.md
    text = summary_markdown(results)  # the tables and the sentences, also printed by `python -m trainer ablation`

summary.md has: per variant its parameters, FLOPs/token, tokens/s and final held-out loss (overall: per token over
every val token evaluated; the mean over the val sources; then per source) as mean ± interval over seeds; per
comparison (variant vs each of its `against`) the difference with its interval (paired over seeds when both ran the
same seeds, trainer.ablation.stats) and a verdict in words; the expert load of the sparse variants at the end of
training.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from jetmoe_core.io import write_json_atomic, write_text_atomic

from .stats import Comparison, Interval, compare, compare_paired, interval

__all__ = ["write_results", "summary_markdown", "final_intervals", "comparisons", "by_variant"]


def by_variant(results: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {name: [] for name in results["variants"]}
    for r in results["runs"]:
        out[r["variant"]].append(r)
    return out


def final_value(run: dict, source: str | None = None) -> float:
    """A run's final held-out loss: `overall` (per token over all val tokens, the grid's headline), `mean`
    (every source counts the same) or one source's."""
    if source is None:
        return run["final"]["overall"]
    return run["final"]["mean"] if source == "mean" else run["final"]["loss"][source]


def final_intervals(results: dict, source: str | None = None) -> dict[str, Interval]:
    """Final held-out loss per variant over its seeds (see final_value for `source`)."""
    conf = results["grid"]["confidence"]
    return {name: interval([final_value(r, source) for r in runs], conf) for name, runs in by_variant(results).items()}


def compare_runs(results: dict, a: str, b: str, source: str | None = None) -> Comparison:
    """Final loss of variant a − variant b (see final_value for `source`): paired over the seeds when both ran
    the same ones (a seed fixes the data order), else from the two intervals."""
    runs, conf = by_variant(results), results["grid"]["confidence"]

    def per_seed(name: str) -> dict[int, float]:
        return {r["seed"]: final_value(r, source) for r in runs[name]}

    va, vb = per_seed(a), per_seed(b)
    if len(va) > 1 and set(va) == set(vb):
        return compare_paired(va, vb, conf)
    return compare(interval(list(va.values()), conf), interval(list(vb.values()), conf))


def comparisons(results: dict) -> list[dict]:
    """(variant, reference, comparison) for every declared pair, on the overall final loss."""
    return [{"variant": name, "against": ref, "cmp": compare_runs(results, name, ref)}
            for name, v in results["variants"].items() for ref in v["against"]]


def _words(results: dict, row: dict) -> str:
    v, ref, c = results["variants"][row["variant"]], results["variants"][row["against"]], row["cmp"]
    if c.verdict == "within spread":
        return (f"{v['label']} vs {ref['label']}: {c} — not distinguishable from the seed-to-seed spread "
                f"(|difference| {abs(c.diff):.4f} ≤ interval {c.half:.4f})")
    return (f"{v['label']} vs {ref['label']}: {c} — {c.verdict} held-out loss, beyond the seed-to-seed spread "
            f"(|difference| {abs(c.diff):.4f} > interval {c.half:.4f})")


def summary_markdown(results: dict) -> str:
    g = results["grid"]
    runs = by_variant(results)
    ivs = final_intervals(results)
    means = final_intervals(results, "mean")
    sources = sorted(results["runs"][0]["final"]["loss"])
    conf = f"{g['confidence']:.0%}"
    n_val = sum(results["runs"][0]["final"]["val_tokens"].values())
    lines = [f"# Ablation grid `{g['name']}`" + (" (--quick)" if g["quick"] else ""), "",
             f"Seeds {g['seeds']}; each run trains {results['runs'][0]['tokens']:,} tokens. Loss = held-out "
             f"cross-entropy after the last step, per token over the {n_val:,} val tokens of the {len(sources)} "
             "sources (the mean over sources, where a source with a few hundred val tokens counts as much as one "
             f"with thousands, is beside it and per source below); ± is the {conf} Student-t interval over "
             "seeds. A difference counts when its interval excludes 0: the t-interval of "
             "the per-seed differences when both variants ran the same seeds (a seed fixes the data order, so "
             "the pair saw the same batches), else the combined interval √(h₁² + h₂²).", "",
             "| variant | active params | total params | FLOPs/token | tokens/s | final val loss | mean over sources |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, v in results["variants"].items():
        tps = sorted(r["tokens_per_s"] for r in runs[name])
        lines.append(f"| {v['label']} (`{name}`) | {v['active_params']:,} | {v['total_params']:,} | "
                     f"{v['flops_per_token']:.3e} | {tps[len(tps) // 2]:,.0f} | {ivs[name]} | {means[name]} |")
    lines += ["", "## Differences in final val loss", "",
              "| variant | vs | difference | verdict |", "|---|---|---:|---|"]
    rows = comparisons(results)
    for row in rows:
        lines.append(f"| `{row['variant']}` | `{row['against']}` | {row['cmp']} | {row['cmp'].verdict} |")
    lines += [""] + [f"- {_words(results, row)}" for row in rows]
    beyond = [r for r in rows if r["cmp"].verdict != "within spread"]
    lines += ["", f"{len(beyond)} of {len(rows)} differences exceed the seed-to-seed spread."]
    names = list(results["variants"])
    val_tokens = results["runs"][0]["final"]["val_tokens"]
    lines += ["", "## Final val loss per source", "",
              "Per source, the variants that differ from the control beyond the seed spread (paired as above) are "
              "marked ▼ (lower) or ▲ (higher).", "",
              "| source | val tokens | " + " | ".join(f"`{n}`" for n in names) + " |",
              "|---|---:|" + "---:|" * len(names)]
    control = g["control"]
    marked = 0
    for src in sources:
        ivs_src = final_intervals(results, src)
        cells = []
        for n in names:
            mark = ""
            if n != control:
                verdict = compare_runs(results, n, control, src).verdict
                mark = {"lower": " ▼", "higher": " ▲"}.get(verdict, "")
                marked += bool(mark)
            cells.append(f"{ivs_src[n]}{mark}")
        lines.append(f"| {src} | {val_tokens.get(src, 0):,} | " + " | ".join(cells) + " |")
    n_cmp = len(sources) * (len(names) - 1)
    lines += ["", f"{marked} of {n_cmp} per-source differences from `{control}` exceed the seed spread; at "
              f"{g['confidence']:.0%} confidence about {(1 - g['confidence']) * n_cmp:.0f} would by chance alone, "
              "so read single marks on small val splits with care."]
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
    w.writerow(["variant", "seed", "tokens", "active_params", "flops_per_token", "tokens_per_s", "val_loss_overall",
                "val_loss_mean", *[f"val_loss_{s}" for s in sources]])
    for r in results["runs"]:
        v = results["variants"][r["variant"]]
        w.writerow([r["variant"], r["seed"], r["tokens"], v["active_params"], f"{v['flops_per_token']:.6g}",
                    f"{r['tokens_per_s']:.1f}", f"{r['final']['overall']:.6f}", f"{r['final']['mean']:.6f}",
                    *[f"{r['final']['loss'][s]:.6f}" for s in sources]])
    return buf.getvalue()


def write_results(results: dict, out: Path) -> dict[str, Path]:
    out = Path(out)
    paths = {"json": out / "results.json", "csv": out / "results.csv", "summary": out / "summary.md"}
    write_json_atomic(paths["json"], results)
    write_text_atomic(paths["csv"], _csv(results))
    write_text_atomic(paths["summary"], summary_markdown(results))
    return paths
