"""Matmul weights in the autocast dtype, cast once per optimizer step instead of on every forward.

    cache = model.cache_weight_casts(torch.bfloat16, optimizer)   # one process, fp32 master weights
    for micro in batches:                                           # every forward after the first of a
        with torch.autocast("cuda", dtype=torch.bfloat16):          # step reuses the bf16 copies
            model(micro[:, :-1], labels=micro[:, 1:]).loss.backward()
    optimizer.step()                                                # the hook marks every copy stale
    model.cache_weight_casts(None)                                  # off again

Contract. Under autocast every matmul weight (the expert stacks, the shared K/V projection and the tied
output projection) is used as `weight.to(autocast dtype)`; `autocast_weight` returns exactly that tensor,
either cast now or cast earlier and kept. A kept copy is the same bits as a fresh cast (a cast is a pure
function of the weight), it is connected to the fp32 parameter by autograd (gradients reach
`param.grad` as with a fresh cast; the cast's backward node is reused by every micro-batch), and it is
re-made when the parameter may have changed:
- after `optimizer.step()` of a watched optimizer (the step hook): fused AdamW updates parameters without
  bumping their version counter, so the version alone would miss it;
- when the parameter's version counter or storage moved (load_state_dict, in-place edits, `.to()`);
- when the copy cannot serve this forward (made under no_grad or inference mode, now differentiating).
Changing a parameter through `.data` (which hides the change from the version counter) needs an
explicit `cache.invalidate()`.

Single-process runs use this. FSDP2 runs must not (their parameters are re-gathered every forward): give
`fully_shard` a `MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32)` instead, which casts each
shard once before its all-gather. `trainer.perf.precision.weight_precision_plan` picks between the two.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["WeightCastCache", "autocast_weight", "CastLinear"]


def autocast_weight(module: nn.Module, device_type: str) -> torch.Tensor:
    """`module.weight` as the matmul under autocast will use it: the kept low-precision copy when it is in
    the autocast dtype, else a fresh cast; the fp32 weight itself outside autocast."""
    w = module.weight
    if not torch.is_autocast_enabled(device_type):
        return w
    dtype = torch.get_autocast_dtype(device_type)
    lp = getattr(module, "weight_lp", None)
    if lp is not None and lp.dtype == dtype:
        return lp
    return w.to(dtype)


class CastLinear(nn.Linear):
    """nn.Linear whose weight goes through `autocast_weight` (the kept copy when there is one). A module call,
    so FSDP2's hooks see it; same parameters and state-dict names as nn.Linear."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.weight_lp = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, autocast_weight(self, x.device.type), self.bias)


class WeightCastCache:
    """Keeps `module.weight_lp = module.weight.to(dtype)` for each module, refreshed as the contract says."""

    def __init__(self, modules: Iterable[nn.Module], dtype: torch.dtype):
        self.modules = list(modules)
        self.dtype = dtype
        self._keys: list[tuple | None] = [None] * len(self.modules)
        self._hooks: list = []
        for m in self.modules:
            w = m.weight
            if type(w).__name__ == "DTensor" or hasattr(w, "device_mesh"):
                raise ValueError("weight cast cache on an FSDP2-sharded model: its parameters are re-gathered "
                                 "every forward; use fully_shard(mp_policy=MixedPrecisionPolicy(param_dtype="
                                 "torch.bfloat16, reduce_dtype=torch.float32)) instead")
            m.weight_lp = None

    def watch(self, optimizer: torch.optim.Optimizer) -> "WeightCastCache":
        """Mark every copy stale after each `optimizer.step()`."""
        self._hooks.append(optimizer.register_step_post_hook(lambda *_args, **_kw: self.invalidate()))
        return self

    def invalidate(self) -> None:
        self._keys = [None] * len(self.modules)

    def refresh(self) -> int:
        """Re-cast the stale copies; returns how many were cast. Called by JetMoE.forward before its blocks
        run (outside any compiled region), so the blocks only read `weight_lp`."""
        grad = torch.is_grad_enabled()
        inference = torch.is_inference_mode_enabled()
        cast = 0
        for i, m in enumerate(self.modules):
            w = m.weight
            key = (w._version, w.data_ptr(), w.device)
            lp = m.weight_lp
            usable = (lp is not None and self._keys[i] == key
                      and not (grad and w.requires_grad and lp.grad_fn is None)
                      and not (lp.is_inference() and not inference))
            if not usable:
                m.weight_lp = w.to(self.dtype)
                self._keys[i] = key
                cast += 1
        return cast

    def close(self) -> None:
        """Drop the copies and the optimizer hooks."""
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
        for m in self.modules:
            m.weight_lp = None
        self.invalidate()
