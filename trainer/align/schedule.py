"""The alignment stages' learning rate: linear warmup, then cosine decay to 0 (the recipe's `cosine`).

    sched = CosineSchedule(max_lr=2e-5, total_steps=4689, warmup_ratio=0.1)
    sched.lr(step)           # the lr of optimizer step `step` (0-based)

It is transformers' `get_cosine_schedule_with_warmup` (half a cosine) with the warmup length of
`TrainingArguments(warmup_ratio=...)`, ceil(ratio × steps), written as a pure function of the step (the
trainer sets the lr each step; the step is the whole schedule state a checkpoint needs). As there, step 0 of
the warmup has lr 0. `tests/test_align_units.py` compares it with transformers' scheduler step by step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class CosineSchedule:
    max_lr: float
    total_steps: int
    warmup_ratio: float

    @property
    def warmup_steps(self) -> int:
        return math.ceil(self.total_steps * self.warmup_ratio)

    def factor(self, step: int) -> float:
        w = self.warmup_steps
        if step < w:
            return step / max(1, w)
        progress = (step - w) / max(1, self.total_steps - w)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))

    def lr(self, step: int) -> float:
        return self.max_lr * self.factor(step)
