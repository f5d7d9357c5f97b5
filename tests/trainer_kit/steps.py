"""trainer.step.train_step on micro-batches held in memory, for tests of the model and its speed levers.

    m = one_step(model, optimizer, [tokens_a, tokens_b], precision="bf16")   # one optimizer step: StepMetrics
    m.loss, m.grad_norm                                                      # floats, as a run logs them

Each tokens tensor is one micro-batch [B, T+1] (inputs [:, :-1], labels [:, 1:]); the step accumulates over
them, as a run does over its loader's micro-batches. `info` defaults to one process on the tokens' device.
"""
from __future__ import annotations

import torch

from trainer.data.loader import Batch
from trainer.dist import DistInfo
from trainer.step import StepMetrics, StepSetup, autocast_for, train_step


def one_step(model, optimizer, micro_batches: list[torch.Tensor], *, precision: str = "fp32",
             grad_clip: float = 1.0, info: DistInfo | None = None, fsdp: bool = False) -> StepMetrics:
    device = micro_batches[0].device
    info = info or DistInfo(device=device)
    batches = iter([Batch(tokens=t, source_ids=torch.zeros(t.shape[0], dtype=torch.long),
                          positions=torch.arange(t.shape[0])) for t in micro_batches])
    setup = StepSetup(model, optimizer, info, accum=len(micro_batches), grad_clip=grad_clip,
                      autocast=autocast_for(precision, device), fsdp=fsdp, n_sources=1)
    return train_step(setup, batches, optimizer.param_groups[0]["lr"])
