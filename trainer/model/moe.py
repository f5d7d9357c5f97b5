"""Routing and expert layers shared by MoA (attention experts) and MoE (SwiGLU MLP experts).

Every backend uses the same parameters (`[n_experts, out, in]`, Hugging Face's `JetMoeParallelExperts`
layout) and the same math; they differ only in how the per-expert matmuls over expert-sorted tokens run:

- `torch`: the reference. Tokens are sorted by expert once per layer, then one `F.linear` per expert on
  its contiguous slice (a loop over experts, never over tokens). Runs anywhere.
- `grouped_mm`: one `torch.nn.functional.grouped_mm` call per projection (CPU kernel in torch ≥ 2.9;
  PyTorch's Hopper grouped GEMM on CUDA). Needs 16-byte aligned rows: every in/out width a multiple of 8.
- `megablocks`: megablocks' grouped GEMM (`megablocks.grouped_gemm_util`, the kernel its dMoE uses with
  mlp_impl="grouped") for the MoE MLP, CUDA only, when megablocks is installed. Routing, permutation and the
  parameters stay ours, so results match the reference; megablocks' own router/aux-loss globals are not used.

`auto` picks megablocks (MLP) > grouped_mm > torch by what the machine and shapes allow.
"""
from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .precision import autocast_weight

__all__ = ["Routing", "TopKRouter", "ExpertLinear", "MoEMLP", "available_backends", "resolve_backend",
           "permute_rows"]


@functools.cache
def _megablocks_gmm():
    """megablocks' grouped GEMM op, or None where megablocks (or its grouped_gemm kernel) is missing."""
    try:
        from megablocks import grouped_gemm_util as gg  # optional extra: `pip install .[gpu]`
    except Exception:  # ImportError, or a build whose CUDA extension fails to load
        return None
    if not getattr(gg, "grouped_gemm_is_available", lambda: False)():
        return None
    return gg.ops.gmm


def _grouped_mm_exists() -> bool:
    return hasattr(F, "grouped_mm")


def available_backends(device: torch.device | str = "cpu") -> list[str]:
    """Backends that can run on `device` on this machine (torch first: it is the reference)."""
    device = torch.device(device)
    names = ["torch"]
    if _grouped_mm_exists() and (device.type == "cpu" or (device.type == "cuda" and torch.cuda.is_available()
                                                          and torch.cuda.get_device_capability(device) >= (8, 0))):
        names.append("grouped_mm")
    if device.type == "cuda" and _megablocks_gmm() is not None:
        names.append("megablocks")
    return names


# dtypes the grouped kernels accept per device type; anything else runs the reference path
_GROUPED_DTYPES = defaultdict(tuple, {"cpu": (torch.float32, torch.bfloat16), "cuda": (torch.bfloat16,)})


def _aligned(*widths: int) -> bool:
    # grouped_mm wants 16-byte aligned row strides for both operands; 8 elements covers bf16 and fp32.
    return all(w % 8 == 0 for w in widths)


_RESOLVED: dict[tuple, str] = {}


@torch.compiler.assume_constant_result
def resolve_backend(requested: str, device: torch.device, widths: tuple[int, ...], mlp: bool) -> str:
    """The backend one expert projection uses: `requested` if it can run, else a clear error; auto = fastest.
    Memoised, and a constant under torch.compile: the answer depends on the machine and the shapes only."""
    key = (requested, device, widths, mlp)
    if key not in _RESOLVED:
        _RESOLVED[key] = _resolve_backend(requested, device, widths, mlp)
    return _RESOLVED[key]


def _resolve_backend(requested: str, device: torch.device, widths: tuple[int, ...], mlp: bool) -> str:
    have = available_backends(device)
    if requested == "auto":
        if mlp and "megablocks" in have:
            return "megablocks"
        if "grouped_mm" in have and _aligned(*widths):
            return "grouped_mm"
        return "torch"
    if requested == "megablocks" and not mlp:
        # megablocks serves the MoE MLP only (what its dMoE is); the attention experts use grouped_mm.
        return "grouped_mm" if "grouped_mm" in have and _aligned(*widths) else "torch"
    if requested not in have:
        raise RuntimeError(f"expert backend {requested!r} is not available on {device} "
                           f"(available: {', '.join(have)}); set backend = \"auto\" in the model config"
                           + ("; megablocks needs CUDA and `pip install .[gpu]`" if requested == "megablocks" else ""))
    if requested == "grouped_mm" and not _aligned(*widths):
        raise RuntimeError(f"backend 'grouped_mm' needs every expert width to be a multiple of 8, got {widths}; "
                           "change d_model / head_dim*n_kv_heads / ffn_hidden or use backend = \"torch\"")
    return requested


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward makes the incoming gradient dense: grouped_mm's backward rejects the
    stride-0 gradients that e.g. `y.sum().backward()` produces."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return g.contiguous()


# Token permutations. Each is one gather forward and one gather backward: autograd's own backward of
# index_select is an index_add_ into a zero-filled tensor (a fill pass plus atomics, and nondeterministic
# on CUDA as soon as two rows meet). Written as autograd Functions because torch has no gather whose
# backward is the inverse gather.

class _PermuteRows(torch.autograd.Function):
    """src[index] for a permutation `index` of src's rows; backward grad[inverse]."""

    @staticmethod
    def forward(ctx, src, index, inverse):
        ctx.save_for_backward(inverse)
        return src.index_select(0, index)

    @staticmethod
    def backward(ctx, grad):
        (inverse,) = ctx.saved_tensors
        return grad.index_select(0, inverse), None, None


class _GatherTokens(torch.autograd.Function):
    """x[N, W] -> [N*k, W] in expert order (row j = x[token[j]]); backward sums each token's k rows."""

    @staticmethod
    def forward(ctx, x, token, inverse, k):
        ctx.save_for_backward(inverse)
        ctx.k = k
        return x.index_select(0, token)

    @staticmethod
    def backward(ctx, grad):
        (inverse,) = ctx.saved_tensors
        g = grad.index_select(0, inverse)
        return g.view(-1, ctx.k, g.shape[-1]).sum(1), None, None, None


class _Combine(torch.autograd.Function):
    """out[i] = bias + Σ_c gates[i, c] · y_sorted[inverse[i, c]], in the promoted dtype of (y, gates, bias).

    A gather-multiply-add per choice instead of unsorting all N*k rows and a [N,1,k] @ [N,k,W] batched matmul
    (k = 2 is a very poor GEMM shape). Backward: one gather of the output gradient into expert order, then
    elementwise products; saves y_sorted only."""

    @staticmethod
    def forward(ctx, y_sorted, gates, bias, inverse, token, order):
        n, k = gates.shape
        inv = inverse.view(n, k)
        out = torch.addcmul(bias, y_sorted.index_select(0, inv[:, 0]), gates[:, :1])
        for c in range(1, k):
            out = out.addcmul_(y_sorted.index_select(0, inv[:, c]), gates[:, c:c + 1])
        ctx.save_for_backward(y_sorted, gates, inverse, token, order)
        ctx.bias_dtype = bias.dtype
        return out

    @staticmethod
    def backward(ctx, grad):
        y_sorted, gates, inverse, token, order = ctx.saved_tensors
        g = grad.index_select(0, token)                                  # [N*k, W], expert order
        gate_sorted = gates.reshape(-1).index_select(0, order)
        grad_y = grad_gates = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_y = (g * gate_sorted.unsqueeze(1)).to(y_sorted.dtype)
        if ctx.needs_input_grad[1]:
            grad_gates = (g * y_sorted).sum(-1).index_select(0, inverse).view_as(gates).to(gates.dtype)
        if ctx.needs_input_grad[2]:
            grad_bias = grad.sum(0).to(ctx.bias_dtype)
        return grad_y, grad_gates, grad_bias, None, None, None


@dataclass
class Routing:
    """One router's decision for N tokens, with tokens pre-sorted by expert.

    order: [N*k] positions in the flattened [N, k] assignment list, sorted by expert (stable);
    inverse: [N*k] the inverse permutation (sorted position of each assignment);
    token: [N*k] token index of each sorted assignment (order // k); counts: [E] tokens per expert;
    ends: [E] int32 cumulative counts (grouped_mm's offs); gates: [N, k] gate per choice (x dtype);
    logits: [N, E] fp32 router logits; experts: [N, k] chosen experts, best first.
    Every field is a device tensor: nothing here syncs with the host except `counts_list`.
    """

    order: torch.Tensor
    inverse: torch.Tensor
    token: torch.Tensor
    counts: torch.Tensor
    ends: torch.Tensor
    gates: torch.Tensor
    logits: torch.Tensor
    experts: torch.Tensor
    _counts_list: list[int] | None = None

    @property
    def counts_list(self) -> list[int]:
        # One host sync per router, shared by every projection that needs Python split sizes (only the
        # torch reference backend; grouped_mm takes the device offsets `ends`).
        if self._counts_list is None:
            self._counts_list = self.counts.tolist()
        return self._counts_list

    def gather_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """[N, W] token rows -> [N*k, W] in expert order (x[token]); the backward gathers each token's k
        gradient rows and sums them, never an atomic scatter-add of k rows into one (nondeterministic on
        CUDA)."""
        return _GatherTokens.apply(x, self.token, self.inverse, self.experts.shape[1])

    def unsort(self, y_sorted: torch.Tensor) -> torch.Tensor:
        """[N*k, W] rows in expert order -> [N, k, W] in (token, choice) order; a gather both ways."""
        n, k = self.experts.shape
        return _PermuteRows.apply(y_sorted, self.inverse, self.order).view(n, k, -1)

    def combine(self, y_sorted: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """bias + gate-weighted sum over each token's k expert outputs: [N*k, W] sorted -> [N, W]."""
        if bias is None:
            bias = y_sorted.new_zeros(())
        return _Combine.apply(y_sorted, self.gates, bias, self.inverse, self.token, self.order)

    def head_permutation(self, n_heads: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Row permutations between expert order and attention order for rows of one head.

        With [N*k, n_heads*D] expert-sorted rows viewed as [N*k*n_heads, D] (row j*n_heads + head) and the
        attention layout [N, n_heads, k, D] (token, kv head, choice: the kv-head-major query order SDPA's
        enable_gqa pairs with kv head `head`), returns (to_attention, to_sorted): attention[r] =
        sorted[to_attention[r]] and sorted[s] = attention[to_sorted[s]]. One gather each way replaces an
        unsort plus a layout copy (and a layout copy plus a re-sort for the output projection)."""
        n, k = self.experts.shape
        heads = torch.arange(n_heads, device=self.order.device)
        to_attention = (self.inverse.view(n, 1, k) * n_heads + heads.view(1, n_heads, 1)).reshape(-1)
        to_sorted = ((self.token.unsqueeze(1) * n_heads + heads) * k
                     + torch.remainder(self.order, k).unsqueeze(1)).reshape(-1)
        return to_attention, to_sorted

    def load_balance_loss(self) -> torch.Tensor:
        """Switch load balance for top-k: E * Σ_e f_e · P_e, f_e = share of the N*k assignments that go to
        expert e, P_e = mean router probability (softmax over all E logits) of e; 1.0 when balanced."""
        n_exp = self.logits.shape[1]
        n_assign = self.experts.numel()
        probs = torch.softmax(self.logits, dim=-1).mean(0)
        frac = self.counts.to(probs.dtype) / max(n_assign, 1)
        return n_exp * torch.dot(frac, probs)

    def z_loss(self) -> torch.Tensor:
        """ST-MoE router z-loss: mean over tokens of logsumexp(logits)^2."""
        return torch.logsumexp(self.logits, dim=-1).square().mean()


def permute_rows(src: torch.Tensor, index: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """src[index] for a row permutation `index` with inverse `inverse`, gathering both ways (see `_PermuteRows`)."""
    return _PermuteRows.apply(src, index, inverse)


class TopKRouter(nn.Module):
    """Linear router without bias; logits in fp32; gate = softmax over the top-k logits (paper Eq. 2)."""

    def __init__(self, d_model: int, n_experts: int, top_k: int):
        super().__init__()
        self.n_experts, self.top_k = n_experts, top_k
        self.weight = nn.Parameter(torch.empty(n_experts, d_model))

    def forward(self, x: torch.Tensor) -> Routing:
        # Logits in fp32 even under bf16 autocast (the recipe's router precision): routing decisions are
        # discrete, and bf16 logits flip near-ties between experts.
        with torch.autocast(x.device.type, enabled=False):
            logits = F.linear(x.float(), self.weight.float())
        top_logits, experts = logits.topk(self.top_k, dim=-1)
        gates = torch.softmax(top_logits, dim=-1).to(x.dtype)
        flat = experts.reshape(-1)
        sorted_experts, order = torch.sort(flat, stable=True)
        # Offsets by binary search in the sorted experts, not bincount: CUDA's bincount reads the maximum
        # back to the host (a sync, and a graph break under torch.compile).
        experts_ids = torch.arange(self.n_experts, device=flat.device, dtype=flat.dtype)
        ends = torch.searchsorted(sorted_experts, experts_ids, right=True)
        counts = torch.diff(ends, prepend=ends.new_zeros(1))
        positions = torch.arange(order.numel(), device=order.device, dtype=order.dtype)
        inverse = torch.empty_like(order).scatter_(0, order, positions)  # each slot written once
        return Routing(order=order, inverse=inverse, token=torch.div(order, self.top_k, rounding_mode="floor"),
                       counts=counts, ends=ends.to(torch.int32), gates=gates, logits=logits, experts=experts)


class ExpertLinear(nn.Module):
    """E independent linear maps without bias, weight [E, out, in]; applied to rows sorted by expert.

    `ran` is the backend the last eager forward actually used after fallbacks (e.g. "torch" for fp32 rows
    on CUDA), so a parity check can prove it compared two different kernels."""

    def __init__(self, n_experts: int, d_in: int, d_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_experts, d_out, d_in))
        self.weight_lp = None  # low-precision copy kept by trainer.model.precision.WeightCastCache
        self.ran = ""

    def forward(self, x_sorted: torch.Tensor, routing: Routing, backend: str) -> torch.Tensor:
        w = self.weight
        if torch.is_autocast_enabled(x_sorted.device.type):
            # autocast does not cover grouped_mm / megablocks' gmm; cast as it would for F.linear (or take
            # the copy cast once per optimizer step).
            x_sorted = x_sorted.to(torch.get_autocast_dtype(x_sorted.device.type))
            w = autocast_weight(self, x_sorted.device.type)
        # e.g. fp32 on CUDA (scoring without autocast): the kernels take bf16 only; so does grouped_mm's
        # meta function, which torch.compile traces, on CPU too
        dtypes = (torch.bfloat16,) if torch.compiler.is_compiling() else _GROUPED_DTYPES[x_sorted.device.type]
        if backend != "torch" and x_sorted.dtype not in dtypes:
            backend = "torch"
        if not torch.compiler.is_compiling():
            self.ran = backend
        if backend == "grouped_mm":
            return F.grouped_mm(_ContiguousGrad.apply(x_sorted), w.transpose(1, 2), offs=routing.ends)
        if backend == "megablocks":
            # megablocks' gmm wants host-side int64 batch sizes and contiguous operands.
            return _megablocks_gmm()(x_sorted.contiguous(), w, routing.counts.cpu(), trans_b=True)
        parts = x_sorted.split(routing.counts_list, dim=0)
        # unbind, not w[e]: each w[e]'s backward materialises a zero-filled [E, out, in] gradient (E of them
        # per step, which is what makes transformers' loop slow); unbind's backward stacks the E slices once.
        return torch.cat([F.linear(part, we) for we, part in zip(w.unbind(0), parts)], dim=0)


class MoEMLP(nn.Module):
    """Dropless top-k mixture of SwiGLU experts plus one output bias (HF `JetMoeMoE` parameters)."""

    def __init__(self, d_model: int, ffn_hidden: int, n_experts: int, top_k: int, backend: str = "auto"):
        super().__init__()
        self.ffn_hidden, self.backend = ffn_hidden, backend
        self.router = TopKRouter(d_model, n_experts, top_k)
        # Gate and up projections fused in one weight ([gate; up] along out), as HF stores them.
        self.input_linear = ExpertLinear(n_experts, d_model, 2 * ffn_hidden)
        self.output_linear = ExpertLinear(n_experts, ffn_hidden, d_model)
        self.bias = nn.Parameter(torch.empty(d_model))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Routing]:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        routing = self.router(flat)
        backend = resolve_backend(self.backend, flat.device, (shape[-1], self.ffn_hidden), mlp=True)
        h = self.input_linear(routing.gather_tokens(flat), routing, backend)
        gate, up = h.split(self.ffn_hidden, dim=-1)
        y = self.output_linear(F.silu(gate) * up, routing, backend)
        return routing.combine(y, self.bias).view(shape), routing
