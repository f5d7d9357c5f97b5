"""Model weights on disk: `<ckpt>/model.safetensors` + `<ckpt>/model_config.json`, written atomically.

    save_checkpoint_weights(model, "runs/tiny/checkpoints/step-00000600")
    model = load_checkpoint_weights("runs/tiny/checkpoints/step-00000600")
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from jetmoe_core.io import atomic_path, write_json_atomic
from trainer.writers import save_safetensors

from .config import ModelConfig
from .jetmoe import JetMoE

WEIGHTS = "model.safetensors"
CONFIG = "model_config.json"

__all__ = ["save_checkpoint_weights", "load_checkpoint_weights", "read_model_config", "save_safetensors_atomic",
           "WEIGHTS", "CONFIG"]


def save_safetensors_atomic(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    with atomic_path(path) as tmp:
        save_safetensors(tensors, tmp, metadata)


def _state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    sd = model.state_dict()
    out = {}
    for k, v in sd.items():
        # DTensor (FSDP2) shards are gathered so the file is the full model whatever the world size.
        if hasattr(v, "full_tensor"):
            v = v.full_tensor()
        out[k] = v.detach().to("cpu").contiguous()
    return out


def save_checkpoint_weights(model: JetMoE, ckpt_dir: str | Path) -> Path:
    """Write model.safetensors (full, unsharded, CPU) and model_config.json into ckpt_dir.

    The output embedding is the input embedding (tied), so only `embed.weight` is stored. Under FSDP2 every
    rank must call this (the gather is collective); only rank 0 should pass a real directory."""
    ckpt_dir = Path(ckpt_dir)
    tensors = _state_dict(model)
    cfg: ModelConfig = model.cfg
    # One metadata key only: safetensors writes metadata from a hash map, so several keys come out in a
    # varying order and the same weights would not give the same bytes.
    save_safetensors_atomic(tensors, ckpt_dir / WEIGHTS, {"format": "pt"})
    write_json_atomic(ckpt_dir / CONFIG, cfg.to_dict(), sort_keys=True)
    return ckpt_dir


def read_model_config(ckpt_dir: str | Path) -> ModelConfig:
    path = Path(ckpt_dir) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {ckpt_dir} is not a checkpoint written by "
                                "save_checkpoint_weights (expected model.safetensors + model_config.json)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}") from e
    return ModelConfig.from_dict(data, source=str(path))


def load_checkpoint_weights(ckpt_dir: str | Path, device: str | torch.device = "cpu",
                            backend: str | None = None) -> JetMoE:
    """Build the model from model_config.json and load model.safetensors (strict: every key, every shape)."""
    ckpt_dir = Path(ckpt_dir)
    cfg = read_model_config(ckpt_dir)
    if backend is not None:
        cfg = cfg.replace(backend=backend)
    weights = ckpt_dir / WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found beside {CONFIG}")
    with torch.device("meta"):
        model = JetMoE(cfg)
    state = load_file(str(weights), device=str(device))
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{weights}: does not match {ckpt_dir / CONFIG}: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    for k, shape in expected.items():
        if tuple(state[k].shape) != shape:
            raise ValueError(f"{weights}: tensor {k} has shape {tuple(state[k].shape)}, config implies {shape}")
    model.load_state_dict(state, assign=True)
    return model
