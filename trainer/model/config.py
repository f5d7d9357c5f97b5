"""Model configuration: a typed dataclass loaded from `trainer/configs/model/*.toml`.

    cfg = load_model_config("trainer/configs/model/tiny.toml")
    cfg = ModelConfig(d_model=128, n_layers=2, ...)      # or directly
    ModelConfig.from_dict(cfg.to_dict()) == cfg

A model TOML holds flat keys or one [model] table; it is read by `jetmoe_core.config` (the loader of every
config), so an unknown key, a wrong type or a backend outside `BACKENDS` is a `ConfigError` naming the file
and the key. Field names follow this project; `trainer.model.hf` maps them to Hugging Face `JetMoeConfig`
keys. The auxiliary-loss weights live here, not in the run config: they are part of the model's loss
(`JetMoE.forward` returns `out.loss`) and of its export.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from jetmoe_core.config import ConfigError, check_fields, from_table, load_toml

Backend = Literal["auto", "torch", "grouped_mm", "megablocks"]
BACKENDS: tuple[str, ...] = typing.get_args(Backend)
SHIPPED = Path(__file__).resolve().parents[1] / "configs" / "model"


@dataclass(frozen=True)
class ModelConfig:
    """JetMoE architecture (the JetMoE-8B paper); defaults are the paper's JetMoE-8B except n_layers/vocab."""

    vocab_size: int = 32000
    """Embedding rows; must equal the corpus tokenizer's vocab size (the trainer checks it)."""
    d_model: int = 2048
    """Residual stream width (HF hidden_size)."""
    n_layers: int = 24
    """Number of blocks (HF num_hidden_layers)."""
    n_kv_heads: int = 16
    """K/V heads shared by a layer's attention experts; each expert brings as many query heads."""
    head_dim: int = 128
    """Per-head width (HF kv_channels)."""
    n_experts: int = 8
    """Experts in every MoA and every MoE layer (HF num_local_experts)."""
    top_k: int = 2
    """Experts chosen per token in every MoA and MoE layer (HF num_experts_per_tok)."""
    attn_n_experts: int | None = None
    """Experts in every MoA layer when it differs from n_experts (None = n_experts). 1 with attn_top_k = 1 is
    dense multi-head attention: one W_q/W_o, gate 1. Hugging Face's JetMoE has one count for both kinds, so
    a model whose MoA and MoE counts differ trains but cannot be exported."""
    attn_top_k: int | None = None
    """Experts chosen per token in every MoA layer (None = top_k)."""
    mlp_n_experts: int | None = None
    """Experts in every MoE MLP layer (None = n_experts). 1 with mlp_top_k = 1 is a dense SwiGLU MLP."""
    mlp_top_k: int | None = None
    """Experts chosen per token in every MoE MLP layer (None = top_k)."""
    ffn_hidden: int = 5632
    """SwiGLU hidden width per MLP expert (HF intermediate_size)."""
    max_seq_len: int = 4096
    """Longest sequence (HF max_position_embeddings)."""
    rope_theta: float = 10000.0
    """RoPE base."""
    rms_norm_eps: float = 1e-5
    """eps of the final RMSNorm (HF rms_norm_eps)."""
    block_norm_eps: float = 1e-6
    """eps of the two RMSNorms inside each block; HF's JetMoE hard-codes 1e-6 there, so an export refuses
    any other value (the HF model could not reproduce our logits)."""
    init_std: float = 0.01
    """Std of the normal init of every weight matrix and the embedding (HF initializer_range); biases 0."""
    load_balance_coef: float = 0.01
    """Weight of the summed Switch load-balance loss in `ModelOutput.loss` (paper: 0.01)."""
    z_loss_coef: float = 0.001
    """Weight of the summed ST-MoE router z-loss in `ModelOutput.loss` (paper: 0.001)."""
    backend: Backend = "auto"
    """Expert matmul backend: auto | torch | grouped_mm | megablocks (see trainer/model/moe.py)."""
    tokenizer_sha256: str = ""
    """Optional pin: sha256 of the tokenizer.json this model is trained with ("" = any)."""
    bos_id: int | None = 1
    """BOS id written to the HF config (corpus tokenizer: <s>=1)."""
    eos_id: int | None = 2
    """EOS id written to the HF config (corpus tokenizer: </s>=2)."""
    name: str = field(default="", compare=False)
    """Free-form label (e.g. "tiny", "jetmoe-8b")."""

    def __post_init__(self) -> None:
        check_fields(self, "model config")
        ints = ("vocab_size", "d_model", "n_layers", "n_kv_heads", "head_dim", "n_experts", "top_k",
                "ffn_hidden", "max_seq_len")
        for name in ints:
            value = getattr(self, name)
            if value <= 0:
                raise ValueError(f"model config: {name} must be a positive integer, got {value!r}")
        for name in ("attn_n_experts", "attn_top_k", "mlp_n_experts", "mlp_top_k"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"model config: {name} must be a positive integer or absent, got {value!r}")
        for kind, (e_key, k_key) in (("", ("n_experts", "top_k")), ("attn", ("attn_n_experts", "attn_top_k")),
                                     ("mlp", ("mlp_n_experts", "mlp_top_k"))):
            e, k = self.experts(kind) if kind else (self.n_experts, self.top_k)
            if k > e:
                raise ValueError(f"model config: {k_key}={k} exceeds {e_key}={e} (absent keys take n_experts / "
                                 f"top_k); set {k_key} <= {e_key}")
        if self.head_dim % 2:
            raise ValueError(f"model config: head_dim={self.head_dim} must be even (RoPE rotates pairs)")
        for name in ("rope_theta", "rms_norm_eps", "block_norm_eps", "init_std"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"model config: {name} must be > 0, got {getattr(self, name)!r}")
        for name in ("load_balance_coef", "z_loss_coef"):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"model config: {name} must be >= 0, got {getattr(self, name)!r}")
        if self.tokenizer_sha256 and (len(self.tokenizer_sha256) != 64
                                      or any(c not in "0123456789abcdef" for c in self.tokenizer_sha256)):
            raise ValueError("model config: tokenizer_sha256 must be 64 lowercase hex digits or \"\"")

    def experts(self, kind: Literal["attn", "mlp"]) -> tuple[int, int]:
        """(experts, top-k) of the MoA ("attn") or MoE MLP ("mlp") layers, the per-kind keys falling back to
        n_experts / top_k."""
        if kind not in ("attn", "mlp"):
            raise ValueError(f"kind must be 'attn' or 'mlp', got {kind!r}")
        e, k = getattr(self, f"{kind}_n_experts"), getattr(self, f"{kind}_top_k")
        return (self.n_experts if e is None else e, self.top_k if k is None else k)

    @property
    def same_experts(self) -> bool:
        """True when MoA and MoE have the same expert count and top-k (what Hugging Face's JetMoE holds)."""
        return self.experts("attn") == self.experts("mlp")

    @property
    def n_q_heads(self) -> int:
        """Query heads attended per token: each of the attention top-k experts brings n_kv_heads."""
        return self.n_kv_heads * self.experts("attn")[1]

    @property
    def attn_width(self) -> int:
        """Width of one attention expert's queries (= K and V width): n_kv_heads * head_dim."""
        return self.n_kv_heads * self.head_dim

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "model config") -> "ModelConfig":
        """A saved config (model_config.json) back into a ModelConfig, by the loader's rules."""
        return from_table(cls, d, source=source)

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(self, **changes)


def load_model_config(path: str | Path, **overrides: Any) -> ModelConfig:
    """Read a model TOML (flat keys, or under a [model] table) into a ModelConfig; overrides win."""
    path = Path(path)
    known = ", ".join(sorted(p.name for p in SHIPPED.glob("*.toml")))
    raw, _ = load_toml(path, what="model config", missing_hint=f"shipped configs (in {SHIPPED}): {known}")
    if isinstance(raw.get("model"), dict):
        extra = sorted(k for k in raw if k != "model")
        if extra:
            raise ConfigError(f"{path}: keys {extra} outside the [model] table; move them inside it")
        raw = raw["model"]
    raw = {**raw, **overrides}
    raw.setdefault("name", path.stem)
    return from_table(ModelConfig, raw, source=path)
