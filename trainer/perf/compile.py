"""torch.compile of each JetMoE block, in place, with a clean fallback to eager.

    ok = compile_blocks(model)                      # compiled at the first forward of each new shape
    ok = compile_blocks(model, mode="max-autotune-no-cudagraphs", probe=one_training_step)
    uncompile_blocks(model)                         # back to eager

Each entry of `model.layers` (a Block, or the activation-checkpoint wrapper around one) is compiled the way
`nn.Module.compile` does it: parameter names, state dicts and checkpoints are unchanged, and the blocks,
which run the same code on parameters of the same shapes, share one compiled graph. `dynamic=False`: a
training run has one shape (a new shape, e.g. validation batches, compiles once more). Apply it after
activation-checkpoint wrapping (the wrapper is compiled with its block). Under FSDP2 the block's gather hooks
run inside the compiled call, where dynamo skips them by default (a graph break around each): correct, but
not yet measured.

Fallback: when compiling fails (a dynamo or inductor error, no C compiler, an unsupported op), one warning
line goes to stderr, every block returns to eager and the forward that hit the failure finishes eagerly, so
the run goes on at eager speed. The backward graph is lowered together with the forward (not lazily at the
first backward), so its failures are caught the same way. `probe` (optional) runs right after compiling,
e.g. one forward + backward on a batch of the training shape, to compile before timing starts; the
gradients it leaves are cleared. Errors of the model itself (shapes, out of memory) are raised as in eager.
Returns True when the blocks are compiled, False when they run eagerly.
"""
from __future__ import annotations

import sys
from collections.abc import Callable

import torch
from torch import nn

__all__ = ["compile_blocks", "uncompile_blocks", "is_compiled"]


def _compile_errors() -> tuple[type[BaseException], ...]:
    from torch._dynamo.exc import TorchDynamoException  # BackendCompilerFailed, InductorError, Unsupported, ...

    return (TorchDynamoException,)


class _GuardedCompiled:
    """The compiled call of one block; on a compile failure, every block of the model goes back to eager."""

    def __init__(self, compiled: Callable, block: nn.Module, fallback: Callable[[BaseException], None]):
        self.compiled, self.block, self.fallback = compiled, block, fallback

    def __call__(self, *args, **kwargs):
        try:
            with _eager_backward_lowering():
                return self.compiled(*args, **kwargs)
        except _compile_errors() as e:
            self.fallback(e)
            return self.block._call_impl(*args, **kwargs)


def _eager_backward_lowering():
    cfg = torch._functorch.config
    if hasattr(cfg, "force_non_lazy_backward_lowering"):
        return cfg.patch(force_non_lazy_backward_lowering=True)
    import contextlib
    return contextlib.nullcontext()


def _reason(e: BaseException) -> str:
    """The failure in one line, with its cause: BackendCompilerFailed's own first line is only
    "backend='inductor' raised:", the reason (e.g. no C compiler) is the exception it wraps."""
    def line(err: BaseException) -> str:
        return f"{type(err).__name__}: " + next((x.strip() for x in str(err).splitlines() if x.strip()), "")

    inner = getattr(e, "inner_exception", None) or e.__cause__
    return (line(e) + (f" {line(inner)}" if inner is not None and inner is not e else ""))[:400]


def is_compiled(model: nn.Module) -> bool:
    return any(getattr(layer, "_compiled_call_impl", None) is not None for layer in model.layers)


def uncompile_blocks(model: nn.Module) -> None:
    for layer in model.layers:
        layer._compiled_call_impl = None


def compile_blocks(model: nn.Module, mode: str | None = "default", *, backend: str | Callable = "inductor",
                   fullgraph: bool = False, probe: Callable[[], object] | None = None,
                   warn: Callable[[str], None] | None = None) -> bool:
    """Compile every `model.layers[i]` in place (see the module docstring); False = eager after a failure."""
    warn = warn or (lambda msg: print(msg, file=sys.stderr, flush=True))
    if mode == "default":
        mode = None
    state = {"failed": False}

    def fallback(e: BaseException) -> None:
        if not state["failed"]:
            warn(f"warning: torch.compile of the blocks failed ({_reason(e)}); running eager")
        state["failed"] = True
        uncompile_blocks(model)

    # The backends a block resolves to are fixed before tracing (resolve_backend is a compile-time constant).
    if hasattr(model, "backends"):
        model.backends()
    for layer in model.layers:
        compiled = torch.compile(layer._call_impl, mode=mode, backend=backend, fullgraph=fullgraph, dynamic=False)
        layer._compiled_call_impl = _GuardedCompiled(compiled, layer, fallback)
    if probe is not None:
        try:
            with _eager_backward_lowering():
                probe()
        except _compile_errors() as e:
            fallback(e)
        finally:
            model.zero_grad(set_to_none=True)
    return not state["failed"] and is_compiled(model)
