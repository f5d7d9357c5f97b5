"""AdamW with the usual no-decay groups, and the warmup-stable-decay (WSD) learning-rate schedule.

Weight decay is applied to matrices and expert weight stacks only: RMSNorm gains, biases and the
(tied) embedding are excluded, because decaying them shrinks scales and rare-token rows toward zero
without regularising anything useful.

WSD (MiniCPM; JetMoE-8B §4), on a global step counter that runs across both phases:
  warmup  [0, W):       lr · (init + (1 − init) · s / W)           from 10% of max up to max
  stable  [W, P1):      lr
  decay   [P1, P1+P2):  lr · shape(p), p = (s − P1 + 1) / P2 ∈ (0, 1] ending exactly at final · lr
shape: exponential final^p (geometric interpolation, the model card's word), linear 1 − (1 − final)p,
cosine final + (1 − final)(1 + cos πp)/2. torch has no WSD scheduler, so it is written here as a pure
function of the step; the optimizer's lr is set from it each step, and the step is the whole
"schedule state" a checkpoint needs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from trainer.config import RunConfig


@dataclass(frozen=True)
class WSDSchedule:
    max_lr: float
    warmup_steps: int
    phase1_steps: int
    phase2_steps: int
    init_frac: float = 0.1
    final_frac: float = 0.1
    decay: str = "exponential"

    @classmethod
    def from_config(cls, cfg: RunConfig) -> "WSDSchedule":
        steps = phase_steps(cfg)
        return cls(max_lr=cfg.optim.lr, warmup_steps=tokens_to_steps(cfg.schedule.warmup_tokens, cfg),
                   phase1_steps=steps[1], phase2_steps=steps[2], init_frac=cfg.schedule.init_frac,
                   final_frac=cfg.schedule.final_frac, decay=cfg.schedule.decay)

    @property
    def total_steps(self) -> int:
        return self.phase1_steps + self.phase2_steps

    def factor(self, step: int) -> float:
        """Multiplier of max_lr at optimizer step `step` (0-based)."""
        if step < 0:
            raise ValueError(f"step {step} < 0")
        if step < self.warmup_steps:
            return self.init_frac + (1.0 - self.init_frac) * step / self.warmup_steps
        if step < self.phase1_steps or self.phase2_steps == 0:
            return 1.0
        p = min(1.0, (step - self.phase1_steps + 1) / self.phase2_steps)
        f = self.final_frac
        if self.decay == "exponential":
            return f ** p
        if self.decay == "linear":
            return 1.0 - (1.0 - f) * p
        if self.decay == "cosine":
            return f + (1.0 - f) * 0.5 * (1.0 + math.cos(math.pi * p))
        raise ValueError(f"unknown decay shape {self.decay!r}")

    def lr(self, step: int) -> float:
        return self.max_lr * self.factor(step)

    def phase_of(self, step: int) -> int:
        return 1 if step < self.phase1_steps else 2


def tokens_to_steps(tokens: int, cfg: RunConfig) -> int:
    """Token budgets are rounded to whole optimizer steps (up, so a budget is never undershot)."""
    return -(-tokens // cfg.train.batch_tokens)


def phase_steps(cfg: RunConfig) -> dict[int, int]:
    return {1: tokens_to_steps(cfg.train.phase1_tokens, cfg), 2: tokens_to_steps(cfg.train.phase2_tokens, cfg)}


def no_decay(name: str, param: torch.Tensor) -> bool:
    """Norm gains and biases are the 1-D parameters; the embedding is matched by name (it is 2-D)."""
    return param.ndim < 2 or "embed" in name or name.endswith(".bias")


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, keep = [], []
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:  # tied weights appear once
            continue
        seen.add(id(p))
        (keep if no_decay(name, p) else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay, "name": "decay"},
            {"params": keep, "weight_decay": 0.0, "name": "no_decay"}]


def build_optimizer(model: torch.nn.Module, cfg: RunConfig, device: torch.device) -> torch.optim.AdamW:
    o = cfg.optim
    fused = (device.type == "cuda") if o.fused == "auto" else (o.fused == "true")
    kwargs = {"fused": True} if fused else {"foreach": True}
    return torch.optim.AdamW(param_groups(model, o.weight_decay), lr=o.lr, betas=(o.beta1, o.beta2),
                             eps=o.eps, **kwargs)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = lr
