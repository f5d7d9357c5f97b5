"""PNG plots of a training run and of a corpus (`make report`).

    python -m trainer report --run runs/tiny --corpus shards/sample --out reports/tiny

From the run folder's metrics.jsonl:
  loss.png          train loss (per step and smoothed) and val loss per source, across phase 1 and 2
  lr.png            the learning rate per step (warmup, stable, decay), phases shaded
  expert_load.png   share of tokens per expert, per layer, over time, for MoA and MoE (ideal 1/E)
  mixture.png       realised share of tokens per source (cumulative within each phase) vs the target
From the corpus folder's manifest.json:
  corpus_tokens.png tokens per source (train and val)
  corpus_drops.png  documents removed per source, by reason (filters, rejects), as a share of documents in
  corpus_dedup.png  share of documents removed by deduplication per source
Either --run or --corpus may be left out. A summary table of what was written ends the output.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np


def _plt():
    import matplotlib
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Path) -> Path:
    """Write the PNG through a temp file so a reader never sees half an image."""
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    os.replace(tmp, path)
    _plt().close(fig)
    return path


def _phase_spans(train: list[dict]) -> list[tuple[int, float, float]]:
    spans = []
    for phase in sorted({r["phase"] for r in train}):
        steps = [r["step"] for r in train if r["phase"] == phase]
        spans.append((phase, min(steps) - 1, max(steps)))
    return spans


def _shade(ax, spans) -> None:
    colors = {1: "#e8f0fe", 2: "#fdeee6"}
    for phase, lo, hi in spans:
        ax.axvspan(lo, hi, color=colors.get(phase, "#eeeeee"), zorder=0)
        ax.text((lo + hi) / 2, 0.015, f"phase {phase}", transform=ax.get_xaxis_transform(), ha="center",
                va="bottom", fontsize=8, color="#555555")


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    if len(y) < 3 or window <= 1:
        return y
    window = min(window, len(y))
    kernel = np.ones(window) / window
    pad = np.concatenate([np.full(window - 1, y[0]), y])
    return np.convolve(pad, kernel, mode="valid")


def load_run(run_dir: Path) -> tuple[list[dict], list[dict], list[dict]]:
    from trainer.metrics import read_jsonl
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: --run must be a run folder written by `python -m trainer train` "
                                "(e.g. runs/tiny after `make phase1`)")
    recs = read_jsonl(path)
    train = [r for r in recs if r.get("kind") == "train" and isinstance(r.get("loss"), (int, float))]
    val = [r for r in recs if r.get("kind") == "val"]
    events = [r for r in recs if r.get("kind") == "event"]
    if not train:
        raise ValueError(f"{path} holds no training steps yet; train first (make phase1)")
    return train, val, events


def plot_loss(train, val, out: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4.8))
    _shade(ax, _phase_spans(train))
    steps = np.array([r["step"] for r in train])
    loss = np.array([r["lm_loss"] for r in train])
    ax.plot(steps, loss, color="#9bb7e0", lw=0.8, label="train lm loss (per step)")
    ax.plot(steps, _smooth(loss, max(1, len(loss) // 25)), color="#1f4e9c", lw=2, label="train lm loss (smoothed)")
    sources = sorted({s for r in val for s in r["loss"]})
    cmap = plt.get_cmap("tab20")
    for i, src in enumerate(sources):
        pts = [(r["step"], r["loss"][src]) for r in val if src in r["loss"]]
        xs, ys = zip(*pts)
        ax.plot(xs, ys, "o--", ms=3.5, lw=1, color=cmap(i % 20), label=f"val {src}")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title("Loss: train and val per source")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2 if len(sources) > 12 else 1, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(fig, out)


def plot_lr(train, out: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    _shade(ax, _phase_spans(train))
    ax.plot([r["step"] for r in train], [r["lr"] for r in train], color="#b8420f", lw=1.8)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_title("Learning rate (warmup-stable-decay)")
    ax.grid(alpha=0.3)
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    return _save(fig, out)


def expert_shares(train: list[dict], kind: str, bins: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """[layers × experts, time bins] share of each layer's routed tokens per expert, and the bin end steps."""
    counts = np.array([r["expert_tokens"][kind] for r in train], dtype=np.float64)  # [T, L, E]
    t = counts.shape[0]
    edges = np.linspace(0, t, min(bins, t) + 1).astype(int)
    binned = np.stack([counts[a:b].sum(0) for a, b in zip(edges[:-1], edges[1:])], axis=-1)  # [L, E, B]
    shares = binned / np.maximum(binned.sum(1, keepdims=True), 1)
    steps = np.array([train[b - 1]["step"] for b in edges[1:]])
    return shares.reshape(-1, shares.shape[-1]), steps


def plot_expert_load(train, out: Path) -> Path:
    plt = _plt()
    n_layers = len(train[0]["expert_tokens"]["attn"])
    n_exp = len(train[0]["expert_tokens"]["attn"][0])
    fig, axes = plt.subplots(1, 2, figsize=(12, 2 + 0.16 * n_layers * n_exp), sharey=True)
    vmax = min(1.0, 3.0 / n_exp)
    for ax, kind, title in ((axes[0], "attn", "MoA (attention experts)"), (axes[1], "mlp", "MoE (MLP experts)")):
        shares, steps = expert_shares(train, kind)
        im = ax.imshow(shares, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0, vmax=vmax,
                       extent=(train[0]["step"] - 1, steps[-1], n_layers * n_exp, 0))
        for layer in range(1, n_layers):
            ax.axhline(layer * n_exp, color="white", lw=0.8)
        ax.set_title(f"{title}: token share per expert")
        ax.set_xlabel("optimizer step")
        ax.set_yticks([(i + 0.5) * n_exp for i in range(n_layers)], [f"layer {i}" for i in range(n_layers)])
    cb = fig.colorbar(im, ax=axes, shrink=0.8)
    cb.set_label(f"share of the layer's routed tokens (balanced = 1/{n_exp} = {1 / n_exp:.3f})")
    return _save(fig, out)


def plot_mixture(train, events, out: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    spans = _phase_spans(train)
    _shade(ax, spans)
    sources = sorted({s for r in train for s in r.get("source_tokens", {})})
    cmap = plt.get_cmap("tab20")
    targets = {e["phase"]: e.get("shares", {}) for e in events if e.get("event") == "phase_start"}
    for i, src in enumerate(sources):
        color = cmap(i % 20)
        labelled = False
        for phase, lo, hi in spans:
            rows = [r for r in train if r["phase"] == phase]
            got = np.cumsum([r.get("source_tokens", {}).get(src, 0) for r in rows])
            tot = np.cumsum([sum(r.get("source_tokens", {}).values()) for r in rows])
            if not got.any():
                continue
            ax.plot([r["step"] for r in rows], got / np.maximum(tot, 1), color=color, lw=1.6,
                    label=None if labelled else src)
            labelled = True
            if src in targets.get(phase, {}):
                ax.hlines(targets[phase][src], lo, hi, colors=[color], linestyles="dotted", lw=1)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("share of tokens drawn so far in the phase")
    ax.set_title("Realised mixture (solid) vs target weights (dotted)")
    ax.grid(alpha=0.3)
    ax.set_ylim(0, None)
    ax.legend(fontsize=7, ncol=2 if len(sources) > 8 else 1, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(fig, out)


# ------------------------------------------------------------------------------------------- corpus
def load_manifest(corpus_dir: Path) -> dict:
    path = Path(corpus_dir) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: --corpus must be a corpus folder (e.g. shards/sample after "
                                "`make corpus`)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}") from None


def corpus_table(manifest: dict) -> list[dict]:
    rows = []
    for src, body in sorted(manifest.get("sources", {}).items()):
        splits = body.get("splits", {})
        acc = body.get("accounting", [])
        docs_in = acc[0]["docs_in"] if acc else sum(s.get("n_docs", 0) for s in splits.values())
        reasons: dict[str, int] = {}
        dedup, dedup_in = 0, None
        for a in acc:
            is_dedup_stage = str(a.get("stage", "")).startswith("dedup")
            if is_dedup_stage and dedup_in is None:
                dedup_in = a["docs_in"]
            for kind in ("dropped", "rejected"):
                for k, v in (a.get(kind) or {}).items():
                    if is_dedup_stage or "dedup" in k:
                        dedup += v
                        if dedup_in is None:
                            dedup_in = a["docs_in"]
                    else:
                        key = k if kind == "dropped" else f"rejected: {k}"
                        reasons[key] = reasons.get(key, 0) + v
        rows.append({"source": src, "train_tokens": splits.get("train", {}).get("n_tokens", 0),
                     "val_tokens": splits.get("val", {}).get("n_tokens", 0), "docs_in": docs_in,
                     "reasons": reasons, "dedup": dedup, "dedup_in": dedup_in or 0,
                     "dedup_rate": dedup / dedup_in if dedup_in else 0.0})
    if not rows:
        raise ValueError("manifest.json lists no sources")
    return rows


def plot_corpus_tokens(rows, out: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 1 + 0.32 * len(rows)))
    y = np.arange(len(rows))
    tr = np.array([r["train_tokens"] for r in rows], dtype=float)
    va = np.array([r["val_tokens"] for r in rows], dtype=float)
    ax.barh(y, tr, color="#1f77b4", label="train")
    ax.barh(y, va, left=tr, color="#ff7f0e", label="val")
    for yi, t in zip(y, tr + va):
        ax.text(t, yi, f" {t:,.0f}", va="center", fontsize=7)
    ax.set_yticks(y, [r["source"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("tokens (EOS included)")
    ax.set_title(f"Tokens per source (total {tr.sum() + va.sum():,.0f})")
    ax.set_xlim(0, (tr + va).max() * 1.2 or 1)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, out)


def plot_corpus_drops(rows, out: Path) -> Path:
    plt = _plt()
    reasons = sorted({k for r in rows for k in r["reasons"]},
                     key=lambda k: (-sum(r["reasons"].get(k, 0) for r in rows), k))
    if len(reasons) > 12:  # beyond a dozen colours a legend stops being readable: fold the tail
        tail = set(reasons[11:])
        rows = [dict(r, reasons={**{k: v for k, v in r["reasons"].items() if k not in tail},
                                 f"other ({len(tail)} reasons)": sum(v for k, v in r["reasons"].items() if k in tail)})
                for r in rows]
        reasons = reasons[:11] + [f"other ({len(tail)} reasons)"]
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.32 * len(rows)))
    y = np.arange(len(rows))
    left = np.zeros(len(rows))
    cmap = plt.get_cmap("tab20")
    for i, k in enumerate(reasons):
        share = np.array([r["reasons"].get(k, 0) / max(r["docs_in"], 1) for r in rows])
        ax.barh(y, share, left=left, color=cmap(i % 20), label=k)
        left += share
    for yi, (r, tot) in enumerate(zip(rows, left)):
        n = sum(r["reasons"].values())
        ax.text(tot, yi, f" {n:,} of {r['docs_in']:,}", va="center", fontsize=7)
    ax.set_yticks(y, [r["source"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("share of the source's input documents removed (dedup not included)")
    ax.set_title("Documents removed per source, by reason")
    ax.set_xlim(0, min(max(left.max() * 1.35, 0.05), 1.3))
    if reasons:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    else:
        ax.text(0.5, 0.5, "no documents were removed", transform=ax.transAxes, ha="center")
    return _save(fig, out)


def plot_corpus_dedup(rows, out: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 1 + 0.32 * len(rows)))
    y = np.arange(len(rows))
    rate = np.array([r["dedup_rate"] for r in rows])
    ax.barh(y, rate, color="#2ca02c")
    for yi, r in zip(y, rows):
        label = f" {r['dedup_rate']:.1%} ({r['dedup']:,} of {r['dedup_in']:,})" if r["dedup_in"] else " no dedup stage"
        ax.text(r["dedup_rate"], yi, label, va="center", fontsize=7)
    ax.set_yticks(y, [r["source"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("share of documents entering dedup that were removed as duplicates")
    tot_in = sum(r["dedup_in"] for r in rows)
    ax.set_title(f"Dedup rate per source (overall {sum(r['dedup'] for r in rows) / max(tot_in, 1):.1%})")
    ax.set_xlim(0, min(max(rate.max() * 1.4, 0.05), 1.3))
    return _save(fig, out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trainer report", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", help="run folder (holds metrics.jsonl)")
    p.add_argument("--corpus", help="corpus folder (holds manifest.json)")
    p.add_argument("--out", required=True, help="folder for the PNGs")
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    if not args.run and not args.corpus:
        p.error("give --run, --corpus or both")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[tuple[str, Path, str]] = []
    try:
        if args.run:
            train, val, events = load_run(Path(args.run))
            phases = sorted({r["phase"] for r in train})
            written.append(("run", plot_loss(train, val, out / "loss.png"),
                            f"{len(train)} steps, phases {phases}, {len({s for r in val for s in r['loss']})} val sources"))
            written.append(("run", plot_lr(train, out / "lr.png"),
                            f"lr {min(r['lr'] for r in train):.3g} .. {max(r['lr'] for r in train):.3g}"))
            written.append(("run", plot_expert_load(train, out / "expert_load.png"),
                            f"{len(train[0]['expert_tokens']['attn'])} layers × "
                            f"{len(train[0]['expert_tokens']['attn'][0])} experts"))
            written.append(("run", plot_mixture(train, events, out / "mixture.png"),
                            f"{len({s for r in train for s in r.get('source_tokens', {})})} sources"))
        if args.corpus:
            rows = corpus_table(load_manifest(Path(args.corpus)))
            written.append(("corpus", plot_corpus_tokens(rows, out / "corpus_tokens.png"),
                            f"{len(rows)} sources, {sum(r['train_tokens'] + r['val_tokens'] for r in rows):,} tokens"))
            written.append(("corpus", plot_corpus_drops(rows, out / "corpus_drops.png"),
                            f"{sum(sum(r['reasons'].values()) for r in rows):,} docs removed"))
            written.append(("corpus", plot_corpus_dedup(rows, out / "corpus_dedup.png"),
                            f"{sum(r['dedup'] for r in rows):,} duplicates removed"))
    except (FileNotFoundError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    w = max(len(str(p)) for _, p, _ in written)
    print(f"{'from':<7} {'plot':<{w}}  content")
    for kind, path, what in written:
        print(f"{kind:<7} {str(path):<{w}}  {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
