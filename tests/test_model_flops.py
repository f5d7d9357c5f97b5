"""Parameter and FLOP counts: JetMoE-8B matches the paper; the counter agrees with the built model."""
from pathlib import Path

import pytest
import torch

from trainer.model import JetMoE, count_params, flops_per_token, load_model_config
from trainer.model.flops import active_matmul_params, param_breakdown

CONFIGS = Path(__file__).resolve().parents[1] / "trainer" / "configs" / "model"


def test_jetmoe_8b_counts_match_paper():
    cfg = load_model_config(CONFIGS / "jetmoe-8b.toml")
    total, active = count_params(cfg)
    # paper: 8.5B total, ~2.2B active. We count 8.52B and 2.33B (2.27B without the tied embedding).
    assert total == 8_522_237_952
    assert active == 2_331_445_248
    assert 8.4e9 < total < 8.6e9
    assert 2.2e9 < active - cfg.vocab_size * cfg.d_model < 2.3e9


@pytest.mark.parametrize("name", ["tiny.toml", "jetmoe-8b.toml"])
def test_counter_agrees_with_model(name):
    cfg = load_model_config(CONFIGS / name)
    with torch.device("meta"):
        model = JetMoE(cfg)
    assert count_params(cfg)[0] == sum(p.numel() for p in model.parameters())


def test_active_counts_top_k_experts_only():
    cfg = load_model_config(CONFIGS / "tiny.toml")
    parts = param_breakdown(cfg)
    assert parts["moe experts"]["active"] * cfg.n_experts == parts["moe experts"]["total"] * cfg.top_k
    assert parts["moa q+o experts"]["active"] * cfg.n_experts == parts["moa q+o experts"]["total"] * cfg.top_k
    assert parts["moa kv_proj (shared)"]["active"] == parts["moa kv_proj (shared)"]["total"]


def test_flops_per_token_by_hand():
    cfg = load_model_config(CONFIGS / "tiny.toml")
    d, w, e, k, f, L, V = 128, 4 * 16, 8, 2, 256, 4, 8192
    per_layer = 2 * w * d + k * 2 * w * d + 2 * e * d + k * 3 * f * d
    matmul = L * per_layer + V * d
    assert active_matmul_params(cfg) == matmul
    assert flops_per_token(cfg, 256) == 6 * matmul + 12 * L * (4 * 2) * 16 * 256
    with pytest.raises(ValueError):
        flops_per_token(cfg, 0)
