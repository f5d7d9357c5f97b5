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

ROOT = Path(__file__).resolve().parents[1]
needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA path")


def load_bench(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_gpu_train_variants_transformers_and_profile_on_cpu(capsys):
    bench = load_bench("gpu_train")
    # the tiny run config's model with 2 layers; bf16 forced so the weight-cast plan applies on CPU
    b = bench.make_bench(str(ROOT / "trainer/configs/tiny.toml"),
                         ["--data.seq_len=16", "--data.micro_batch=2", "--train.batch_tokens=256",
                          "--train.precision=bf16"], layers=2, info=D.DistInfo(), max_accum=2, steps=2, warmup=1,
                         device_name="cpu", profile=True)
    assert (b.run_accum, len(b.batches), b.batches[0].tokens.shape) == (8, 2, (2, 17))  # 256 / (16 × 2) = 8
    b.peak_flops = 1e12
    res = bench.run_variants(b, ["defaults", "per-forward-casts", "torch-backend"])
    for name in ("defaults", "per-forward-casts", "torch-backend"):
        r = res[name]
        assert r["tokens_per_s"] > 0 and r["micro_batch_s"] > 0 and r["update_s"] >= 0
        # the update's cost spread over more micro-batches: tokens/s at the run's accumulation is higher
        assert r["tokens_per_s_run_accum"] >= r["tokens_per_s"]
        assert r["mfu_6n"] == pytest.approx(r["tokens_per_s"] * b.f6n / 1e12)
        assert r["mfu_model"] > r["mfu_6n"]  # the model count adds attention
        assert r["compiled"] == "eager"      # train.compile = auto is off on CPU
    # each row is the trainer's build of the run config plus the variant's overrides, and says so
    assert "(cast cache)" in res["defaults"]["levers"] and "train.compile = auto: off on CPU" in res["defaults"]["levers"]
    assert "per-forward" in res["per-forward-casts"]["levers"]
    assert res["torch-backend"]["backends"] == {"moa": "torch", "moe": "torch"} and res["torch-backend"]["full_logits"]
    assert all(res["profile"]["profile_ms"][f] > 0 for f in ("GEMM", "attention", "permutation", "optimizer"))
    out = capsys.readouterr().out
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert [x["variant"] for x in lines] == ["defaults", "defaults", "per-forward-casts", "torch-backend"]  # profile 2nd
    # transformers' JetMoeForCausalLM through the same train_step
    hf = bench.time_transformers(b)
    assert "error" not in hf and hf["tokens_per_s"] > 0 and hf["micro_batch"] == 2 and hf["impl"].startswith("JetMoe")
    bench.report_hf(hf, res, is_main=True)
    assert hf["speedup_ours_vs_hf"] > 0


def test_gpu_train_times_the_trainers_step(monkeypatch):
    """The timed function is trainer.step.train_step itself, called with the bench's mark hook."""
    bench = load_bench("gpu_train")
    from trainer import step as S
    calls = []

    def spy(setup, batches, lr):
        calls.append(setup.mark is not None)
        return S.train_step(setup, batches, lr)

    monkeypatch.setattr(bench, "train_step", spy)
    assert bench.train_step is spy and S.train_step.__module__ == "trainer.step"
    b = bench.make_bench(str(ROOT / "trainer/configs/tiny.toml"), ["--data.seq_len=16", "--data.micro_batch=2",
                         "--train.batch_tokens=64"], layers=1, info=D.DistInfo(), max_accum=4, steps=2, warmup=1,
                         device_name="cpu")
    bench.run_variants(b, ["defaults"])
    assert calls == [False, True, True]  # warmup, then two timed steps with the mark hook


def test_gpu_train_plan_only_and_variant_names(capsys):
    bench = load_bench("gpu_train")
    assert bench.main(["--plan-only"]) == 0
    assert "memory plan" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.main(["--variants", "defaults,warp-speed"])
    assert "unknown ['warp-speed']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--plan-only", "--fast"])
    assert "overrides are written --section.key=value" in capsys.readouterr().err


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
