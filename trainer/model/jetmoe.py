"""The JetMoE model: pre-norm blocks of MoA (mixture of attention heads) and MoE (SwiGLU experts).

    model = JetMoE(ModelConfig(...))
    out = model(input_ids, labels=targets)   # targets[b, t] = the token after input_ids[b, t]; -100 ignored
    out.loss.backward()                      # lm + load_balance_coef*Σ load balance + z_loss_coef*Σ z-loss

Parameters and math follow Hugging Face's JetMoeForCausalLM (so `trainer.model.hf` converts both ways with
equal logits), with two deliberate differences in how it runs: attention is one SDPA call with
`enable_gqa` (query heads ordered kv-head-major, see `MoA.forward`) instead of tiling K/V, and auxiliary
losses are returned per router instead of recomputed from recorded logits.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .moe import ExpertLinear, MoEMLP, Routing, TopKRouter, resolve_backend

__all__ = ["JetMoE", "ModelOutput", "Block", "MoA", "RMSNorm"]


@dataclass
class ModelOutput:
    """What `JetMoE.forward` returns. Aux losses are fp32 scalars summed over all 2·n_layers routers."""

    logits: torch.Tensor
    """[B, T, V] next-token logits."""
    lm_loss: torch.Tensor | None
    """Mean cross-entropy over labels != -100 (fp32), or None without labels."""
    load_balance_loss: torch.Tensor
    """Σ over MoA and MoE routers of the Switch load-balance loss (each 1.0 when perfectly balanced)."""
    z_loss: torch.Tensor
    """Σ over MoA and MoE routers of the ST-MoE z-loss."""
    expert_counts: torch.Tensor
    """[n_layers, 2, E] int64 tokens routed per expert; [:, 0] attention, [:, 1] MLP. E is the larger of the
    two kinds' expert counts; the kind with fewer experts is zero-padded past its own count."""
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
        self.kv_proj = nn.Linear(cfg.d_model, 2 * width, bias=False)  # [K; V] along out, as HF
        n_exp, top_k = cfg.experts("attn")
        self.router = TopKRouter(cfg.d_model, n_exp, top_k)
        self.q_proj = ExpertLinear(n_exp, cfg.d_model, width)   # HF experts.input_linear
        self.o_proj = ExpertLinear(n_exp, width, cfg.d_model)   # HF experts.output_linear
        self.bias = nn.Parameter(torch.empty(cfg.d_model))

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, Routing]:
        cfg = self.cfg
        b, t, d = x.shape
        h, hd, k = cfg.n_kv_heads, cfg.head_dim, self.router.top_k
        flat = x.reshape(-1, d)
        routing = self.router(flat)
        backend = resolve_backend(cfg.backend, x.device, (d, cfg.attn_width), mlp=False)

        q = self.q_proj(routing.gather_tokens(flat), routing, backend)
        q = routing.unsort(q).view(b, t, k, h, hd)
        key, value = self.kv_proj(x).view(b, t, 2, h, hd).unbind(2)
        q = apply_rope(q.reshape(b, t, k * h, hd), cos, sin).view(b, t, k, h, hd)
        key = apply_rope(key, cos, sin)

        # HF tiles K/V with .repeat, so query head c*h_kv + j (choice c) reads KV head j. SDPA's enable_gqa
        # pairs query head i with KV head i // k instead, so lay the queries out kv-head-major (j, c).
        q = q.permute(0, 3, 2, 1, 4).reshape(b, h * k, t, hd)
        out = F.scaled_dot_product_attention(q, key.transpose(1, 2), value.transpose(1, 2),
                                             is_causal=True, enable_gqa=k > 1)
        # back to one row per (token, choice): [b, h, k, t, hd] -> [b, t, k, h*hd]
        out = out.view(b, h, k, t, hd).permute(0, 3, 2, 1, 4).reshape(b * t * k, h * hd)
        y = self.o_proj(out.index_select(0, routing.order), routing, backend)
        return (routing.combine(y) + self.bias).view(b, t, d), routing


class Block(nn.Module):
    """RMSNorm → MoA → residual → RMSNorm → MoE MLP → residual. One FSDP unit."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.d_model, cfg.block_norm_eps)
        self.attn = MoA(cfg)
        self.mlp_norm = RMSNorm(cfg.d_model, cfg.block_norm_eps)
        self.mlp = MoEMLP(cfg.d_model, cfg.ffn_hidden, *cfg.experts("mlp"), cfg.backend)

    def forward(self, x, cos, sin) -> tuple[torch.Tensor, Routing, Routing]:
        a, attn_routing = self.attn(self.attn_norm(x), cos, sin)
        x = x + a
        m, mlp_routing = self.mlp(self.mlp_norm(x))
        return x + m, attn_routing, mlp_routing


class JetMoE(nn.Module):
    """JetMoE decoder with tied input/output embeddings. `layers` is an nn.ModuleList of `Block`s."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.rms_norm_eps)
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

    def set_backend(self, backend: str) -> None:
        """Switch the expert backend in place (same parameters)."""
        cfg = self.cfg.replace(backend=backend)
        self.cfg = cfg
        for block in self.layers:
            block.attn.cfg = cfg
            block.mlp.backend = backend

    def backends(self, device: torch.device | str | None = None) -> dict[str, str]:
        """The backend that `auto` (or the configured one) resolves to for MoA and MoE on `device`."""
        device = torch.device(device) if device is not None else self.embed.weight.device
        c = self.cfg
        return {"moa": resolve_backend(c.backend, device, (c.d_model, c.attn_width), mlp=False),
                "moe": resolve_backend(c.backend, device, (c.d_model, c.ffn_hidden), mlp=True)}

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None) -> ModelOutput:
        if input_ids.ndim != 2:
            raise ValueError(f"input_ids must be [batch, seq], got shape {tuple(input_ids.shape)}")
        b, t = input_ids.shape
        if t > self.cfg.max_seq_len:
            raise ValueError(f"sequence length {t} exceeds max_seq_len={self.cfg.max_seq_len}")
        x = self.embed(input_ids)
        cos, sin = rope_cos_sin(t, self.cfg.head_dim, self.cfg.rope_theta, x.device, x.dtype)
        lb, zl, counts = [], [], []
        for block in self.layers:
            x, r_attn, r_mlp = block(x, cos, sin)
            lb += [r_attn.load_balance_loss(), r_mlp.load_balance_loss()]
            zl += [r_attn.z_loss(), r_mlp.z_loss()]
            width = max(r_attn.counts.numel(), r_mlp.counts.numel())
            counts.append(torch.stack([F.pad(c, (0, width - c.numel())) for c in (r_attn.counts, r_mlp.counts)]))
        x = self.norm(x)
        logits = F.linear(x, self.embed.weight)
        lb_t = torch.stack(lb).view(-1, 2)
        z_t = torch.stack(zl).view(-1, 2)
        lm_loss = loss = None
        if labels is not None:
            if labels.shape != input_ids.shape:
                raise ValueError(f"labels shape {tuple(labels.shape)} must equal input_ids shape {tuple(input_ids.shape)}")
            lm_loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
            loss = lm_loss + self.cfg.load_balance_coef * lb_t.sum() + self.cfg.z_loss_coef * z_t.sum()
        return ModelOutput(logits=logits, lm_loss=lm_loss, load_balance_loss=lb_t.sum(), z_loss=z_t.sum(),
                           expert_counts=torch.stack(counts), load_balance_per_layer=lb_t.detach(),
                           z_loss_per_layer=z_t.detach(), loss=loss)
