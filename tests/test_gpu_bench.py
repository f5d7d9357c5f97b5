"""The GPU benches' logic, run on CPU on a tiny model (their CUDA runs are owed to a GPU session), and their
clear exit without CUDA; bench/gpu_check.sh starts and says it needs CUDA."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainer import dist as D
from trainer.config import load_run_config
from trainer.model import ModelConfig, count_params, flops_per_token

ROOT = Path(__file__).resolve().parents[1]
needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA path")


def load_bench(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def tiny():
    return ModelConfig(vocab_size=128, d_model=32, n_layers=2, n_kv_heads=2, head_dim=8, n_experts=4, top_k=2,
                       ffn_hidden=48, max_seq_len=32, init_std=0.1)


def test_gpu_train_variants_transformers_and_profile_on_cpu(capsys):
    bench = load_bench("gpu_train")
    mcfg = tiny()
    run = load_run_config(ROOT / "trainer/configs/tiny.toml")
    info = D.DistInfo()
    _, active = count_params(mcfg)
    f6n, fmodel = 6.0 * active, flops_per_token(mcfg, 16)
    batches = [torch.randint(0, 128, (2, 17)) for _ in range(2)]
    common = {"bench": "gpu_train", "plan_mem_gib": 0.1}
    res = bench.run_variants(mcfg, run, info, ["eager", "no-compile", "torch-backend"], batches, steps=2, warmup=1,
                             common=common, accum=2, run_accum=8, f6n=f6n, fmodel=fmodel, peak_flops=1e12,
                             profile=True)
    for name in ("eager", "no-compile", "torch-backend"):
        r = res[name]
        assert r["tokens_per_s"] > 0 and r["micro_batch_s"] > 0 and r["update_s"] >= 0
        # the update's cost spread over more micro-batches: tokens/s at the run's accumulation is higher
        assert r["tokens_per_s_run_accum"] >= r["tokens_per_s"]
        assert r["mfu_6n"] == pytest.approx(r["tokens_per_s"] * f6n / 1e12)
        assert r["mfu_model"] > r["mfu_6n"]  # the model count adds attention
    assert res["torch-backend"]["backends"] == {"moa": "torch", "moe": "torch"}
    assert res["no-compile"]["cast_cache"] and not res["eager"]["cast_cache"]
    assert all(res["profile"]["profile_ms"][f] > 0 for f in ("GEMM", "attention", "permutation", "optimizer"))
    out = capsys.readouterr().out
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert [x["variant"] for x in lines] == ["eager", "eager", "no-compile", "torch-backend"]  # profile 2nd
    # transformers' JetMoeForCausalLM with the same step code
    hf = bench.time_transformers(mcfg, run, info, 2, 16, 2, 8, 2, 1, common, f6n, fmodel, 1e12)
    assert "error" not in hf and hf["tokens_per_s"] > 0 and hf["micro_batch"] == 2 and hf["impl"].startswith("JetMoe")
    bench.report_hf(hf, res, is_main=True)
    assert hf["speedup_ours_vs_hf"] > 0


def test_gpu_train_plan_only_and_variant_names(capsys):
    bench = load_bench("gpu_train")
    assert bench.main(["--plan-only"]) == 0
    assert "memory plan" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.main(["--variants", "all,warp-speed"])
    assert "unknown ['warp-speed']" in capsys.readouterr().err


@needs_no_cuda
def test_gpu_train_without_cuda_says_the_figures_are_owed(capsys):
    assert load_bench("gpu_train").main([]) == 1
    captured = capsys.readouterr()
    assert "needs CUDA" in captured.err and json.loads(captured.out.splitlines()[-1])["gpu_run"] == "owed: no CUDA"


@needs_no_cuda
def test_gpu_check_script_starts_and_exits_cleanly_without_cuda(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    r = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh")], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "needs CUDA" in r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == {"gpu_check": "skipped", "reason": "no CUDA device"}
