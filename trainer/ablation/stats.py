"""Intervals over seeds and the rule that says whether a difference between two variants exceeds the seed spread.

    iv = interval([5.61, 5.58, 5.66], confidence=0.95)     # Interval(mean=5.6167, half=0.1004, n=3)
    c = compare(iv_variant, iv_control)                    # Comparison(diff, half, verdict)
    c.verdict                                              # "lower" | "higher" | "within spread"
    c = compare_paired({0: 5.61, 1: 5.58}, {0: 5.66, 1: 5.60})   # per seed: the paired interval

An interval is the mean over seeds ± the two-sided Student-t half-width t_{(1+c)/2, n-1} · s / √n (s the sample
standard deviation). Two variants differ beyond the seed spread when the interval of their difference excludes 0;
otherwise the grid cannot tell them apart at this number of seeds. With one seed there is no spread to measure:
the half-width is infinite and nothing is called different.

The interval of a difference is taken one of two ways:

* paired (`compare_paired`), when both variants ran the same seeds: a seed fixes the data order (data.seed),
  so runs of one seed saw the same batches; the interval is the t-interval of the per-seed differences, which
  leaves out the part of the spread that the data order causes in both (the paired t-test);
* unpaired (`compare`), otherwise: the combined half-width √(h_a² + h_b²) of the two intervals.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

__all__ = ["Interval", "Comparison", "interval", "compare", "compare_paired"]


@dataclass(frozen=True)
class Interval:
    mean: float
    half: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.4f} ± {self.half:.4f}" if math.isfinite(self.half) else f"{self.mean:.4f} (1 seed)"


@dataclass(frozen=True)
class Comparison:
    diff: float
    """mean(variant) − mean(reference)."""
    half: float
    """Half-width of the difference's interval: paired, or √(h_variant² + h_reference²)."""
    verdict: str
    """"lower" / "higher" when the difference's interval excludes 0, else "within spread"."""
    paired: bool = False
    """Whether `half` comes from per-seed differences (the same seeds in both) or from the two intervals."""

    def __str__(self) -> str:
        return f"{self.diff:+.4f} ± {self.half:.4f}"


def interval(values: list[float], confidence: float = 0.95) -> Interval:
    n = len(values)
    if n == 0:
        raise ValueError("interval of no values")
    mean = math.fsum(values) / n
    if n == 1:
        return Interval(mean, math.inf, 1)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    return Interval(mean, float(stats.t.ppf((1 + confidence) / 2, n - 1)) * sd / math.sqrt(n), n)


def _verdict(diff: float, half: float) -> str:
    return "within spread" if not abs(diff) > half else ("lower" if diff < 0 else "higher")


def compare(a: Interval, b: Interval) -> Comparison:
    """a − b from two independent intervals (no seed shared, or seeds that do not pair the runs)."""
    diff = a.mean - b.mean
    half = math.hypot(a.half, b.half)
    return Comparison(diff, half, _verdict(diff, half))


def compare_paired(a: dict[int, float], b: dict[int, float], confidence: float = 0.95) -> Comparison:
    """a − b over the seeds both have ({seed: value}): the t-interval of the per-seed differences."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError(f"no seed in common: {sorted(a)} and {sorted(b)}")
    iv = interval([a[s] - b[s] for s in seeds], confidence)
    return Comparison(iv.mean, iv.half, _verdict(iv.mean, iv.half), paired=True)
