"""Intervals over seeds and the rule that says whether a difference between two variants exceeds the seed spread.

    iv = interval([5.61, 5.58, 5.66], confidence=0.95)     # Interval(mean=5.6167, half=0.1004, n=3)
    c = compare(iv_variant, iv_control)                    # Comparison(diff, half, verdict)
    c.verdict                                              # "lower" | "higher" | "within spread"

An interval is the mean over seeds ± the two-sided Student-t half-width t_{(1+c)/2, n-1} · s / √n (s the sample
standard deviation). Two variants differ beyond the seed spread when their difference of means is larger than
the combined half-width √(h_a² + h_b²), i.e. the interval of the difference excludes 0; otherwise the grid cannot
tell them apart at this number of seeds. With one seed there is no spread to measure: the half-width is
infinite and nothing is called different.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

__all__ = ["Interval", "Comparison", "interval", "compare"]


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
    """Combined half-width √(h_variant² + h_reference²)."""
    verdict: str
    """"lower" / "higher" when the difference exceeds the combined half-width, else "within spread"."""

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


def compare(a: Interval, b: Interval) -> Comparison:
    diff = a.mean - b.mean
    half = math.hypot(a.half, b.half)
    verdict = "within spread" if not abs(diff) > half else ("lower" if diff < 0 else "higher")
    return Comparison(diff, half, verdict)
