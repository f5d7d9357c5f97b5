"""Shared look of the report's plots: one palette, atomic PNG writes, phase shading, direct labels.

    plt = pyplot()                          # matplotlib with the file-only Agg backend
    fig, ax = plt.subplots(); ...; save(fig, out / "loss.png")
    shade_phases(ax, spans)                 # phase 1 / phase 2 backgrounds with their names
    label_ends(ax, x, {"web": 5.1, ...}, colours)   # labels at the lines' right ends, pushed apart
    top, rest = top_n({"web": 0.6, ...}, 8) # at most n named series; the rest are drawn as "other"
    percent_axis(ax.xaxis)                  # 0.25 → "25%", also on log axes

A saved PNG carries no software version or date, so the same metrics give the same bytes.
"""
from __future__ import annotations

from pathlib import Path

from jetmoe_core.io import atomic_path

# Colours that stay distinct for ≤ 8 series (matplotlib's tab10 without its grey and olive), plus one grey
# for whatever is grouped as "other".
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
OTHER = "#a0a0a0"
PHASE_BG = {1: "#eef3fb", 2: "#fdf1e9"}
MAX_SERIES = len(PALETTE)


def pyplot():
    import matplotlib
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt
    plt.rcParams.update({"axes.titlesize": 11, "axes.titleweight": "bold", "axes.labelsize": 9,
                         "xtick.labelsize": 8, "ytick.labelsize": 8, "legend.fontsize": 8,
                         "axes.spines.top": False, "axes.spines.right": False})
    return plt


def save(fig, path: Path) -> Path:
    """Write the PNG atomically, so a browser or a reader never sees half an image."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png", metadata={"Software": None})
    pyplot().close(fig)
    return path


def phase_spans(train: list[dict]) -> list[tuple[int, float, float]]:
    """(phase, first step - 1, last step) per phase: the step range each phase covers on a step axis."""
    spans = []
    for phase in sorted({r["phase"] for r in train}):
        steps = [r["step"] for r in train if r["phase"] == phase]
        spans.append((phase, min(steps) - 1, max(steps)))
    return spans


def shade_phases(ax, spans, label: bool = True) -> None:
    for phase, lo, hi in spans:
        ax.axvspan(lo, hi, color=PHASE_BG.get(phase, "#f2f2f2"), zorder=0, lw=0)
        if label:
            ax.text((lo + hi) / 2, 0.985, f"phase {phase}", transform=ax.get_xaxis_transform(), ha="center",
                    va="top", fontsize=8, color="#555555", fontweight="bold")


def tokens_axis(ax, batch_tokens: int | None) -> None:
    """A second x axis on top: tokens seen, for a step axis below."""
    if not batch_tokens:
        return
    scale = 1e6 if batch_tokens * 10 >= 1e5 else 1e3
    unit = "millions" if scale == 1e6 else "thousands"
    top = ax.secondary_xaxis("top", functions=(lambda s: s * batch_tokens / scale, lambda t: t * scale / batch_tokens))
    top.set_xlabel(f"tokens seen ({unit})", fontsize=8, color="#555555")
    top.tick_params(labelsize=7, colors="#555555")


def top_n(weights: dict[str, float], n: int = MAX_SERIES) -> tuple[list[str], list[str]]:
    """The n names of largest weight (ties by name), and the rest, both in that order."""
    ranked = sorted(weights, key=lambda k: (-weights[k], k))
    if len(ranked) <= n:
        return ranked, []
    return ranked[:n - 1], ranked[n - 1:]  # one slot goes to "other"


def spread(ys: list[float], gap: float, lo: float, hi: float) -> list[float]:
    """Move label positions apart by at least `gap`, keeping them inside [lo, hi] and their order."""
    order = sorted(range(len(ys)), key=lambda i: ys[i])
    pos = [ys[i] for i in order]
    for _ in range(2):
        for i in range(1, len(pos)):
            pos[i] = max(pos[i], pos[i - 1] + gap)
        if pos and pos[-1] > hi:
            pos[-1] = hi
            for i in range(len(pos) - 2, -1, -1):
                pos[i] = min(pos[i], pos[i + 1] - gap)
        if pos and pos[0] < lo:
            pos[0] = lo
    out = [0.0] * len(ys)
    for i, p in zip(order, pos):
        out[i] = p
    return out


def label_ends(ax, x: float, ends: dict[str, float], colours: dict[str, str], fontsize: float = 7.5,
               texts: dict[str, str] | None = None) -> None:
    """Write each series' name just right of x at its last value, nudged apart so none overlap."""
    if not ends:
        return
    lo, hi = ax.get_ylim()
    height_in = ax.get_window_extent().height / ax.figure.dpi
    gap = (hi - lo) * (fontsize * 1.25 / 72) / max(height_in, 0.5)
    names = list(ends)
    ys = spread([ends[n] for n in names], gap, lo + gap / 2, hi - gap / 2)
    xmin, xmax = ax.get_xlim()
    dx = (xmax - xmin) * 0.02
    for n, y in zip(names, ys):
        ax.annotate((texts or {}).get(n, n), xy=(x, ends[n]), xytext=(x + dx, y), textcoords="data",
                    fontsize=fontsize, color=colours[n], va="center", ha="left", annotation_clip=False,
                    arrowprops={"arrowstyle": "-", "color": colours[n], "lw": 0.5, "alpha": 0.6})


def percent_axis(axis, decimals: int | None = None) -> None:
    from matplotlib.ticker import FuncFormatter

    def fmt(v, _pos):
        if v <= 0:
            return "0%"
        d = decimals if decimals is not None else (0 if v >= 0.01 else 1 if v >= 0.001 else 2)
        return f"{100 * v:.{d}f}%"
    axis.set_major_formatter(FuncFormatter(fmt))

