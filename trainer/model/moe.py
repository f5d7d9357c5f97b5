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

__all__ = ["Routing", "TopKRouter", "ExpertLinear", "MoEMLP", "available_backends", "resolve_backend"]


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


def resolve_backend(requested: str, device: torch.device, widths: tuple[int, ...], mlp: bool) -> str:
    """The backend one expert projection uses: `requested` if it can run, else a clear error; auto = fastest."""
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


@dataclass
class Routing:
    """One router's decision for N tokens, with tokens pre-sorted by expert.

    order: [N*k] positions in the flattened [N, k] assignment list, sorted by expert (stable);
    token: [N*k] token index of each sorted assignment (order // k); counts: [E] tokens per expert;
    ends: [E] int32 cumulative counts (grouped_mm's offs); gates: [N, k] gate per choice (x dtype);
    logits: [N, E] fp32 router logits; experts: [N, k] chosen experts, best first.
    """

    order: torch.Tensor
    token: torch.Tensor
    counts: torch.Tensor
    ends: torch.Tensor
    gates: torch.Tensor
    logits: torch.Tensor
    experts: torch.Tensor
    _counts_list: list[int] | None = None

    @property
    def counts_list(self) -> list[int]:
        # One host sync per router, shared by every projection that needs Python split sizes.
        if self._counts_list is None:
            self._counts_list = self.counts.tolist()
        return self._counts_list

    def gather_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """[N, W] token rows -> [N*k, W] in expert order. Same values as x[token], but each output row
        comes from a distinct index of a k-times expanded x, so the backward is a permutation plus a sum
        over k, never an atomic scatter-add of k rows into one (which is nondeterministic on CUDA)."""
        n, k = self.experts.shape
        return x.unsqueeze(1).expand(n, k, x.shape[-1]).reshape(n * k, -1).index_select(0, self.order)

    def unsort(self, y_sorted: torch.Tensor) -> torch.Tensor:
        """[N*k, W] rows in expert order -> [N, k, W] in (token, choice) order; a gather, so deterministic."""
        n, k = self.experts.shape
        inverse = torch.empty_like(self.order)
        inverse[self.order] = torch.arange(self.order.numel(), device=self.order.device)
        return y_sorted.index_select(0, inverse).view(n, k, -1)

    def combine(self, y_sorted: torch.Tensor) -> torch.Tensor:
        """Gate-weighted sum over each token's k expert outputs: [N*k, W] sorted -> [N, W]."""
        y = self.unsort(y_sorted)
        # [n,1,k] @ [n,k,w]: a batched matmul without the copies einsum makes here (~3x faster on CPU)
        return torch.bmm(self.gates.to(y.dtype).unsqueeze(1), y).squeeze(1)

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
        order = torch.sort(flat, stable=True).indices
        counts = torch.bincount(flat, minlength=self.n_experts)
        return Routing(order=order, token=torch.div(order, self.top_k, rounding_mode="floor"), counts=counts,
                       ends=torch.cumsum(counts, 0).to(torch.int32), gates=gates, logits=logits, experts=experts)


class ExpertLinear(nn.Module):
    """E independent linear maps without bias, weight [E, out, in]; applied to rows sorted by expert."""

    def __init__(self, n_experts: int, d_in: int, d_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_experts, d_out, d_in))

    def forward(self, x_sorted: torch.Tensor, routing: Routing, backend: str) -> torch.Tensor:
        w = self.weight
        if torch.is_autocast_enabled(x_sorted.device.type):
            # autocast does not cover grouped_mm / megablocks' gmm; cast as it would for F.linear.
            dt = torch.get_autocast_dtype(x_sorted.device.type)
            x_sorted, w = x_sorted.to(dt), w.to(dt)
        if backend != "torch" and x_sorted.dtype not in _GROUPED_DTYPES[x_sorted.device.type]:
            backend = "torch"  # e.g. fp32 on CUDA (scoring without autocast): the kernels take bf16 only
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
        return (routing.combine(y) + self.bias).view(shape), routing
