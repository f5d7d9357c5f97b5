"""One optimizer step as a run takes it: gradient accumulation over micro-batches, clipping, the update.

    result = train_step(model, optimizer, micro_batches, autocast=torch.bfloat16, grad_clip=1.0)
    result.loss        # mean of out.loss over the micro-batches (a detached device tensor: no host sync)

The loss is the model's own `out.loss` (lm + load-balance + z-loss with the model config's coefficients);
nothing here recomputes it. Each micro-batch's loss is divided by their number before backward, so the
accumulated gradient is the gradient of the mean. With FSDP2 the gradient reduce-scatter runs once, after
the last micro-batch. Used by bench/gpu_train.py; the trainer's loop does the same per step.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["train_step", "StepResult", "causal_lm_loss"]


@dataclass
class StepResult:
    loss: torch.Tensor
    """Mean over micro-batches of the loss that was differentiated (detached)."""
    grad_norm: torch.Tensor
    """Global gradient norm before clipping."""


def causal_lm_loss(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """`out.loss` of our JetMoE on tokens [B, T+1]: inputs tokens[:, :-1], labels tokens[:, 1:]."""
    return model(tokens[:, :-1], labels=tokens[:, 1:]).loss


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, micro_batches: Sequence[torch.Tensor], *,
               autocast: torch.dtype | None = None, grad_clip: float = 1.0,
               loss_fn: Callable[[nn.Module, torch.Tensor], torch.Tensor] = causal_lm_loss,
               mark: Callable[[str], None] | None = None) -> StepResult:
    """Forward + backward every micro-batch (tokens [B, T+1]), clip, step, zero the gradients. `mark`, if
    given, is called with "accumulated" after the last backward and "updated" at the end (a bench records
    device events there to split the step into micro-batches and the update)."""
    n = len(micro_batches)
    if n == 0:
        raise ValueError("train_step needs at least one micro-batch")
    device_type = micro_batches[0].device.type
    sync = getattr(model, "set_requires_gradient_sync", None)  # FSDP2
    total = None
    for i, tokens in enumerate(micro_batches):
        if sync is not None:
            sync(i == n - 1)
        with (torch.autocast(device_type, dtype=autocast) if autocast else contextlib.nullcontext()):
            loss = loss_fn(model, tokens)
        (loss / n).backward()
        total = loss.detach() if total is None else total + loss.detach()
    if mark is not None:
        mark("accumulated")
    clip = grad_clip if grad_clip > 0 else float("inf")
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if mark is not None:
        mark("updated")
    return StepResult(loss=total / n, grad_norm=grad_norm)
