"""Per-source, per-stage document accounting.

Every document that enters a stage leaves it exactly one way: kept (``docs_out``), dropped by a rule
(``dropped[reason]``: quality filters, dedup) or rejected as bad input (``rejected[reason]``: invalid
JSON, missing field, ...). ``docs_in == docs_out + sum(dropped) + sum(rejected)`` always holds, and each
stage's ``docs_in`` is the previous stage's ``docs_out``. A document a stage changed but kept (control
characters stripped) is also counted under ``normalised[reason]`` (part of ``docs_out``; the key appears only
when a stage normalised something). The manifest carries the list of these records per source (see the shard
contract in docs/design.md).

Stages report through datatrove's own statistics: a step that removes a document calls
``self.stat_update(f"dropped_{reason}")`` or ``self.stat_update(f"rejected_{reason}")`` (datatrove's
``BaseFilter`` already records ``dropped_<reason>`` when a filter returns ``(False, reason)``), and the
executor saves them per task in ``<logging_dir>/stats/<rank>.json``. :func:`from_datatrove_stats` turns
those files into a :class:`StageAccount`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable


class AccountingError(RuntimeError):
    """Documents were lost or invented somewhere: a bug, never bad input."""


@dataclass
class StageAccount:
    stage: str
    docs_in: int = 0
    docs_out: int = 0
    dropped: Counter = field(default_factory=Counter)
    rejected: Counter = field(default_factory=Counter)
    normalised: Counter = field(default_factory=Counter)

    def normalise(self, reason: str, n: int = 1) -> None:
        self.normalised[reason] += n

    def drop(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] += n

    def reject(self, reason: str, n: int = 1) -> None:
        self.rejected[reason] += n

    @property
    def lost(self) -> int:
        return self.docs_in - self.docs_out - sum(self.dropped.values()) - sum(self.rejected.values())

    def check(self, where: str = "") -> "StageAccount":
        if self.lost != 0 or self.docs_in < 0 or self.docs_out < 0:
            raise AccountingError(
                f"{where or self.stage}: docs_in {self.docs_in} != docs_out {self.docs_out} + dropped "
                f"{sum(self.dropped.values())} + rejected {sum(self.rejected.values())} ({self.lost:+d} unaccounted)"
            )
        return self

    def __iadd__(self, other: "StageAccount") -> "StageAccount":
        self.docs_in += other.docs_in
        self.docs_out += other.docs_out
        self.dropped.update(other.dropped)
        self.rejected.update(other.rejected)
        self.normalised.update(other.normalised)
        return self

    def to_dict(self) -> dict[str, Any]:
        out = {
            "stage": self.stage,
            "docs_in": self.docs_in,
            "docs_out": self.docs_out,
            "dropped": dict(sorted((k, v) for k, v in self.dropped.items() if v)),
            "rejected": dict(sorted((k, v) for k, v in self.rejected.items() if v)),
        }
        normalised = dict(sorted((k, v) for k, v in self.normalised.items() if v))
        if normalised:
            out["normalised"] = normalised
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StageAccount":
        return cls(d["stage"], int(d["docs_in"]), int(d["docs_out"]), Counter(d.get("dropped") or {}),
                   Counter(d.get("rejected") or {}), Counter(d.get("normalised") or {}))


def check_chain(accounts: Iterable[StageAccount], where: str) -> None:
    """Each stage balances, and each stage's input is the previous stage's output."""
    prev: StageAccount | None = None
    for acc in accounts:
        acc.check(f"{where}/{acc.stage}")
        if prev is not None and acc.docs_in != prev.docs_out:
            raise AccountingError(
                f"{where}/{acc.stage}: docs_in {acc.docs_in} != docs_out {prev.docs_out} of {prev.stage}")
        prev = acc


def from_datatrove_stats(stage: str, stats: Iterable[dict], docs_in_step: int = 0,
                         docs_out_step: int = -1) -> StageAccount:
    """Build an account from datatrove ``PipelineStats`` dicts (the content of ``stats/<rank>.json``).

    ``docs_in_step``/``docs_out_step`` index the pipeline steps whose ``total``/``documents`` counters are
    the stage's input and output (by default the first and the last step). Any step's ``dropped_<reason>``
    and ``rejected_<reason>`` counters become reasons; a step that dropped documents without a reason
    (datatrove's bare ``dropped``) is charged to ``<step name>``.
    """
    acc = StageAccount(stage)
    for task in stats:
        steps = task["stats"] if isinstance(task, dict) and "stats" in task else task
        acc.docs_in += _count(steps[docs_in_step])
        acc.docs_out += _count(steps[docs_out_step])
        for step in steps:
            st = step.get("stats", {})
            reasoned = 0
            for key, val in st.items():
                n = _value(val)
                if key.startswith("dropped_"):
                    acc.drop(key[len("dropped_"):], n)
                    reasoned += n
                elif key.startswith("rejected_"):
                    acc.reject(key[len("rejected_"):], n)
                elif key.startswith("normalised_"):
                    acc.normalise(key[len("normalised_"):], n)
            bare = _value(st.get("dropped", 0)) - reasoned
            if bare > 0:
                acc.drop(_slug(step.get("name", "unnamed_step")), bare)
    return acc


def _count(step: dict) -> int:
    st = step.get("stats", {})
    for key in ("total", "documents", "docs"):
        if key in st:
            return _value(st[key])
    return 0


def _value(v: Any) -> int:
    if isinstance(v, dict):  # datatrove MetricStats: {"total": n, "n": ..., "mean": ...}
        return int(v.get("total", v.get("n", 0)))
    return int(v)


def _slug(name: str) -> str:
    out = "".join(c.lower() if c.isalnum() else "_" for c in name)
    return "_".join(p for p in out.split("_") if p) or "unnamed_step"
