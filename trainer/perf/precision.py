"""Where the bf16 copies of the weights come from: a per-step cast cache (one process) or FSDP2's policy.

    plan = weight_precision_plan(precision="bf16", fsdp=False)   # "cast-cache" | "fsdp-mixed" | "none"
    # (trainer.build.build_model does this from train.precision, parallel.fsdp and train.weight_casts)
    apply_weight_precision(model, plan, optimizer)                # one process: model.cache_weight_casts(...)
    shard_mixed_precision(model, reshard_after_forward=True)      # FSDP2 (instead of trainer.dist.shard_model)

Both give every matmul weight to the matmuls in bf16 once per optimizer step while the master weights,
gradients and AdamW stay fp32, and both keep the routers, norms, biases and the embedding lookup in fp32, so
one process and N ranks run the same arithmetic:
- one process: `JetMoE.cache_weight_casts` (trainer.model.precision): the expert stacks, K/V projection
  and tied output projection cast once after each optimizer step instead of on every forward;
- FSDP2: each matmul-weight module (the expert stacks and the K/V projection) is its own FSDP unit with
  `MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32)`, so its shard is cast before the all-gather
  (half the gather bytes) and its gradient is reduced in fp32; each block and the root stay fp32 units.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["weight_precision_plan", "apply_weight_precision", "fsdp_mixed_precision", "shard_mixed_precision"]

PLANS = ("cast-cache", "fsdp-mixed", "none")


def weight_precision_plan(precision: str, fsdp: bool, casts: str = "auto") -> str:
    """The plan for `train.weight_casts = casts`: "none" unless training in bf16 autocast with casts
    "auto" or "per-step"; then "fsdp-mixed" when sharded, else "cast-cache". "per-forward" is "none" (autocast
    casts in every forward); "per-step" in fp32 is a ValueError (there is nothing to cast)."""
    if precision not in ("bf16", "fp32"):
        raise ValueError(f"precision {precision!r}: expected 'bf16' or 'fp32' (resolve 'auto' first)")
    if casts not in ("auto", "per-step", "per-forward"):
        raise ValueError(f"weight casts {casts!r}: expected 'auto', 'per-step' or 'per-forward'")
    if precision != "bf16":
        if casts == "per-step":
            raise ValueError('weight casts "per-step" need bf16 training (in fp32 there is nothing to cast)')
        return "none"
    if casts == "per-forward":
        return "none"
    return "fsdp-mixed" if fsdp else "cast-cache"


def apply_weight_precision(model: nn.Module, plan: str, optimizer: torch.optim.Optimizer | None = None):
    """Install the one-process half of `plan` on `model` (the FSDP half is `shard_mixed_precision`)."""
    if plan not in PLANS:
        raise ValueError(f"weight precision plan {plan!r}: expected one of {', '.join(PLANS)}")
    if plan == "cast-cache":
        if optimizer is None:
            raise ValueError("the cast cache needs the optimizer, to re-cast after each of its steps")
        return model.cache_weight_casts(torch.bfloat16, optimizer)
    return model.cache_weight_casts(None)


def fsdp_mixed_precision(dtype: torch.dtype = torch.bfloat16):
    """FSDP2 policy for the matmul-weight units: gather in `dtype`, reduce gradients in fp32."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    return MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)


def shard_mixed_precision(model: nn.Module, reshard_after_forward: bool = True) -> nn.Module:
    """FSDP2 with bf16 matmul weights: one unit per expert stack / K/V projection (bf16 policy), then per
    block and the root (fp32: routers, norms, biases, embedding)."""
    from torch.distributed.fsdp import fully_shard

    from trainer.model.moe import ExpertLinear

    mp = fsdp_mixed_precision()
    for block in model.blocks():
        for m in block.modules():
            if isinstance(m, ExpertLinear) or m is block.attn.kv_proj:
                fully_shard(m, reshard_after_forward=reshard_after_forward, mp_policy=mp)
        fully_shard(block, reshard_after_forward=reshard_after_forward)
    fully_shard(model, reshard_after_forward=reshard_after_forward)
    return model
