"""Training-speed levers applied to a built JetMoE, and the tools that measure them. `trainer.build.build_model`
applies them from the run config (train.compile, train.weight_casts); the step is `trainer.step.train_step`.

- `compile_blocks` / `uncompile_blocks`: torch.compile of each block in place, with a clean fallback to eager.
- `weight_precision_plan` / `apply_weight_precision`: bf16 weight casts once per optimizer step (one process)
  or FSDP2's MixedPrecisionPolicy (sharded).
- `profile` (module): a torch.profiler table grouped into GEMM, grouped GEMM, attention, permutation, casts,
  optimizer and other.
"""
from .compile import compile_blocks, uncompile_blocks
from .precision import apply_weight_precision, fsdp_mixed_precision, shard_mixed_precision, weight_precision_plan

__all__ = ["compile_blocks", "uncompile_blocks", "weight_precision_plan", "apply_weight_precision",
           "fsdp_mixed_precision", "shard_mixed_precision"]
