"""One optimizer step, and the validation loss: the arithmetic of training, apart from its bookkeeping.

    setup = StepSetup(model, optimizer, info, accum=2, grad_clip=1.0, autocast=autocast_for("bf16", device),
                      fsdp=False, n_sources=len(loader.source_names))
    m = train_step(setup, loader, lr=3e-4)          # any iterator of Batch (tokens [B, L+1], source_ids [B])
    m.stepped, m.loss, m.grad_norm, m.source_sequences, m.expert_counts
    losses = evaluate(model, corpus, seq_len=128, batch_size=8, batches=4, autocast=..., device=...)

`train_step` draws `accum` micro-batches, runs forward and backward on each (the loss is the model's own
`out.loss`: cross-entropy plus its auxiliary router losses, weighted by the model config), reduces every
logged scalar over micro-batches and ranks in one collective, and takes the optimizer step unless the loss
is NaN/inf (then the gradients are dropped and `stepped` is False: the caller decides what to say). The
host waits for the device once per step (that collective's result), not once per micro-batch. It is what
`trainer.train` runs every step and what bench/gpu_train.py times (`StepSetup.mark` splits the step into
its micro-batches and the update). `evaluate` runs compiled blocks eagerly.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from trainer import dist as D
from trainer.optim import set_lr


@dataclass
class StepSetup:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    info: D.DistInfo
    accum: int
    """Micro-batches per optimizer step on each rank (gradient accumulation)."""
    grad_clip: float
    """Global gradient-norm clip; 0 disables."""
    autocast: contextlib.AbstractContextManager
    """The precision context of forward (torch.autocast for bf16, nullcontext for fp32); reusable."""
    fsdp: bool
    """FSDP2-sharded: reduce-scatter gradients once per step, not once per micro-batch."""
    n_sources: int
    """Sources of the loader (Batch.source_ids index them)."""
    mark: Callable[[str], None] | None = None
    """Timing hook: called with "accumulated" after the last micro-batch's backward and with "updated" after
    the optimizer step (or the dropped step); bench/gpu_train.py records CUDA events there. None in a run."""


@dataclass
class StepMetrics:
    """Means over micro-batches and ranks; counts summed over them."""

    stepped: bool
    """False when the loss was not finite: no optimizer step was taken."""
    loss: float
    lm_loss: float
    load_balance: float
    z_loss: float
    grad_norm: float
    """Before clipping (NaN when not stepped)."""
    source_sequences: list[float]
    """Sequences drawn per loader source this step, all ranks."""
    expert_counts: torch.Tensor
    """[n_layers, 2, n_experts] int64 tokens routed per expert this step ([:, 0] attention, [:, 1] MLP)."""
    data_s: float
    """Seconds this rank waited for batches."""


def autocast_for(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on the device for "bf16", nothing for "fp32"."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    if device.type == "cuda" and t.device.type == "cpu":
        # From pinned memory the copy is queued behind the GPU's work instead of waiting for it.
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)



def clip_and_step(model: torch.nn.Module, opt: torch.optim.Optimizer, grad_clip: float) -> torch.Tensor:
    """Clip the global gradient norm to ``grad_clip`` (0: no clipping, the norm is still measured), take the
    optimizer step and free the gradients; returns the norm before clipping (a full tensor under FSDP2).
    The one update every training stage ends its step with (pretraining, SFT, DPO)."""
    clip = grad_clip if grad_clip > 0 else float("inf")
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    if hasattr(grad_norm, "full_tensor"):
        grad_norm = grad_norm.full_tensor()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return grad_norm

def train_step(s: StepSetup, batches: Iterator, lr: float) -> StepMetrics:
    model, opt, info = s.model, s.optimizer, s.info
    set_lr(opt, lr)
    # The sums stay on the device until the step's one collective: a host copy per micro-batch would make the
    # host wait for the GPU before queueing the next micro-batch. Same float64 sums in the same order as on
    # the host, so the logged values are the same bits.
    acc = torch.zeros(4, dtype=torch.float64, device=info.device)  # loss, lm, load balance, z
    counts = None
    src_counts = torch.zeros(s.n_sources, dtype=torch.float64)
    data_s = 0.0
    for micro in range(s.accum):
        t0 = time.perf_counter()
        batch = next(batches)
        data_s += time.perf_counter() - t0
        tokens = _to_device(batch.tokens, info.device)
        if s.fsdp:
            model.set_requires_gradient_sync(micro == s.accum - 1)
        with s.autocast:
            out = model(tokens[:, :-1], labels=tokens[:, 1:])
        (out.loss / s.accum).backward()
        acc += torch.stack([out.loss.detach(), out.lm_loss.detach(), out.load_balance_loss.detach(),
                            out.z_loss.detach()]).double()
        c = out.expert_counts.detach()
        counts = c if counts is None else counts + c
        src_counts += torch.bincount(batch.source_ids.cpu(), minlength=s.n_sources).double()
    if s.mark is not None:
        s.mark("accumulated")
    # One collective for every scalar the log needs: the mean over micro-batches and ranks.
    packed = torch.cat([acc / s.accum / info.world_size, src_counts.to(info.device), counts.double().flatten()])
    D.all_reduce_sum(packed, info)
    packed = packed.cpu()
    loss_v, lm_v, lb_v, z_v = packed[:4].tolist()
    expert = packed[4 + s.n_sources:].view(counts.shape).long()
    sources = packed[4:4 + s.n_sources].tolist()
    if not math.isfinite(loss_v):
        opt.zero_grad(set_to_none=True)
        if s.mark is not None:
            s.mark("updated")
        return StepMetrics(False, loss_v, lm_v, lb_v, z_v, math.nan, sources, expert, data_s)
    grad_norm = clip_and_step(model, opt, s.grad_clip)
    if s.mark is not None:
        s.mark("updated")
    return StepMetrics(True, loss_v, lm_v, lb_v, z_v, float(grad_norm), sources, expert, data_s)


@torch.no_grad()
def evaluate(model: torch.nn.Module, corpus, *, seq_len: int, batch_size: int, batches: int,
             autocast: contextlib.AbstractContextManager, device: torch.device,
             tokens: dict[str, int] | None = None) -> dict[str, float]:
    """Mean lm loss per source over the first `batches` batches of its val split; `tokens`, if given, receives
    the number of predicted tokens each mean is over (for a loss over all val tokens: Σ loss·n / Σ n).

    Every corpus source with val data, whatever the phase's mixture: the same set in both phases, so the
    curves and their mean are comparable across the phase-2 switch."""
    model.eval()
    out: dict[str, float] = {}
    # Compiled blocks (train.compile) run eagerly here: val batches have other shapes and no backward, so
    # compiling them would cost more than it saves, and the val loss does not depend on the compiler.
    with _eager():
        for src in sorted(corpus.sources):
            if corpus.n_tokens(src, "val") >= 2:
                n = _eval_source(model, corpus, src, out, seq_len=seq_len, batch_size=batch_size, batches=batches,
                                 autocast=autocast, device=device)
                if tokens is not None and n:
                    tokens[src] = n
    model.train()
    return out


def _eager():
    stance = getattr(torch.compiler, "set_stance", None)
    return stance("force_eager") if stance is not None else contextlib.nullcontext()


def _eval_source(model, corpus, src: str, out: dict, *, seq_len, batch_size, batches, autocast, device) -> int:
    from trainer.data import ValLoader

    tot, n = 0.0, 0
    for i, batch in enumerate(ValLoader(corpus, src, seq_len=seq_len, batch_size=batch_size)):
        if i >= batches:
            break
        tokens = batch.tokens.to(device)
        mask = batch.mask.to(device)  # the split's last sequence is padded
        labels = tokens[:, 1:].masked_fill(~mask, -100)
        with autocast:
            o = model(tokens[:, :-1], labels=labels)
        k = int(mask.sum())
        tot += float(o.lm_loss) * k
        n += k
    if n:
        out[src] = tot / n
    return n
