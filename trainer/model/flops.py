"""Parameter and FLOP counts from a ModelConfig alone (no model is built, so jetmoe-8b counts instantly).

    python -c "from trainer.model import *; c=load_model_config('trainer/configs/model/jetmoe-8b.toml'); print(count_params(c))"
"""
from __future__ import annotations

from .config import ModelConfig

__all__ = ["count_params", "param_breakdown", "flops_per_token"]


def param_breakdown(cfg: ModelConfig) -> dict[str, dict[str, int]]:
    """Per component: total parameters and those a single token uses (its top-k experts, all shared parts)."""
    d, f, w = cfg.d_model, cfg.ffn_hidden, cfg.attn_width
    (ea, ka), (em, km) = cfg.experts("attn"), cfg.experts("mlp")
    L = cfg.n_layers
    parts = {
        "embedding (tied)": (cfg.vocab_size * d, cfg.vocab_size * d),
        "norms": (L * 2 * d + d, L * 2 * d + d),
        "moa kv_proj (shared)": (L * 2 * w * d, L * 2 * w * d),
        "moa q+o experts": (L * ea * 2 * w * d, L * ka * 2 * w * d),
        "moa router": (L * ea * d, L * ea * d),
        "moa bias": (L * d, L * d),
        "moe experts": (L * em * 3 * f * d, L * km * 3 * f * d),
        "moe router": (L * em * d, L * em * d),
        "moe bias": (L * d, L * d),
    }
    return {name: {"total": t, "active": a} for name, (t, a) in parts.items()}


def count_params(cfg: ModelConfig) -> tuple[int, int]:
    """(total, active per token) parameters; the tied embedding counts once in both."""
    parts = param_breakdown(cfg).values()
    return sum(p["total"] for p in parts), sum(p["active"] for p in parts)


def active_matmul_params(cfg: ModelConfig) -> int:
    """Weights a token multiplies through: routers, shared K/V, its experts' q/o and MLP, and the LM head
    (the tied embedding counted as the output projection; the input lookup is not a matmul)."""
    d, f, w = cfg.d_model, cfg.ffn_hidden, cfg.attn_width
    (ea, ka), (em, km) = cfg.experts("attn"), cfg.experts("mlp")
    per_layer = 2 * w * d + ka * 2 * w * d + ea * d + km * 3 * f * d + em * d
    return cfg.n_layers * per_layer + cfg.vocab_size * d


def flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Training FLOPs per token (forward + backward = 3× forward) for MFU.

    6 · active matmul parameters, plus attention scores and weighted values: per layer 2 matmuls of
    2·n_q_heads·head_dim·seq_len FLOPs forward, i.e. 12·L·n_q_heads·head_dim·seq_len for training. This is
    the PaLM-paper convention (no discount for the causal mask), which published MFU figures use."""
    if seq_len <= 0:
        raise ValueError(f"seq_len must be positive, got {seq_len}")
    attn = 12 * cfg.n_layers * cfg.n_q_heads * cfg.head_dim * seq_len
    return float(6 * active_matmul_params(cfg) + attn)
