"""The cost plan of the paper's run lands near its ~30,000 H100-hours; the memory plan fits 8 × 80 GB."""
import pytest

from trainer.config import CONFIG_DIR, load_run_config
from trainer.costs import format_memory_plan, format_plan, memory_plan, plan_run
from trainer.model import load_model_config


def _paper():
    cfg = load_run_config(CONFIG_DIR / "jetmoe-8b.toml")
    return cfg, load_model_config(cfg.model_config_path())


def test_jetmoe_8b_on_96_h100_is_near_30k_gpu_hours():
    cfg, m = _paper()
    assert (cfg.cost.gpus, cfg.cost.mfu, cfg.cost.peak_tflops) == (96, 0.14, 989.0)
    plans = plan_run(cfg, m)
    total = sum(p.gpu_hours for p in plans)
    assert 0.8 * 30_000 <= total <= 1.2 * 30_000, total          # [P]: ~30,000 H100 GPU-hours
    wall_days = sum(p.wall_hours for p in plans) / 24
    assert 10 <= wall_days <= 20, wall_days                       # [P]: about two weeks
    assert sum(p.usd for p in plans) < 120_000                    # [P]: < $0.1M (at ≈ $3/GPU-hour)
    assert plans[1].gpu_hours == pytest.approx(plans[0].gpu_hours * 0.25, rel=1e-3)
    text = format_plan(plans, current=1)
    assert "total" in text and "1T" in text and "250B" in text


def test_measured_mfu_replaces_the_assumption():
    cfg, m = _paper()
    a = plan_run(cfg, m)[0]
    b = plan_run(cfg, m, measured_mfu=0.28)[0]
    assert b.mfu_source == "measured" and b.gpu_hours == pytest.approx(a.gpu_hours / 2)


def test_model_flops_basis_counts_attention_too():
    cfg, m = _paper()
    six_n = plan_run(cfg, m)[0].flops_per_token
    cfg.cost.flops_basis = "model"
    assert plan_run(cfg, m)[0].flops_per_token > six_n


def test_memory_plan_8b_on_8_h100():
    _, m = _paper()
    rows = [memory_plan(m, 8, mb, 4096, ck) for ck in (False, True) for mb in (1, 2)]
    assert all(r["fits"] for r in rows)
    assert rows[0]["state_gib"] == pytest.approx(16 * 8_522_237_952 / 8 / 2 ** 30, rel=1e-6)
    assert memory_plan(m, 1, 1, 4096, False)["fits"] is False    # 136 GiB of state alone on one GPU
    assert "fits" in format_memory_plan(rows)
