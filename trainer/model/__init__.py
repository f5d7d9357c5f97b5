"""JetMoE model package: config, model (MoA + MoE with pluggable expert backends), weights I/O,
parameter/FLOP counting, Hugging Face export/import (`hf`) and scoring (`score`)."""
from .config import BACKENDS, ModelConfig, load_model_config
from .flops import count_params, flops_per_token
from .io import load_checkpoint_weights, read_model_config, save_checkpoint_weights
from .jetmoe import JetMoE, ModelOutput
from .moe import available_backends

__all__ = ["BACKENDS", "ModelConfig", "load_model_config", "JetMoE", "ModelOutput", "count_params",
           "flops_per_token", "save_checkpoint_weights", "load_checkpoint_weights", "read_model_config",
           "available_backends"]
