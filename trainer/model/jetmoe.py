"""The JetMoE model: pre-norm blocks of MoA (mixture of attention heads) and MoE (SwiGLU experts).

    model = JetMoE(ModelConfig(...))
    out = model(input_ids, labels=targets)   # targets[b, t] = the token after input_ids[b, t]; -100 ignored
    out.loss.backward()                      # lm + load_balance_coef*Σ load balance + z_loss_coef*Σ z-loss
    model(input_ids).logits                  # [B, T, V]; with labels only if return_logits=True

Parameters and math follow Hugging Face's JetMoeForCausalLM (so `trainer.model.hf` converts both ways with
equal logits), with two deliberate differences in how it runs: attention is one SDPA call with
`enable_gqa` (query heads ordered kv-head-major, see `MoA.forward`) instead of tiling K/V, and auxiliary
losses are returned per router instead of recomputed from recorded logits.

Speed without approximation: the top-k combine is a gather-multiply-add, every token permutation is one
gather forward and one backward (`moe.Routing`), the loss with labels never materialises the batch's
logits (`loss.linear_cross_entropy`, unless the caller asks for logits), matmul weights can be cast to
bf16 once per optimizer step (`cache_weight_casts`, see `precision`), and each `Block` returns tensors
only and syncs nothing with the host on the grouped_mm path, so `trainer.perf.compile_blocks` compiles it
whole.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .loss import linear_cross_entropy
from .moe import ExpertLinear, MoEMLP, Routing, TopKRouter, permute_rows, resolve_backend
from .precision import CastLinear, WeightCastCache, autocast_weight

__all__ = ["JetMoE", "ModelOutput", "Block", "MoA", "RMSNorm"]


@dataclass
class ModelOutput:
    """What `JetMoE.forward` returns. Aux losses are fp32 scalars summed over all 2·n_layers routers."""

    logits: torch.Tensor | None
    """[B, T, V] next-token logits; None when labels were given and return_logits was not set (the loss
    was computed chunk by chunk without them)."""
    lm_loss: torch.Tensor | None
    """Mean cross-entropy over labels != -100 (fp32), or None without labels."""
    load_balance_loss: torch.Tensor
    """Σ over MoA and MoE routers of the Switch load-balance loss (each 1.0 when perfectly balanced)."""
    z_loss: torch.Tensor
    """Σ over MoA and MoE routers of the ST-MoE z-loss."""
    expert_counts: torch.Tensor
    """[n_layers, 2, n_experts] int64 tokens routed per expert; [:, 0] attention, [:, 1] MLP."""
    load_balance_per_layer: torch.Tensor
    """[n_layers, 2] the terms of load_balance_loss (detached)."""
    z_loss_per_layer: torch.Tensor
    """[n_layers, 2] the terms of z_loss (detached)."""
    loss: torch.Tensor | None
    """lm_loss + load_balance_coef·load_balance_loss + z_loss_coef·z_loss, or None without labels."""


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in fp32 and scale after casting back, as HF does, so bf16 runs match its rounding.
        return self.weight * F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps).to(x.dtype)


def rope_cos_sin(seq_len: int, head_dim: int, theta: float, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin [T, head_dim] for the half-split ("rotate_half") RoPE layout HF's JetMoE uses."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    freqs = torch.outer(torch.arange(seq_len, device=device, dtype=torch.float32), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [..., T, H, D] with cos/sin [T, D]."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    # cos/sin follow x's dtype so bf16 queries/keys (autocast) stay bf16 for SDPA
    return x * cos.to(x.dtype)[:, None, :] + rotated * sin.to(x.dtype)[:, None, :]


class MoA(nn.Module):
    """Mixture of attention heads: shared K/V projection, per-expert W_q / W_o, top-k routing, output bias."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        width = cfg.attn_width
        self.kv_proj = CastLinear(cfg.d_model, 2 * width, bias=False)  # [K; V] along out, as HF
        self.router = TopKRouter(cfg.d_model, cfg.n_experts, cfg.top_k)
        self.q_proj = ExpertLinear(cfg.n_experts, cfg.d_model, width)   # HF experts.input_linear
        self.o_proj = ExpertLinear(cfg.n_experts, width, cfg.d_model)   # HF experts.output_linear
        self.bias = nn.Parameter(torch.empty(cfg.d_model))

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, Routing]:
        cfg = self.cfg
        b, t, d = x.shape
        h, hd, k = cfg.n_kv_heads, cfg.head_dim, cfg.top_k
        flat = x.reshape(-1, d)
        routing = self.router(flat)
        backend = resolve_backend(cfg.backend, x.device, (d, cfg.attn_width), mlp=False)

        # HF tiles K/V with .repeat, so query head c*h_kv + j (choice c) reads KV head j. SDPA's enable_gqa
        # pairs query head i with KV head i // k instead, so the queries are laid out kv-head-major (j, c):
        # [b, t, h*k, hd], one gather straight from the expert-sorted q_proj rows, and the attention output
        # goes back to expert order for o_proj by the inverse gather.
        to_attn, to_sorted = routing.head_permutation(h)
        q = self.q_proj(routing.gather_tokens(flat), routing, backend)
        q = permute_rows(q.reshape(-1, hd), to_attn, to_sorted).view(b, t, h * k, hd)
        key, value = self.kv_proj(x).view(b, t, 2, h, hd).unbind(2)
        q = apply_rope(q, cos, sin)
        key = apply_rope(key, cos, sin)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2),
                                             is_causal=True, enable_gqa=k > 1)
        # [b, h*k, t, hd] -> rows (token, head, choice): a view when SDPA kept the query layout
        out = out.transpose(1, 2).reshape(-1, hd)
        y = self.o_proj(permute_rows(out, to_sorted, to_attn).view(-1, h * hd), routing, backend)
        return routing.combine(y, self.bias).view(b, t, d), routing


class Block(nn.Module):
    """RMSNorm → MoA → residual → RMSNorm → MoE MLP → residual. One FSDP unit."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.block_norm_eps)
        self.attn = MoA(cfg)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.block_norm_eps)
        self.mlp = MoEMLP(cfg.d_model, cfg.ffn_hidden, cfg.n_experts, cfg.top_k, cfg.backend)

    def forward(self, x, cos, sin) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (x, load balance [2], z-loss [2], expert counts [2, E]); [0] attention, [1] MLP. Tensors only,
        so a compiled block returns them without reconstructing Python objects."""
        a, attn_routing = self.attn(self.attn_norm(x), cos, sin)
        x = x + a
        m, mlp_routing = self.mlp(self.mlp_norm(x))
        return (x + m, torch.stack([attn_routing.load_balance_loss(), mlp_routing.load_balance_loss()]),
                torch.stack([attn_routing.z_loss(), mlp_routing.z_loss()]),
                torch.stack([attn_routing.counts, mlp_routing.counts]))


class JetMoE(nn.Module):
    """JetMoE decoder with tied input/output embeddings. `layers` is an nn.ModuleList of `Block`s."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.rms_norm_eps)
        self.embed.weight_lp = None  # the tied output projection's cast copy (see precision)
        self.weight_casts: WeightCastCache | None = None
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """normal(0, init_std) for every matrix and the embedding, zero biases, unit norms (HF's init).
        Call again after materialising a meta-device model (FSDP2)."""
        std = self.cfg.init_std
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            elif p.ndim == 1:
                p.fill_(1.0)
            else:
                p.normal_(0.0, std)

    def cache_weight_casts(self, dtype: torch.dtype | None = torch.bfloat16,
                           optimizer: torch.optim.Optimizer | None = None) -> WeightCastCache | None:
        """Keep the matmul weights cast to `dtype` between forwards, re-cast after each step of `optimizer`
        (see trainer.model.precision); used under autocast to that dtype. None switches it off."""
        if self.weight_casts is not None:
            self.weight_casts.close()
            self.weight_casts = None
        if dtype is not None:
            mods = [self.embed] + [m for m in self.modules() if isinstance(m, ExpertLinear)]
            mods += [block.attn.kv_proj for block in self.blocks()]
            self.weight_casts = WeightCastCache(mods, dtype)
            if optimizer is not None:
                self.weight_casts.watch(optimizer)
        return self.weight_casts

    def blocks(self) -> list[Block]:
        """The Blocks, looking through wrappers (activation checkpointing, compile) around `layers[i]`."""
        return [m for m in self.layers.modules() if isinstance(m, Block)]

    def set_backend(self, backend: str) -> None:
        """Switch the expert backend in place (same parameters)."""
        cfg = self.cfg.replace(backend=backend)
        self.cfg = cfg
        for block in self.blocks():
            block.attn.cfg = cfg
            block.mlp.backend = backend

    def backends(self, device: torch.device | str | None = None) -> dict[str, str]:
        """The backend that `auto` (or the configured one) resolves to for MoA and MoE on `device`."""
        device = torch.device(device) if device is not None else self.embed.weight.device
        c = self.cfg
        return {"moa": resolve_backend(c.backend, device, (c.d_model, c.attn_width), mlp=False),
                "moe": resolve_backend(c.backend, device, (c.d_model, c.ffn_hidden), mlp=True)}

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None,
                return_logits: bool | None = None) -> ModelOutput:
        """return_logits: None = logits only without labels (with labels the loss is computed chunk by
        chunk and `out.logits` is None); True = always (the loss is then F.cross_entropy of those logits)."""
        if input_ids.ndim != 2:
            raise ValueError(f"input_ids must be [batch, seq], got shape {tuple(input_ids.shape)}")
        b, t = input_ids.shape
        if t > self.cfg.max_seq_len:
            raise ValueError(f"sequence length {t} exceeds max_seq_len={self.cfg.max_seq_len}")
        if labels is not None and labels.shape != input_ids.shape:
            raise ValueError(f"labels shape {tuple(labels.shape)} must equal input_ids shape {tuple(input_ids.shape)}")
        device_type = input_ids.device.type
        if (self.weight_casts is not None and torch.is_autocast_enabled(device_type)
                and torch.get_autocast_dtype(device_type) == self.weight_casts.dtype):
            self.weight_casts.refresh()
        x = self.embed(input_ids)
        cos, sin = rope_cos_sin(t, self.cfg.head_dim, self.cfg.rope_theta, x.device, x.dtype)
        lb, zl, counts = [], [], []
        for block in self.layers:
            x, block_lb, block_z, block_counts = block(x, cos, sin)
            lb.append(block_lb)
            zl.append(block_z)
            counts.append(block_counts)
        x = self.norm(x)
        head = autocast_weight(self.embed, device_type)
        want_logits = labels is None if return_logits is None else return_logits
        logits = F.linear(x, head) if want_logits else None
        lb_t = torch.stack(lb)
        z_t = torch.stack(zl)
        lm_loss = loss = None
        if labels is not None:
            if logits is not None:
                lm_loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), labels.reshape(-1),
                                          ignore_index=-100)
            else:
                lm_loss = linear_cross_entropy(x.reshape(-1, x.shape[-1]), head, labels.reshape(-1))
            loss = lm_loss + self.cfg.load_balance_coef * lb_t.sum() + self.cfg.z_loss_coef * z_t.sum()
        return ModelOutput(logits=logits, lm_loss=lm_loss, load_balance_loss=lb_t.sum(), z_loss=z_t.sum(),
                           expert_counts=torch.stack(counts), load_balance_per_layer=lb_t.detach(),
                           z_loss_per_layer=z_t.detach(), loss=loss)
