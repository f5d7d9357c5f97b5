"""Plots of one corpus (its manifest.json), each titled with the corpus name; sources in the same order in
every plot (most tokens first), so a row can be followed from one plot to the next.

    rows = corpus_table(load_manifest("shards/sample"))
    plot_corpus_tokens(rows, "sample", out / "corpus_tokens.png")  train and val tokens per source, log axis
    plot_corpus_drops(rows, "sample", out / "corpus_drops.png")    what became of each source's documents:
                                                   kept, removed by filter reason, rejected, duplicate (0–100%)
    plot_corpus_dedup(rows, "sample", out / "corpus_dedup.png")    duplicates removed by exact / MinHash /
                                                   cross-source dedup, as a share of documents entering dedup

Every function writes one PNG atomically and returns its path.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from trainer.data.plan import human

from .data import DEDUP_KINDS
from .style import MAX_SERIES, PALETTE, percent_axis, pyplot, save, top_n

KEPT = "#e4e4e4"
REJECTED = "#5b3a29"
DUPLICATE = "#e377c2"
DEDUP_COLOURS = {"exact": "#1f77b4", "MinHash": "#ff7f0e", "cross-source": "#2ca02c", "other dedup": "#9467bd"}
DEDUP_LABELS = {"exact": "exact (same text in the source)", "MinHash": "MinHash (near-duplicate in the source)",
                "cross-source": "cross-source (kept in another source)", "other dedup": "other dedup"}


def _height(rows) -> float:
    return 1.6 + 0.3 * len(rows)


def _sources_axis(ax, rows) -> np.ndarray:
    y = np.arange(len(rows))
    ax.set_yticks(y, [r["source"] for r in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    return y


def plot_corpus_tokens(rows: list[dict], corpus: str, out: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, _height(rows)))
    y = _sources_axis(ax, rows)
    tr = np.array([r["train_tokens"] for r in rows], dtype=float)
    va = np.array([r["val_tokens"] for r in rows], dtype=float)
    h = 0.4
    ax.barh(y - h / 2, np.where(tr > 0, tr, np.nan), height=h, color="#1f77b4", label="train")
    ax.barh(y + h / 2, np.where(va > 0, va, np.nan), height=h, color="#ff7f0e", label="val")
    ax.set_xscale("log")
    positive = np.concatenate([tr[tr > 0], va[va > 0]])
    lo = 10 ** np.floor(np.log10(positive.min())) if len(positive) else 1
    ax.set_xlim(lo, (positive.max() if len(positive) else 10) * 12)
    for yi, t, v in zip(y, tr, va):
        ax.text(max(t, lo), yi - h / 2, f" {human(t)}" if t else " none", va="center", fontsize=7)
        ax.text(max(v, lo), yi + h / 2, f" {human(v)}" if v else " no val split", va="center", fontsize=7,
                color="#a04000")
    ax.set_xlabel("tokens, EOS included (log scale)")
    ax.grid(axis="x", alpha=0.3, which="major")
    ax.legend(loc="lower right")
    ax.set_title(f"Corpus {corpus}: tokens per source (train {human(tr.sum())}, val {human(va.sum())})", loc="left")
    return save(fig, out)


def fate_segments(rows: list[dict]) -> list[tuple[str, str, list[int]]]:
    """(label, colour, documents per row) for the stacked "what became of the documents" bars, ≤ 8 series:
    the largest filter reasons, the other filter reasons together, rejected, duplicate, kept."""
    totals: dict[str, int] = {}
    for r in rows:
        for k, v in r["dropped"].items():
            totals[k] = totals.get(k, 0) + v
    named, rest = top_n(totals, MAX_SERIES - 3)
    segs = [(f"filter: {k}", PALETTE[i], [r["dropped"].get(k, 0) for r in rows]) for i, k in enumerate(named)]
    if rest:
        segs.append((f"filter: {len(rest)} other reasons", "#bcbd22",
                     [sum(r["dropped"].get(k, 0) for k in rest) for r in rows]))
    segs.append(("rejected (malformed input)", REJECTED, [sum(r["rejected"].values()) for r in rows]))
    segs.append(("duplicate (see the dedup plot)", DUPLICATE, [r["dedup_n"] for r in rows]))
    segs.append(("kept", KEPT, [r["kept"] for r in rows]))
    return segs


def plot_corpus_drops(rows: list[dict], corpus: str, out: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, _height(rows) + 0.6))
    y = _sources_axis(ax, rows)
    docs_in = np.array([max(r["docs_in"], 1) for r in rows], dtype=float)
    left = np.zeros(len(rows))
    for label, colour, counts in fate_segments(rows):
        share = np.array(counts) / docs_in
        if share.any():
            ax.barh(y, share, left=left, color=colour, label=label, height=0.7)
        left += share
    for yi, r in zip(y, rows):
        kept = r["kept"] / max(r["docs_in"], 1)
        ax.text(1.01, yi, f"kept {r['kept']:,} of {r['docs_in']:,} ({kept:.0%})", va="center", fontsize=7,
                transform=ax.get_yaxis_transform())
    ax.set_xlim(0, 1)
    percent_axis(ax.xaxis)
    ax.set_xlabel("share of the source's input documents")
    ax.legend(loc="upper left", bbox_to_anchor=(0, -0.35 / _height(rows) - 0.04), ncol=4, fontsize=7.5,
              frameon=False)
    removed = sum(r["docs_in"] - r["kept"] for r in rows)
    total = sum(r["docs_in"] for r in rows)
    ax.set_title(f"Corpus {corpus}: what became of each source's documents ({removed:,} of {total:,} removed)",
                 loc="left")
    return save(fig, out)


def plot_corpus_dedup(rows: list[dict], corpus: str, out: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, _height(rows)))
    y = _sources_axis(ax, rows)
    base = np.array([max(r["dedup_in"], 1) for r in rows], dtype=float)
    left = np.zeros(len(rows))
    for kind in DEDUP_KINDS:
        counts = np.array([r["dedup"].get(kind, 0) for r in rows], dtype=float)
        if counts.any():
            ax.barh(y, counts / base, left=left, color=DEDUP_COLOURS[kind], label=DEDUP_LABELS[kind],
                    height=0.7)
            left += counts / base
    for yi, r, end in zip(y, rows, left):
        if not r["dedup_in"]:
            text = " no dedup stage"
        else:
            parts = ", ".join(f"{kind} {r['dedup'][kind]:,}" for kind in DEDUP_KINDS if r["dedup"].get(kind))
            text = f" {r['dedup_n']:,} of {r['dedup_in']:,} ({r['dedup_rate']:.0%})" + (f": {parts}" if parts else "")
        ax.text(end, yi, text, va="center", fontsize=7)
    ax.set_xlim(0, 1)
    percent_axis(ax.xaxis)
    ax.set_xlabel("share of the documents entering dedup that were removed as duplicates")
    ax.grid(axis="x", alpha=0.3)
    if left.any():
        ax.legend(loc="upper left", bbox_to_anchor=(0, -0.35 / _height(rows) - 0.04), ncol=4, frameon=False)
    tot_in = sum(r["dedup_in"] for r in rows)
    tot = sum(r["dedup_n"] for r in rows)
    ax.set_title(f"Corpus {corpus}: duplicates removed per source ({tot:,} of {tot_in:,}, {tot / max(tot_in, 1):.1%})",
                 loc="left")
    return save(fig, out)
