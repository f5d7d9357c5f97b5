"""Plots of one training run (its metrics.jsonl), each titled with the run's name.

    plot_loss(run, out / "loss.png")           train loss (per step and smoothed) and the val mean, left;
                                               val loss per source with labels at the line ends, right
    plot_lr(run, out / "lr.png")               learning rate per step, phases shaded, tokens on the top axis
    plot_expert_load(run, out / "expert_load.png")  token share per expert (rows: layer × expert index) over
                                               time, for MoA and MoE; white = balanced (1/E), red = busier,
                                               blue = idler; a dashed line where phase 2 starts
    plot_mixture(run, out / "mixture.png")     per phase: target vs realised share of tokens per source, log axis

`run` is a `trainer.report.data.Run`. Every function writes one PNG atomically and returns its path.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.ticker import FuncFormatter

from .data import Run, realised_shares, targets, val_mean
from .style import (MAX_SERIES, OTHER, PALETTE, label_ends, percent_axis, phase_spans, pyplot, save,
                    shade_phases, tokens_axis, top_n)


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (the first points average what exists so far, no lag padding)."""
    if len(y) < 3 or window <= 1:
        return y
    c = np.cumsum(np.insert(y, 0, 0.0))
    idx = np.arange(1, len(y) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def drawn_tokens(run: Run) -> dict[str, float]:
    """Tokens the run drew per source over all phases (used to rank sources for colours)."""
    got: dict[str, float] = {}
    for r in run.train:
        for s, n in r.get("source_tokens", {}).items():
            got[s] = got.get(s, 0) + n
    return got


def plot_loss(run: Run, out: Path) -> Path:
    plt = pyplot()
    fig, (ax, axv) = plt.subplots(1, 2, figsize=(13, 5.4), sharey=True, gridspec_kw={"wspace": 0.08})
    fig.subplots_adjust(top=0.83)
    spans = phase_spans(run.train)
    steps = np.array([r["step"] for r in run.train])
    loss = np.array([r["lm_loss"] for r in run.train], dtype=float)
    vsteps = [v["step"] for v in run.val]
    vmean = [val_mean(v) for v in run.val]
    for a in (ax, axv):
        shade_phases(a, spans)
        a.grid(alpha=0.3)
        a.set_xlabel("optimizer step")
        tokens_axis(a, run.batch_tokens)
    ax.plot(steps, loss, color="#9bb7e0", lw=0.7, label="train LM loss, per step")
    ax.plot(steps, _smooth(loss, max(3, len(loss) // 20)), color="#1f4e9c", lw=2,
            label=f"train LM loss, moving mean of {max(3, len(loss) // 20)} steps")
    if run.val:
        n_src = len(run.val[-1]["loss"])
        ax.plot(vsteps, vmean, "o-", color="black", lw=2.4, ms=5, label=f"val loss, mean of {n_src} sources")
        for x, y, ha in ((vsteps[0], vmean[0], "left"), (vsteps[-1], vmean[-1], "right")):
            ax.annotate(f"{y:.3f}", (x, y), xytext=(0, 8), textcoords="offset points", ha=ha, fontsize=8,
                        fontweight="bold")
    ax.set_ylabel("cross-entropy (nats per token)")
    ax.set_title("train loss and val mean", loc="left")
    ax.legend(loc="lower left", framealpha=0.9)

    sources = sorted({s for v in run.val for s in v["loss"]})
    drawn = drawn_tokens(run)
    named, rest = top_n({s: drawn.get(s, 0.0) for s in sources}, MAX_SERIES)
    colours = {s: PALETTE[i] for i, s in enumerate(named)}
    ends: dict[str, float] = {}
    for src in rest + named:  # grey first, so the named lines sit on top
        xs = [v["step"] for v in run.val if src in v["loss"]]
        ys = [v["loss"][src] for v in run.val if src in v["loss"]]
        if src in colours:
            axv.plot(xs, ys, "o-", color=colours[src], lw=1.4, ms=3.5)
            ends[src] = ys[-1]
        else:
            axv.plot(xs, ys, "-", color=OTHER, lw=0.9, alpha=0.8)
    if run.val:
        axv.plot(vsteps, vmean, "--", color="black", lw=2.2)
        ends["mean"] = vmean[-1]
        colours["mean"] = "black"
    if rest:
        ends[f"other ({len(rest)})"] = float(np.median([run.val[-1]["loss"][s] for s in rest
                                                        if s in run.val[-1]["loss"]] or [np.nan]))
        colours[f"other ({len(rest)})"] = OTHER
        axv.text(0.0, -0.16, f"grey, other: {', '.join(rest)}", transform=axv.transAxes, fontsize=7,
                 color="#666666", va="top", wrap=True)
    texts = {k: (f"{k} {v:.2f}" if k in named or k == "mean" else k) for k, v in ends.items()}
    axv.set_title("val loss per source" + (f" ({len(named)} by tokens drawn, coloured)" if named else ""), loc="left")
    if not sources:
        axv.text(0.5, 0.5, "no val loss logged yet\n(see log.val_every_steps in the run config)", ha="center",
                 va="center", transform=axv.transAxes, color="#666666")
    fig.canvas.draw()  # label positions need the final axis limits and size
    label_ends(axv, max(vsteps) if vsteps else steps[-1], {k: v for k, v in ends.items() if np.isfinite(v)},
               colours, texts=texts)
    fig.suptitle(f"Run {run.name}: loss", x=0.07, ha="left", y=0.995, fontsize=13, fontweight="bold")
    return save(fig, out)


def plot_lr(run: Run, out: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.8))
    shade_phases(ax, phase_spans(run.train))
    steps = [r["step"] for r in run.train]
    lr = [r["lr"] for r in run.train]
    ax.plot(steps, lr, color="#b8420f", lw=1.8)
    peak = int(np.argmax(lr))
    ax.annotate(f"peak {lr[peak]:.3g}", (steps[peak], lr[peak]), xytext=(4, 4), textcoords="offset points",
                fontsize=8)
    ax.annotate(f"last {lr[-1]:.3g}", (steps[-1], lr[-1]), xytext=(6, 0), textcoords="offset points",
                fontsize=8, ha="left", va="center")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_ylim(0, max(lr) * 1.12)
    tokens_axis(ax, run.batch_tokens)
    ax.set_title(f"Run {run.name}: learning rate (warmup, stable, decay)", loc="left", pad=22)
    ax.grid(alpha=0.3)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.3g}"))  # no "1e-3" offset text
    return save(fig, out)


def expert_shares(train: list[dict], kind: str, bins: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """[layers × experts, time bins] share of each layer's routed tokens per expert, and the bin end steps."""
    counts = np.array([r["expert_tokens"][kind] for r in train], dtype=np.float64)  # [T, L, E]
    t = counts.shape[0]
    edges = np.linspace(0, t, min(bins, t) + 1).astype(int)
    binned = np.stack([counts[a:b].sum(0) for a, b in zip(edges[:-1], edges[1:])], axis=-1)  # [L, E, B]
    shares = binned / np.maximum(binned.sum(1, keepdims=True), 1)
    steps = np.array([train[b - 1]["step"] for b in edges[1:]])
    return shares.reshape(-1, shares.shape[-1]), steps


def expert_counts(train: list[dict]) -> dict[str, tuple[int, int]]:
    """Per kind ("attn", "mlp"): (layers, experts) of the run's logged routing; the two kinds can differ (an
    ablation's MoE-only or MoA-only variant routes one of them over 1 expert)."""
    return {kind: (len(train[0]["expert_tokens"][kind]), len(train[0]["expert_tokens"][kind][0]))
            for kind in ("attn", "mlp")}


def plot_expert_load(run: Run, out: Path) -> Path:
    """One panel per kind with its own rows (layer × expert) and colour scale (white = 1/E of that kind); a kind
    with a single expert is a dense layer and its panel says so."""
    from matplotlib.colors import TwoSlopeNorm

    plt = pyplot()
    train = run.train
    counts = expert_counts(train)
    n_rows = max(layers * (e if e > 1 else 0) for layers, e in counts.values()) or 1
    per_row = 0.17 if n_rows <= 64 else max(0.04, 8 / n_rows)
    height = 1.6 + per_row * max(n_rows, 8)
    fig, axes = plt.subplots(1, 2, figsize=(14, height), gridspec_kw={"wspace": 0.32})
    fig.subplots_adjust(top=1 - 0.75 / height)  # room for the title; before the colorbars take their place
    spans = phase_spans(train)
    for ax, kind, title in ((axes[0], "attn", "MoA (attention experts)"), (axes[1], "mlp", "MoE (MLP experts)")):
        n_layers, n_exp = counts[kind]
        ax.set_title(title, loc="left", pad=14)
        if n_exp == 1:
            ax.text(0.5, 0.5, f"dense: {n_layers} layers of 1 expert\n(no routing to show)", ha="center",
                    va="center", transform=ax.transAxes, fontsize=11, color="0.3")
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        rows = n_layers * n_exp
        balanced = 1 / n_exp
        norm = TwoSlopeNorm(vmin=0.0, vcenter=balanced, vmax=min(1.0, 3 * balanced))
        shares, steps = expert_shares(train, kind)
        im = ax.imshow(shares, aspect="auto", interpolation="nearest", cmap="RdBu_r", norm=norm,
                       extent=(train[0]["step"] - 1, steps[-1], rows, 0))
        for layer in range(1, n_layers):
            ax.axhline(layer * n_exp, color="black", lw=1.0)
        for phase, lo, _hi in spans[1:]:
            ax.axvline(lo, color="black", ls="--", lw=1.3)
            ax.text(lo, -0.4, f" phase {phase} →", fontsize=8, va="bottom", ha="left")
        width = len(train) / len(steps)
        ax.set_xlabel("optimizer step" + (f" (one column = {width:.3g} logged steps)" if width > 1 else ""))
        if rows <= 64:
            ax.set_yticks(np.arange(rows) + 0.5, [f"L{r // n_exp} · E{r % n_exp}" for r in range(rows)],
                          fontsize=6.5 if rows > 32 else 7)
        else:  # too many rows to name each expert: name the layers, experts run top to bottom inside each
            ax.set_yticks((np.arange(n_layers) + 0.5) * n_exp, [f"layer {i}" for i in range(n_layers)])
        ax.set_ylabel(f"layer · expert index (E0…E{n_exp - 1} within each layer)")
        cb = fig.colorbar(im, ax=ax, shrink=min(0.9, 6 / height + 0.3), pad=0.015)
        ticks = [0, balanced, 2 * balanced, 3 * balanced] if 3 * balanced <= 1 else [0, balanced, 1]
        cb.set_ticks(ticks, labels=[f"{t:.3g}" + (f"  = 1/{n_exp}, balanced" if t == balanced else "") for t in ticks])
        cb.set_label("share of the layer's routed tokens (per time bin)")
    fig.suptitle(f"Run {run.name}: expert load, {describe_experts(counts)} "
                 "(white = balanced; red = busier, blue = idler)", x=0.06, ha="left", y=1 - 0.1 / height,
                 fontsize=12, fontweight="bold")
    return save(fig, out)


def describe_experts(counts: dict[str, tuple[int, int]]) -> str:
    """"4 layers × 8 experts", or "2 layers × 1 attention / 8 MLP experts" when the kinds differ."""
    (layers, ea), (_, em) = counts["attn"], counts["mlp"]
    return f"{layers} layers × {ea} experts" if ea == em else f"{layers} layers × {ea} attention / {em} MLP experts"


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%" if v >= 0.01 else f"{100 * v:.2g}%"


def plot_mixture(run: Run, out: Path) -> Path:
    plt = pyplot()
    tgt = targets(run)
    panels = []
    for p in run.phases:
        want = dict(tgt.get(p, {}).get("shares") or {})
        got = realised_shares(run, p)
        srcs = sorted(set(want) | set(got), key=lambda s: (-want.get(s, 0), -got.get(s, 0), s))
        panels.append((p, srcs, want, got))
    sizes = [len(s) for _, s, _, _ in panels]
    height = 1.0 + 0.8 * len(panels) + 0.3 * sum(sizes)
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, height), squeeze=False,
                             gridspec_kw={"height_ratios": sizes, "hspace": 2.8 * len(panels) / sum(sizes)})
    fig.subplots_adjust(top=1 - 0.7 / height)
    lo = min([v for _, _, w, g in panels for v in list(w.values()) + list(g.values()) if v > 0] or [0.01])
    left = 10 ** np.floor(np.log10(lo) - 0.3)
    for ax, (p, srcs, want, got) in zip(axes[:, 0], panels):
        y = np.arange(len(srcs))
        h = 0.4
        ax.barh(y - h / 2, [want.get(s, 0) or np.nan for s in srcs], height=h, color="#c9c9c9",
                edgecolor="#555555", lw=0.6, label="target (mixture file)")
        ax.barh(y + h / 2, [got.get(s, 0) or np.nan for s in srcs], height=h, color=PALETTE[(p - 1) % len(PALETTE)],
                label="realised (tokens drawn)")
        for yi, s in zip(y, srcs):
            w, g = want.get(s, 0), got.get(s, 0)
            head = f"{_pct(w)} → " if want else "realised "
            ax.text(1.01, yi, head + (_pct(g) if g else "none drawn"), va="center",
                    ha="left", fontsize=7.5, transform=ax.get_yaxis_transform(), color="black" if g else "#b00000")
        ax.set_xscale("log")
        ax.set_xlim(left, 1.0)
        percent_axis(ax.xaxis)
        ax.set_yticks(y, srcs)
        ax.set_ylim(len(srcs) - 0.5, -0.5)
        ax.grid(axis="x", alpha=0.35)
        rows = run.rows(p)
        ax.set_title(f"phase {p}: {tgt.get(p, {}).get('mixture', 'no mixture logged')}, steps "
                     f"{rows[0]['step'] - 1}–{rows[-1]['step']}   (target → realised)", loc="left", fontsize=10)
    axes[0, 0].legend(loc="lower right", fontsize=7.5, framealpha=0.9)
    axes[-1, 0].set_xlabel("share of the phase's tokens (log scale)")
    fig.suptitle(f"Run {run.name}: mixture, target vs realised share of tokens per source", x=0.02, ha="left",
                 y=1 - 0.15 / height, fontsize=12, fontweight="bold")
    return save(fig, out)
