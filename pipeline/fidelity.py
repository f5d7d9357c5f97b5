"""Fidelity guard: how much of each source the build removed, by stage and by reason, against a threshold.

    from pipeline.fidelity import FidelityOptions, evaluate, table, over_threshold, manifest_fidelity
    rows = evaluate({"pile_arxiv": chain, ...}, FidelityOptions(max_removed=0.5))
    print(table(rows))                       # per source: docs in, kept, removed %, % per stage, top rule
    for line in over_threshold(rows): ...    # one message per source past its threshold, naming the rule
    manifest["fidelity"] = manifest_fidelity(rows)   # {source: flat row}, what `make report` tabulates

Input: per source, its accounting chain (the ``accounting`` list of the manifest: one record per stage,
``{"stage", "docs_in", "docs_out", "dropped": {reason: n}, "rejected": {reason: n}}``, first stage first).
A source's input is the first record's ``docs_in``; what it lost is every record's dropped and rejected
documents. Each row carries the share removed per stage and per reason (shares of the source's input), the
rule that removed the most (``stage/reason``), the threshold that applies and a status: ``ok``, ``warn``
(past the threshold) or ``fail`` (past it with ``fail = true``).

Config (``[fidelity]``, read by the ``fidelity`` stage, which runs this after the last dedup stage, by the
build's summary and by the manifest stage)::

    [fidelity]
    max_removed = 0.5                        # share of a source's documents the build may remove
    fail = false                             # true: a source past its threshold fails the build
    [fidelity.max_removed_by_source]
    refinedweb = 0.6                         # a per-source threshold, where more removal is expected

Why: a filter built for one kind of text applied to another removes most of it without an error; the
mixture the trainer sees then silently differs from the recipe (and the planner repeats the survivors).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STATUSES = ("ok", "warn", "fail")


class FidelityError(RuntimeError):
    """A source lost more than its threshold and ``[fidelity] fail`` is on."""


@dataclass
class FidelityOptions:
    """The ``[fidelity]`` table."""
    #: share of a source's input documents the build may remove before the guard speaks up
    max_removed: float = 0.5
    #: source -> its own threshold
    max_removed_by_source: dict[str, float] = field(default_factory=dict)
    #: past the threshold: false warns, true fails the build
    fail: bool = False
    #: tables keyed by source name: the config loader checks each name against the catalog and the config's own
    SOURCE_KEYED = ("max_removed_by_source",)

    def __post_init__(self):
        for where, value in [("max_removed", self.max_removed),
                             *((f"max_removed_by_source.{s}", v) for s, v in self.max_removed_by_source.items())]:
            if not 0 <= value <= 1:
                raise ValueError(f"[fidelity] {where} = {value}: a share of documents, between 0 and 1")

    def threshold(self, source: str) -> float:
        return self.max_removed_by_source.get(source, self.max_removed)


@dataclass
class SourceFidelity:
    source: str
    docs_in: int
    docs_out: int
    #: stage -> {"removed": n, "share": n / docs_in, "reasons": {reason: n}} (rejected reasons as "rejected:<r>")
    stages: dict[str, dict[str, Any]]
    threshold: float
    status: str
    #: (stage, reason, n) of the reason that removed the most, None when nothing was removed
    top: tuple[str, str, int] | None

    @property
    def removed(self) -> int:
        return sum(s["removed"] for s in self.stages.values())

    @property
    def share(self) -> float:
        return self.removed / self.docs_in if self.docs_in else 0.0

    @property
    def top_rule(self) -> str:
        return f"{self.top[0]}/{self.top[1]}" if self.top else ""

    def to_dict(self) -> dict[str, Any]:
        """Everything, per stage and reason (``fidelity.json``); :meth:`from_dict` reads it back."""
        return {"docs_in": self.docs_in, "docs_out": self.docs_out, "removed": self.removed,
                "removed_share": round(self.share, 6), "threshold": self.threshold, "status": self.status,
                "top_rule": self.top_rule, "top_rule_removed": self.top[2] if self.top else 0,
                "stages": {k: {"removed": v["removed"], "share": round(v["share"], 6), "reasons": dict(v["reasons"])}
                           for k, v in self.stages.items()}}

    @classmethod
    def from_dict(cls, source: str, d: dict[str, Any]) -> "SourceFidelity":
        stage, _, reason = d["top_rule"].partition("/")
        return cls(source, d["docs_in"], d["docs_out"], d["stages"], d["threshold"], d["status"],
                   (stage, reason, d["top_rule_removed"]) if d["top_rule"] else None)

    def manifest_entry(self) -> dict[str, Any]:
        """One flat row for the manifest's ``fidelity`` table (the per-reason detail is in its accounting)."""
        return {"docs_in": self.docs_in, "kept": self.docs_out, "removed_share": round(self.share, 4),
                **{f"{k}_share": round(v["share"], 4) for k, v in self.stages.items()},
                "top_rule": self.top_rule, "top_rule_share": round(self.top[2] / self.docs_in, 4) if self.top else 0.0,
                "threshold": self.threshold, "status": self.status}

    def message(self) -> str:
        what = f"{self.top_rule} removed {self.top[2]:,} ({self.top[2] / self.docs_in:.0%})" if self.top else ""
        return (f"{self.source}: the build removed {self.removed:,} of {self.docs_in:,} documents ({self.share:.1%}, "
                f"threshold {_pct(self.threshold)}); most by {what}. If that rule does not fit this source, give it "
                f"another family in [filters.policy] or [dedup.policy]; if the loss is expected, raise "
                f"[fidelity.max_removed_by_source] {self.source}")


def evaluate_source(source: str, chain: list[dict], opts: FidelityOptions) -> SourceFidelity:
    if not chain:
        raise ValueError(f"{source}: no accounting records; build the source first")
    docs_in = int(chain[0]["docs_in"])
    stages: dict[str, dict[str, Any]] = {}
    best: tuple[str, str, int] | None = None
    for rec in chain:
        reasons: dict[str, int] = {}
        for kind, prefix in (("dropped", ""), ("rejected", "rejected:")):
            for reason, n in sorted((rec.get(kind) or {}).items()):
                if n:
                    reasons[prefix + reason] = reasons.get(prefix + reason, 0) + int(n)
                    if best is None or int(n) > best[2]:  # ties: the first in chain order
                        best = (rec["stage"], prefix + reason, int(n))
        st = stages.setdefault(rec["stage"], {"removed": 0, "share": 0.0, "reasons": {}})
        for r, n in reasons.items():
            st["reasons"][r] = st["reasons"].get(r, 0) + n
        st["removed"] += sum(reasons.values())
        st["share"] = st["removed"] / docs_in if docs_in else 0.0
    limit = opts.threshold(source)
    removed = sum(s["removed"] for s in stages.values())
    over = docs_in > 0 and removed / docs_in > limit
    status = ("fail" if opts.fail else "warn") if over else "ok"
    return SourceFidelity(source, docs_in, int(chain[-1]["docs_out"]), stages, limit, status, best)


def evaluate(chains: dict[str, list[dict]], opts: FidelityOptions | None = None) -> list[SourceFidelity]:
    """One row per source, in the order given."""
    opts = opts or FidelityOptions()
    return [evaluate_source(src, chain, opts) for src, chain in chains.items()]


def manifest_fidelity(rows: list[SourceFidelity]) -> dict[str, dict[str, Any]]:
    """The manifest's top-level ``fidelity`` entry: source -> :meth:`SourceFidelity.manifest_entry`."""
    return {r.source: r.manifest_entry() for r in rows}


def over_threshold(rows: list[SourceFidelity]) -> list[str]:
    """A message per source past its threshold, naming the rule that removed the most."""
    return [r.message() for r in rows if r.status != "ok"]


def render(rows: list[SourceFidelity]) -> str:
    """What a build prints: a title, the table, then one warning line per source past its threshold."""
    lines = ["fidelity: share of each source's documents removed, per stage", table(rows)]
    return "\n".join(lines + [f"{'FAILED' if r.status == 'fail' else 'WARNING'} fidelity: {r.message()}"
                              for r in rows if r.status != "ok"])


def check(rows: list[SourceFidelity]) -> None:
    """Raise :class:`FidelityError` listing every source whose status is ``fail``."""
    failed = [r.message() for r in rows if r.status == "fail"]
    if failed:
        raise FidelityError("sources lost more than [fidelity] allows:\n  " + "\n  ".join(failed))


def _pct(share: float) -> str:
    """A threshold as a percentage, with a decimal only where it has one (50%, 0.5%)."""
    return f"{share:.0%}" if round(share * 100, 6) == round(share * 100) else f"{share:.1%}"


def table(rows: list[SourceFidelity]) -> str:
    """Fixed-width: source, docs in, kept, removed %, the % each stage removed, top rule, status."""
    stages: list[str] = []
    for r in rows:
        stages += [s for s in r.stages if s not in stages]
    head = ["source", "docs in", "kept", "removed", *stages, "top rule", "status"]
    body = []
    for r in rows:
        cells = [r.source, f"{r.docs_in:,}", f"{r.docs_out:,}", f"{r.share:.1%}"]
        cells += [f"{r.stages[s]['share']:.1%}" if s in r.stages and r.stages[s]["removed"] else "-" for s in stages]
        top = f"{r.top_rule} ({r.top[2] / r.docs_in:.0%})" if r.top and r.docs_in else ""
        body.append(cells + [top, r.status if r.status == "ok" else f"{r.status.upper()} > {_pct(r.threshold)}"])
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body)]
    right = set(range(1, 4 + len(stages)))

    def line(cells):
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(head), "  ".join("-" * w for w in widths), *map(line, body)])
