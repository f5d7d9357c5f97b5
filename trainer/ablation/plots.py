"""Plots of an ablation grid's results (trainer.ablation.run's dict), in the report's style.

    plot_all(results, out)   # -> out/val_loss.png, out/loss_vs_flops.png, out/expert_load.png

- val_loss.png: held-out loss (per token over all val tokens) vs training tokens per variant: the line is the mean
  over seeds, the band spans the seeds' lowest and highest value at each point.
- loss_vs_flops.png: final held-out loss (mean ± interval over seeds) vs training FLOPs (FLOPs/token × tokens,
  active parameters only), one labelled point per variant.
- expert_load.png: per sparse variant (rows) and kind (MoA, MoE columns), max expert share × experts per
  layer over training (1 = balanced), mean over seeds.
- differences.png: every declared comparison's difference in final loss with its interval (paired where the
  seeds pair), a line at 0; a bar that does not cross it is a difference beyond the seed spread.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from trainer.report.style import PALETTE, pyplot, save

from .summary import by_variant, comparisons, final_intervals

__all__ = ["plot_all", "plot_val_loss", "plot_loss_vs_flops", "plot_expert_load", "plot_differences"]


def _colours(results: dict) -> dict[str, str]:
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(results["variants"])}


def plot_val_loss(results: dict, out: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 5.5))
    colours = _colours(results)
    for name, runs in by_variant(results).items():
        tokens = [p["tokens"] for p in runs[0]["curve"]]
        ys = np.array([[p["overall"] for p in r["curve"]] for r in runs])  # [seeds, points]
        ax.plot(tokens, ys.mean(0), color=colours[name], lw=1.6, label=results["variants"][name]["label"])
        ax.fill_between(tokens, ys.min(0), ys.max(0), color=colours[name], alpha=0.18, lw=0)
    ax.set_xlabel("training tokens")
    ax.set_ylabel("held-out loss (per token, all val sources)")
    ax.set_title(f"Ablation {results['grid']['name']}: val loss, mean over {len(results['grid']['seeds'])} seeds "
                 "(band: lowest to highest seed)", loc="left")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    return save(fig, out)


def plot_loss_vs_flops(results: dict, out: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5.5))
    colours = _colours(results)
    ivs = final_intervals(results)
    tokens = results["runs"][0]["tokens"]
    for name, v in results["variants"].items():
        x = v["flops_per_token"] * tokens
        iv = ivs[name]
        err = iv.half if np.isfinite(iv.half) else 0.0
        ax.errorbar([x], [iv.mean], yerr=[err], fmt="o", color=colours[name], capsize=4, label=v["label"])
        ax.annotate(name, (x, iv.mean), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xlabel(f"training FLOPs (active: FLOPs/token × {tokens:,} tokens)")
    ax.set_ylabel("final held-out loss")
    conf = results["grid"]["confidence"]
    ax.set_title(f"Ablation {results['grid']['name']}: final loss vs compute (bars: {conf:.0%} interval over seeds)",
                 loc="left")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=7)
    return save(fig, out)


def plot_expert_load(results: dict, out: Path) -> Path | None:
    sparse = [(n, v) for n, v in results["variants"].items() if v["sparse_kinds"]]
    if not sparse:
        return None
    plt = pyplot()
    height = 1.9 * len(sparse) + 0.8
    fig, axes = plt.subplots(len(sparse), 2, figsize=(11, height), squeeze=False, sharex=True)
    fig.subplots_adjust(top=1 - 0.7 / height, hspace=0.45)  # room for the title, none wasted under it
    runs = by_variant(results)
    for row, (name, v) in enumerate(sparse):
        for col, (kind, title) in enumerate((("attn", "MoA"), ("mlp", "MoE"))):
            ax = axes[row][col]
            if kind not in v["sparse_kinds"]:
                ax.text(0.5, 0.5, f"dense {title}: no routing", ha="center", va="center", transform=ax.transAxes,
                        color="grey")
                ax.set_yticks([])
            else:
                loads = np.array([r["expert_load"][kind]["max_over_mean"] for r in runs[name]]).mean(0)  # [B, L]
                tokens = runs[name][0]["expert_load"][kind]["tokens"]
                for layer in range(loads.shape[1]):
                    ax.plot(tokens, loads[:, layer], lw=1.2, color=PALETTE[layer % len(PALETTE)],
                            label=f"layer {layer}")
                ax.axhline(1.0, color="black", lw=0.8, ls=":")
                ax.set_ylim(bottom=0.9)
            ax.set_title(f"{v['label']} — {title}", loc="left", fontsize=9)
            ax.grid(alpha=0.3)
    axes[0][0].legend(frameon=False, fontsize=7, ncol=2)
    for ax in axes[-1]:
        ax.set_xlabel("training tokens")
    fig.supylabel("max expert share × experts (1 = balanced)", fontsize=9)
    fig.suptitle(f"Ablation {results['grid']['name']}: expert load per layer over training (mean over seeds)",
                 x=0.01, ha="left", fontweight="bold", fontsize=11)
    return save(fig, out)


def plot_differences(results: dict, out: Path) -> Path:
    plt = pyplot()
    rows = comparisons(results)
    height = 0.42 * len(rows) + 1.6
    fig, ax = plt.subplots(figsize=(9, height))
    colour = {"lower": PALETTE[2 % len(PALETTE)], "higher": PALETTE[3 % len(PALETTE)], "within spread": "grey"}
    for i, row in enumerate(rows):
        c = row["cmp"]
        err = c.half if np.isfinite(c.half) else 0.0
        ax.errorbar([c.diff], [i], xerr=[err], fmt="o", color=colour[c.verdict], capsize=4, lw=1.6)
        ax.annotate(f"{c.diff:+.4f} ± {c.half:.4f}  {c.verdict}", (c.diff, i), textcoords="offset points",
                    xytext=(0, 7), ha="center", fontsize=7, color=colour[c.verdict])
    ax.axvline(0.0, color="black", lw=0.9)
    ax.set_yticks(range(len(rows)), [f"{r['variant']} − {r['against']}" for r in rows], fontsize=8)
    ax.set_ylim(len(rows) - 0.4, -0.8)
    conf = results["grid"]["confidence"]
    ax.set_xlabel("difference in final held-out loss (left of 0: the first variant is better)")
    ax.set_title(f"Ablation {results['grid']['name']}: differences with {conf:.0%} intervals "
                 "(paired over seeds where the seeds match)", loc="left", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return save(fig, out)


def plot_all(results: dict, out: Path) -> dict[str, Path]:
    out = Path(out)
    paths = {"val_loss": plot_val_loss(results, out / "val_loss.png"),
             "loss_vs_flops": plot_loss_vs_flops(results, out / "loss_vs_flops.png"),
             "differences": plot_differences(results, out / "differences.png")}
    load = plot_expert_load(results, out / "expert_load.png")
    if load is not None:
        paths["expert_load"] = load
    return paths
