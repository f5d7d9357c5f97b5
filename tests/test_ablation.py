"""The ablation grid: parsing and its errors, equal active parameters, dense variants, the interval rule, and
`python -m trainer ablation --quick` end to end on a tiny corpus (tables, CSV, plots, a rerun that trains nothing)."""
import csv
import json
import math
import shlex
from pathlib import Path

import pytest
import torch

from jetmoe_core.config import ConfigError
from trainer.ablation import main
from trainer.ablation.grid import load_grid
from trainer.ablation.stats import Interval, compare, compare_paired, interval
from trainer.ablation.summary import compare_runs
from trainer.model import JetMoE

REPO = Path(__file__).resolve().parents[1]
CPU = REPO / "trainer" / "configs" / "ablations" / "cpu.toml"


def write_grid(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "grid.toml"
    p.write_text('[grid]\nname = "t"\ncontrol = "moe"\n[variants.moe]\n[variants.dense]\nn_experts = 1\ntop_k = 1\n'
                 + text)
    return p


def test_shipped_grid_declares_the_issue_variants():
    grid = load_grid(CPU)
    assert len(grid.section.seeds) >= 3
    assert grid.control.model.experts("attn") == grid.control.model.experts("mlp") == (8, 2)
    shapes = {n: (v.model.experts("attn"), v.model.experts("mlp")) for n, v in grid.variants.items()}
    assert shapes["dense"] == ((1, 1), (1, 1))
    assert shapes["moe_only"] == ((1, 1), (8, 2)) and shapes["moa_only"] == ((8, 2), (1, 1))
    assert shapes["top1"] == ((8, 1), (8, 1))
    assert {shapes[n][0] for n in ("experts4", "jetmoe", "experts16")} == {(4, 2), (8, 2), (16, 2)}


def documented_gpu_overrides() -> list[str]:
    """The overrides of the bigger-run command in docs/ablations.md (not run here: it needs a GPU)."""
    text = (REPO / "docs" / "ablations.md").read_text()
    block = next(b for b in text.split("```bash")[1:] if "--grid.name=gpu" in b).split("```")[0]
    args = shlex.split(block.replace("\\\n", " "))
    assert args[:4] == ["python", "-m", "trainer", "ablation"]
    return [a for a in args[5:] if a.startswith("--")]


@pytest.mark.parametrize("overrides", [[], documented_gpu_overrides()], ids=["cpu", "documented-gpu"])
def test_every_pair_has_equal_active_params(overrides):
    grid = load_grid(CPU, overrides)
    tol = grid.section.active_tolerance
    for v in grid.variants.values():
        for other in (grid.section.control, *v.against):
            ref = grid.variants[other].active_params
            assert abs(v.active_params - ref) <= 2 * tol * ref
        # apart from the routers (n_experts × d_model per layer and kind) the match is exact
        m, c = v.model, grid.control.model
        routers = m.n_layers * m.d_model * (m.experts("attn")[0] + m.experts("mlp")[0])
        c_routers = c.n_layers * c.d_model * (c.experts("attn")[0] + c.experts("mlp")[0])
        assert v.active_params - routers == grid.control.active_params - c_routers
        with torch.device("meta"):
            built = JetMoE(m)
        assert sum(p.numel() for p in built.parameters()) == v.total_params


def test_dense_variants_are_dense_layers():
    grid = load_grid(CPU)
    torch.manual_seed(0)
    dense = JetMoE(grid.variants["dense"].model.replace(vocab_size=64, backend="torch"))
    for block in dense.layers:
        assert block.attn.q_proj.weight.shape[0] == block.attn.o_proj.weight.shape[0] == 1
        assert block.mlp.input_linear.weight.shape[0] == block.mlp.output_linear.weight.shape[0] == 1
        assert block.attn.router.top_k == block.mlp.router.top_k == 1
    out = dense(torch.randint(0, 64, (2, 6)))
    assert (out.expert_counts[:, :, 0] == 12).all()  # every token through the one expert of each kind
    moe_only = grid.variants["moe_only"].model
    assert moe_only.n_q_heads == moe_only.n_kv_heads == 3 and moe_only.ffn_hidden == grid.control.model.ffn_hidden


@pytest.mark.parametrize("text, match", [
    ("[variant.x]\n", r"unknown table \[variant\]; did you mean 'variants'"),
    ("[variants.x]\nn_expert = 4\n", r"variants.x.*n_expert.*n_experts"),
    ("[variants.x]\nagainst = ['nope']\n", r"'nope' is not another variant"),
    ("[variants.x]\ntop_k = 3\nn_experts = 2\n", r"variants.x.*top_k=3 exceeds n_experts=2"),
    ("[model]\nn_kv_heads = 3\n", r"variants.dense.*n_kv_heads = 3 × 3/2 = 4.5.*not whole.*--model.n_kv_heads=6"),
    ("[variants.x]\nn_experts = 64\n", r"variants.x.*away from the control.*active_tolerance"),
    ("[model]\nn_kv_heads = 4\nphase1_tokens = 5\n", r"\[model\].*phase1_tokens.*run keys go under \[run.model\]"),
    ("[run.train]\nphase1_token = 5\n", r"phase1_token.*phase1_tokens"),
])
def test_bad_grids_name_the_key(tmp_path, text, match):
    body = text if text.startswith("[model]") else "[model]\nn_kv_heads = 4\n" + text
    with pytest.raises(ConfigError, match=match):
        load_grid(write_grid(tmp_path, body))


def test_bad_override_and_control(tmp_path):
    p = write_grid(tmp_path, "[model]\nn_kv_heads = 2\n")
    with pytest.raises(ConfigError, match="unknown section 'trian'.*'train'"):
        load_grid(p, ["--trian.phase1_tokens=5"])
    with pytest.raises(ConfigError, match=r"control = 'dens' is not a variant"):
        load_grid(p, ["--grid.control=dens"])
    assert load_grid(p, ["--model.d_model=48"]).control.model.d_model == 48


def test_interval_by_hand():
    iv = interval([1.0, 2.0, 3.0], 0.95)
    # mean 2, s = 1, t_{0.975, 2} = 4.302653
    assert iv.mean == 2.0 and iv.n == 3 and math.isclose(iv.half, 4.302653 / math.sqrt(3), rel_tol=1e-6)
    assert math.isclose(interval([1.0, 2.0, 3.0], 0.90).half, 2.919986 / math.sqrt(3), rel_tol=1e-6)
    assert math.isinf(interval([5.0]).half)


@pytest.mark.parametrize("a, b, verdict", [
    (Interval(1.0, 0.1, 3), Interval(1.5, 0.2, 3), "lower"),     # |-0.5| > √(0.01 + 0.04) = 0.2236
    (Interval(1.5, 0.1, 3), Interval(1.0, 0.2, 3), "higher"),
    (Interval(1.0, 0.3, 3), Interval(1.2, 0.2, 3), "within spread"),  # 0.2 ≤ 0.3606
    (Interval(1.0, math.inf, 1), Interval(9.0, 0.0, 3), "within spread"),
])
def test_compare_by_hand(a, b, verdict):
    c = compare(a, b)
    assert c.verdict == verdict
    assert math.isclose(c.diff, a.mean - b.mean) and (math.isinf(c.half) or math.isclose(c.half, math.hypot(a.half, b.half)))


def test_paired_comparison_by_hand():
    # seeds move both variants together (5.1 → 5.3); per-seed differences -0.05, -0.04, -0.06: mean -0.05,
    # s = 0.01, half = 4.302653 · 0.01 / √3 = 0.024841
    a, b = {0: 5.10, 1: 5.20, 2: 5.30}, {0: 5.15, 1: 5.24, 2: 5.36}
    c = compare_paired(a, b)
    assert c.paired and c.verdict == "lower" and math.isclose(c.diff, -0.05, abs_tol=1e-12)
    assert math.isclose(c.half, 4.302653 * 0.01 / math.sqrt(3), rel_tol=1e-5)
    # unpaired, the same numbers cannot be told apart: each variant's spread hides the shift the seeds share
    u = compare(interval(list(a.values())), interval(list(b.values())))
    assert not u.paired and u.verdict == "within spread" and u.half > 0.3
    with pytest.raises(ValueError, match="no seed in common"):
        compare_paired({0: 1.0}, {1: 1.0})


def test_comparisons_pair_only_matching_seeds():
    def run(v, seed, x):
        return {"variant": v, "seed": seed, "final": {"overall": x, "mean": x + 1, "loss": {"web": x}}}
    results = {"grid": {"confidence": 0.95}, "variants": {"a": {}, "b": {}, "c": {}},
               "runs": [run("a", 0, 5.10), run("a", 1, 5.20), run("a", 2, 5.30),
                        run("b", 0, 5.15), run("b", 1, 5.24), run("b", 2, 5.36),
                        run("c", 3, 5.15), run("c", 4, 5.24), run("c", 5, 5.36)]}
    ab, ac = compare_runs(results, "a", "b"), compare_runs(results, "a", "c")
    assert ab.paired and ab.verdict == "lower"
    assert not ac.paired and ac.verdict == "within spread"  # other seeds: nothing to pair
    assert compare_runs(results, "a", "b", "mean").diff == pytest.approx(ab.diff)
    assert compare_runs(results, "a", "b", "web").paired


@pytest.mark.slow
def test_quick_grid_end_to_end(tmp_path, capsys):
    from tests.trainer_kit.runs import make_assets

    a = make_assets(tmp_path / "assets")
    out = tmp_path / "out"
    args = [str(CPU), "--quick", "--out", str(out), f"--model.config={a / 'model.toml'}",
            f"--data.corpus={a / 'corpus'}", f"--data.phase1_mixture={a / 'm1.toml'}",
            f"--data.phase2_mixture={a / 'm2.toml'}", "--model.vocab_size=512", "--model.d_model=32",
            "--model.head_dim=8", "--data.seq_len=32", "--data.micro_batch=4", "--train.batch_tokens=128",
            "--train.phase1_tokens=256", "--train.phase2_tokens=128", "--schedule.warmup_tokens=128",
            "--train.threads=1", "--grid.active_tolerance=0.05"]  # routers weigh more at d_model 32
    assert main(args + ["--grid.jobs=2"]) == 0
    printed = capsys.readouterr().out
    assert "14 runs, 2 at a time" in printed
    # a run's console output, stderr included, is in its train.log, not interleaved on the grid's console
    assert "val loss" not in capsys.readouterr().err and "val loss" in (out / "dense/seed-0/train.log").read_text()
    results = json.loads((out / "results.json").read_text())
    assert len(results["runs"]) == 7 * 2 and results["grid"]["quick"]
    for r in results["runs"]:
        assert r["tokens"] == 384 and set(r["final"]["loss"]) == {"web", "code", "math"}
        assert math.isfinite(r["final"]["mean"]) and r["tokens_per_s"] > 0
        assert [p["tokens"] for p in r["curve"]] == [0, 128, 256, 384]
        assert not (out / r["variant"] / f"seed-{r['seed']}" / "checkpoints").exists()
    load = next(r for r in results["runs"] if r["variant"] == "experts16")["expert_load"]["mlp"]
    assert load["n_experts"] == 16 and len(load["final_shares"]) == 2  # 2 layers
    assert next(r for r in results["runs"] if r["variant"] == "moe_only")["expert_load"]["attn"]["n_experts"] == 1
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 14 and {"val_loss_web", "val_loss_mean", "tokens_per_s"} <= set(rows[0])
    summary = (out / "summary.md").read_text()
    assert summary in printed
    # 6 variants against the control, plus moe_only and moa_only against the dense twin
    assert summary.count("seed-to-seed spread (|difference|") == 8
    assert "`moe_only` | `dense` |" in summary and "| `experts16` | mlp |" in summary
    for name in ("val_loss.png", "loss_vs_flops.png", "expert_load.png", "differences.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    # a rerun trains nothing and writes the same results (timings aside)
    assert main(args) == 0
    assert capsys.readouterr().out.count("already done") == 14
    again = json.loads((out / "results.json").read_text())
    assert [r["final"] for r in again["runs"]] == [r["final"] for r in results["runs"]]
    # one run at a time gives the same numbers as two at once: runs do not share state
    one = tmp_path / "one"
    args_one = [str(one) if a == str(out) else a for a in args]
    assert main(args_one + ["--grid.jobs=1", "--grid.seeds=[1]"]) == 0
    assert "7 runs, 1 at a time" in capsys.readouterr().out
    serial = json.loads((one / "results.json").read_text())["runs"]
    parallel = [r for r in results["runs"] if r["seed"] == 1]
    for key in ("curve", "final", "expert_load", "tokens"):
        assert [r[key] for r in serial] == [r[key] for r in parallel], key
