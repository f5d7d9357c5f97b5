"""One optimizer step of SFT or DPO, and their validation: the arithmetic of the alignment stages.

    setup = AlignSetup(model, optimizer, info, grad_clip=1.0, autocast=..., fsdp=False, router_aux_loss=False)
    m = sft_step(setup, micro_batches, n_trained=step_trained_tokens, lr=2e-5)      # SFTBatch list (this rank)
    m = dpo_step(setup, micro_batches, n_pairs=128, lr=5e-7, ref=ref_model, beta=0.01)
    m.stepped, m.values["loss"], m.grad_norm, m.expert_counts
    sft_val(model, conversations, ...) / dpo_val(model, ref, pairs, ...)   → {name: value}

Like `trainer.step.train_step`: forward and backward per micro-batch, one collective for every logged sum,
no optimizer step when the loss is not finite (the caller stops the run). What differs is the objective:

* SFT: Σ −log p of the micro-batch's trained tokens (the model's own masked cross-entropy, `out.lm_loss`
  × its trained tokens) ÷ the trained tokens of the whole step on all ranks (`n_trained`), so the gradient is
  that of TRL's loss on the whole batch however it is split into micro-batches and ranks.
* DPO: the policy and the frozen reference (no grad) score each pair's chosen and rejected rows (4 forward
  passes a pair: 2 with grad, 2 without); the sigmoid loss of each pair ÷ the pairs of the step.
FSDP2 averages gradients over ranks, so each rank's share of a whole-step sum is multiplied by the world
size. With `router_aux_loss` the model's router losses are added (their mean over micro-batches and ranks,
as pretraining does); they are always logged.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from trainer import dist as D
from trainer.align.batches import DPOBatch, SFTBatch, collate_dpo, collate_sft
from trainer.align.losses import dpo_sigmoid, sequence_logps
from trainer.optim import set_lr
from trainer.step import clip_and_step

__all__ = ["AlignSetup", "AlignMetrics", "sft_step", "dpo_step", "forward_logits", "sft_val", "dpo_val",
           "SFT_SUMS", "DPO_SUMS"]

# The sums each micro-batch adds to, all reduced in one collective; the metrics are ratios of them.
SFT_SUMS = ("nll", "load_balance", "z_loss", "tokens", "trained")
DPO_SUMS = ("loss", "rewards_chosen", "rewards_rejected", "correct", "logps_chosen", "logps_rejected",
            "load_balance", "z_loss", "tokens", "pairs")


@dataclass
class AlignSetup:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    info: D.DistInfo
    grad_clip: float
    autocast: contextlib.AbstractContextManager
    fsdp: bool
    router_aux_loss: bool = False
    ref: torch.nn.Module | None = None
    """DPO: the frozen reference model (the SFT weights)."""
    beta: float = 0.01


@dataclass
class AlignMetrics:
    stepped: bool
    values: dict[str, float]
    """The logged scalars of the step (see sft_step / dpo_step)."""
    grad_norm: float
    expert_counts: torch.Tensor
    """[n_layers, 2, n_experts] tokens routed per expert over the step's micro-batches on all ranks."""
    sums: dict[str, float] = field(default_factory=dict)


@functools.cache
def _takes_return_logits(cls: type) -> bool:
    return "return_logits" in inspect.signature(cls.forward).parameters


def forward_logits(model: torch.nn.Module, inputs: torch.Tensor):
    """The model's output with its [B, T, V] logits, asking for them where the forward builds them only on
    request (a model with a fused loss head)."""
    if _takes_return_logits(type(model)):
        return model(inputs, return_logits=True)
    return model(inputs)


def _aux(setup: AlignSetup, out, n_micro: int) -> torch.Tensor | float:
    if not setup.router_aux_loss:
        return 0.0
    cfg = getattr(setup.model, "cfg", None)
    return (cfg.load_balance_coef * out.load_balance_loss + cfg.z_loss_coef * out.z_loss) / n_micro


def _step(setup: AlignSetup, micro_batches: list, lr: float, names: tuple[str, ...],
          micro: Callable[[object, float, int], tuple[torch.Tensor, list, torch.Tensor]], loss_key: str):
    """Forward/backward each micro-batch (`micro(batch, scale, n_micro)` → loss to backward, sums, expert
    counts), reduce the sums over ranks in one collective, then clip and step unless the loss is not finite."""
    model, opt, info = setup.model, setup.optimizer, setup.info
    set_lr(opt, lr)
    scale = info.world_size if setup.fsdp else 1
    acc = torch.zeros(len(names), dtype=torch.float64)
    counts = None
    for i, batch in enumerate(micro_batches):
        if setup.fsdp:
            model.set_requires_gradient_sync(i == len(micro_batches) - 1)
        loss, sums, c = micro(batch, scale, len(micro_batches))
        loss.backward()
        acc += torch.tensor([float(s) for s in sums], dtype=torch.float64)
        counts = c if counts is None else counts + c
    packed = torch.cat([acc, counts.double().flatten()]).to(info.device)
    D.all_reduce_sum(packed, info)
    packed = packed.cpu()
    sums = dict(zip(names, packed[:len(names)].tolist()))
    expert = packed[len(names):].view(counts.shape).long()
    if not math.isfinite(sums[loss_key]):
        opt.zero_grad(set_to_none=True)
        return AlignMetrics(False, {}, math.nan, expert, sums)
    grad_norm = clip_and_step(model, opt, setup.grad_clip)
    return AlignMetrics(True, {}, float(grad_norm), expert, sums)


def _router_means(sums: dict, n_forward: int) -> dict[str, float]:
    return {"load_balance": sums["load_balance"] / n_forward, "z_loss": sums["z_loss"] / n_forward}


def sft_step(setup: AlignSetup, micro_batches: list[SFTBatch], n_trained: int, lr: float) -> AlignMetrics:
    """Logged: loss (the objective, + router losses when on), lm_loss (mean NLL of the step's trained tokens),
    load_balance, z_loss (means over forwards), step_tokens, trained_tokens (over all ranks)."""
    device = setup.info.device

    def micro(b: SFTBatch, scale: int, n_micro: int):
        with setup.autocast:
            out = setup.model(b.inputs.to(device, non_blocking=True), labels=b.labels.to(device, non_blocking=True))
        nll = out.lm_loss.float() * b.n_trained
        loss = nll * (scale / n_trained) + _aux(setup, out, n_micro)
        return loss, [nll.detach(), out.load_balance_loss.detach(), out.z_loss.detach(), b.n_tokens, b.n_trained], \
            out.expert_counts.detach().cpu()

    m = _step(setup, micro_batches, lr, SFT_SUMS, micro, "nll")
    n_forward = len(micro_batches) * setup.info.world_size
    if m.stepped:
        s = m.sums
        lm = s["nll"] / s["trained"]
        router = _router_means(s, n_forward)
        aux = (setup.model.cfg.load_balance_coef * router["load_balance"]
               + setup.model.cfg.z_loss_coef * router["z_loss"]) if setup.router_aux_loss else 0.0
        m.values = {"loss": lm + aux, "lm_loss": lm, **router, "step_tokens": int(s["tokens"]),
                    "trained_tokens": int(s["trained"])}
    return m


def _pair_sums(policy: torch.Tensor, ref: torch.Tensor, beta: float):
    """(per-pair losses, [sums of the DPO_SUMS before the router terms]) of one micro-batch's logps."""
    m = policy.shape[0] // 2
    losses, r_c, r_r = dpo_sigmoid(policy[:m], policy[m:], ref[:m], ref[m:], beta)
    pol = policy.detach()
    return losses, [losses.detach().sum(), r_c.sum(), r_r.sum(), (r_c > r_r).sum(), pol[:m].sum(), pol[m:].sum()]


def _dpo_values(s: dict) -> dict[str, float]:
    n = s["pairs"]
    out = {"loss": s["loss"] / n, "rewards_chosen": s["rewards_chosen"] / n,
           "rewards_rejected": s["rewards_rejected"] / n, "accuracy": s["correct"] / n,
           "logps_chosen": s["logps_chosen"] / n, "logps_rejected": s["logps_rejected"] / n}
    out["margins"] = out["rewards_chosen"] - out["rewards_rejected"]
    return out


def dpo_step(setup: AlignSetup, micro_batches: list[DPOBatch], n_pairs: int, lr: float) -> AlignMetrics:
    """Logged (means over the step's pairs): loss, rewards_chosen, rewards_rejected, margins, accuracy,
    logps_chosen, logps_rejected; load_balance and z_loss of the policy's forwards; step_tokens, pairs."""
    device = setup.info.device

    def micro(b: DPOBatch, scale: int, n_micro: int):
        x, y = b.inputs.to(device, non_blocking=True), b.labels.to(device, non_blocking=True)
        with setup.autocast:
            out = forward_logits(setup.model, x)
            policy = sequence_logps(out.logits, y)
            with torch.no_grad():
                ref = sequence_logps(forward_logits(setup.ref, x).logits, y)
        losses, sums = _pair_sums(policy, ref, setup.beta)
        loss = losses.sum() * (scale / n_pairs) + _aux(setup, out, n_micro)
        return loss, sums + [out.load_balance_loss.detach(), out.z_loss.detach(), b.n_tokens, b.n_pairs], \
            out.expert_counts.detach().cpu()

    m = _step(setup, micro_batches, lr, DPO_SUMS, micro, "loss")
    if m.stepped:
        s = m.sums
        m.values = {**_dpo_values(s), **_router_means(s, len(micro_batches) * setup.info.world_size),
                    "step_tokens": int(s["tokens"]), "pairs": int(s["pairs"])}
    return m


def _val_groups(ids: list[int] | object, size: int, batches: int) -> list:
    ids = list(ids)[: size * batches]
    return [ids[i:i + size] for i in range(0, len(ids), size)]


@torch.no_grad()
def sft_val(model: torch.nn.Module, conv, *, batch_size: int, batches: int, pad_id: int, autocast,
            device: torch.device) -> dict[str, float]:
    """Mean NLL of the trained tokens of each source's first batch_size × batches val conversations."""
    import numpy as np

    model.eval()
    out = {}
    for src, rows in conv.source_rows().items():
        nll, n = 0.0, 0
        for group in _val_groups(rows, batch_size, batches):
            b = collate_sft(conv, np.asarray(group), pad_id)
            with autocast:
                o = model(b.inputs.to(device), labels=b.labels.to(device))
            nll += float(o.lm_loss) * b.n_trained
            n += b.n_trained
        out[src] = nll / n
    model.train()
    return out


@torch.no_grad()
def dpo_val(model: torch.nn.Module, ref: torch.nn.Module, pairs, *, batch_size: int, batches: int, pad_id: int,
            beta: float, autocast, device: torch.device) -> dict[str, float]:
    """The DPO metrics (loss, rewards, margins, accuracy, logps) over the first batch_size × batches val pairs."""
    import numpy as np

    model.eval()
    acc = None
    for group in _val_groups(range(pairs.n), batch_size, batches):
        b = collate_dpo(pairs, np.asarray(group), pad_id)
        x, y = b.inputs.to(device), b.labels.to(device)
        with autocast:
            policy = sequence_logps(forward_logits(model, x).logits, y)
            ref_lp = sequence_logps(forward_logits(ref, x).logits, y)
        _, sums = _pair_sums(policy, ref_lp, beta)
        sums = torch.tensor([float(s) for s in sums] + [b.n_pairs], dtype=torch.float64)
        acc = sums if acc is None else acc + sums
    model.train()
    if acc is None:
        return {}
    names = ("loss", "rewards_chosen", "rewards_rejected", "correct", "logps_chosen", "logps_rejected", "pairs")
    return _dpo_values(dict(zip(names, acc.tolist())))
