"""Plan a mixture: how many tokens each source gives and how often it is repeated, before training.

    python -m trainer plan mixtures/phase1.toml --corpus shards/sample --tokens 1e6
    python -m trainer plan mixtures/phase2.toml --corpus shards/jetmoe --tokens 250B --json
    python -m trainer plan mixtures/phase1.toml --corpus shards/sample --tokens 10M --plot reports/phase1_mix.png
    python -m trainer plan mixtures/phase2.toml --corpus shards/mine --tokens 1e9 --renormalise   # partial corpus

Per source: the weight written in the file (the group's weight for a group member), the share after groups
(normalised), tokens to draw (share × tokens), train tokens available, and epochs (drawn / available).
A source whose epochs exceed the file's `max_epochs` gets a warning (the run still plans: repeating is
allowed, just worth a look). `--tokens` takes plain numbers, 1e9, or K/M/B/T suffixes. `--renormalise` (or
`renormalise = true` in the mixture file) drops the sources the corpus lacks and renormalises the rest; what
was dropped and the new shares are printed above the table.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from jetmoe_core.io import IOFault, atomic_path

from .corpus import Corpus, CorpusError
from .mixture import Mixture, MixtureError, describe_renormalisation, load_mixture

_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}


@dataclass(frozen=True)
class PlanRow:
    source: str
    group: str | None  # the group the source's weight comes from, None for a weight of its own
    weight: float  # as written in the file (the group's weight for a group member)
    share: float  # of the phase's tokens, after groups and normalisation
    tokens_drawn: int
    tokens_available: int  # train tokens in the corpus, EOS included
    epochs: float  # tokens_drawn / tokens_available
    over_limit: bool  # epochs > the mixture's max_epochs


def plan_mixture(mix: Mixture, corpus: Corpus, tokens: int | float) -> list[PlanRow]:
    """One row per source with a positive share, largest share first (ties by name)."""
    if tokens < 0:
        raise ValueError(f"tokens must be ≥ 0, got {tokens}")
    rows = []
    for src, share in mix.shares.items():
        avail = corpus.n_tokens(src)
        drawn = int(round(share * tokens))
        epochs = drawn / avail
        rows.append(PlanRow(src, mix.group_of.get(src), mix.given_weight(src), share, drawn, avail, epochs,
                            epochs > mix.max_epochs))
    return sorted(rows, key=lambda r: (-r.share, r.source))


def parse_tokens(text: str) -> int:
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([KMBGTkmbgt]?)\s*", str(text))
    if not m:
        raise ValueError(f"--tokens {text!r}: write a number like 1000000, 1e9, 250B or 1T")
    return int(round(float(m.group(1)) * _SUFFIX[m.group(2).upper()]))


def human(n: float) -> str:
    for unit, div in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return f"{n:.0f}"


def warnings_for(rows: list[PlanRow], mix: Mixture) -> list[str]:
    return [f"{r.source} would be repeated {r.epochs:.2f} times, over max_epochs = {mix.max_epochs:g} set in "
            f"{mix.path}: lower its weight, add data to it, or raise max_epochs" for r in rows if r.over_limit]


def format_plan(rows: list[PlanRow], mix: Mixture | None = None, corpus: Corpus | None = None,
                tokens: int | None = None) -> str:
    """The plan as a text table (with a heading line when mix, corpus and tokens are given); over-limit
    epochs are marked with "!"."""
    head = ["source", "group", "weight", "share", "tokens drawn", "available", "epochs"]
    body = [[r.source, r.group or "-", f"{r.weight:g}", f"{100 * r.share:.2f}%", human(r.tokens_drawn),
             human(r.tokens_available), f"{r.epochs:.3f}" + (" !" if r.over_limit else "")] for r in rows]
    body.append(["total", "", f"{sum({(r.group or r.source): r.weight for r in rows}.values()):g}",
                 f"{100 * sum(r.share for r in rows):.2f}%", human(sum(r.tokens_drawn for r in rows)),
                 human(sum(r.tokens_available for r in rows)), ""])
    widths = [max(len(str(x[i])) for x in [head] + body) for i in range(len(head))]
    right = {2, 3, 4, 5, 6}

    def line(cells):
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in
                         enumerate(zip(cells, widths)))

    out = [line(head), line(["-" * w for w in widths])]
    if mix is not None and corpus is not None and tokens is not None:
        out.insert(0, f"mixture {mix.name} ({mix.path}) on corpus {corpus.name} ({corpus.root}), {human(tokens)} "
                      f"tokens, max_epochs {mix.max_epochs:g}")
    out += [line(b) for b in body[:-1]] + [line(["-" * w for w in widths]), line(body[-1])]
    return "\n".join(out)


def plot(rows: list[PlanRow], mix: Mixture, tokens: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({r.group or "-" for r in rows})
    cmap = plt.get_cmap("tab10")
    colour = {g: cmap(i % 10) for i, g in enumerate(groups)}
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.5))
    names = [r.source for r in rows][::-1]
    vals = [100 * r.share for r in rows][::-1]
    bars = ax.barh(names, vals, color=[colour[r.group or "-"] for r in rows][::-1])
    for bar, r in zip(bars, rows[::-1]):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {100 * r.share:.2f}%, {r.epochs:.2f} ep",
                va="center", fontsize=8, color="red" if r.over_limit else "black")
    ax.set_xlabel("share of tokens (%)")
    ax.set_title(f"{mix.name}: {human(tokens)} tokens")
    ax.set_xlim(0, max(vals) * 1.35)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour[g]) for g in groups]
    ax.legend(handles, [("no group" if g == "-" else g) for g in groups], fontsize=8, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png", metadata={"Software": None})
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m trainer plan", description=__doc__.split("\n\n")[0])
    ap.add_argument("mixture", help="mixture TOML, e.g. mixtures/phase1.toml")
    ap.add_argument("--corpus", default="shards/sample", help="corpus folder with manifest.json (default %(default)s)")
    ap.add_argument("--tokens", required=True, help="tokens the phase draws: 1000000, 1e9, 250B, 1T")
    ap.add_argument("--json", action="store_true", help="print the plan as one JSON object")
    ap.add_argument("--plot", metavar="PNG", help="also write a bar chart of the mix to this PNG")
    ap.add_argument("--renormalise", action="store_true",
                    help="drop the sources the corpus lacks (or that have no train tokens) and renormalise the "
                         "rest, as `renormalise = true` in the mixture file does")
    args = ap.parse_args(argv)
    try:
        tokens = parse_tokens(args.tokens)
        corpus = Corpus.open(args.corpus)
        mix = load_mixture(args.mixture, corpus, renormalise=args.renormalise)
    except (MixtureError, CorpusError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows = plan_mixture(mix, corpus, tokens)
    warns = warnings_for(rows, mix)
    if args.plot:
        try:
            plot(rows, mix, tokens, Path(args.plot))
        except OSError as e:
            raise IOFault.from_os_error(e, "writing the plot", e.filename or args.plot) from None
    if args.json:
        print(json.dumps({"mixture": mix.name, "path": str(mix.path), "mixture_fingerprint": mix.fingerprint,
                          "corpus": corpus.name, "corpus_root": str(corpus.root),
                          "corpus_fingerprint": corpus.fingerprint, "tokens": tokens, "max_epochs": mix.max_epochs,
                          "rows": [asdict(r) for r in rows], "warnings": warns, "dropped": mix.dropped},
                         sort_keys=True))
    else:
        for line in describe_renormalisation(mix):
            print(line)
        print(format_plan(rows, mix, corpus, tokens))
        for w in warns:
            print(f"warning: {w}", file=sys.stderr)
        if args.plot:
            print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
