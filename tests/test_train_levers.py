"""The speed levers as a run applies them (trainer.build.build_model, from train.compile and
train.weight_casts): the opening lines say which were applied; per-block compile forced on CPU (aot_eager:
the same graphs without inductor's C++ build) takes the same steps as eager within fp32 rounding; a compile
that fails (inductor without a C compiler) warns once and takes the eager run's steps bit for bit; under bf16
the per-step weight cast cache takes bit-identical steps to casting in every forward; "per-step" in fp32
is refused before any work."""
import pytest

from tests.trainer_kit.runs import run_args, train_records
from trainer.build import build_model, precision_of
from trainer.config import load_run_config
from trainer.dist import DistInfo
from trainer.model import ModelConfig
from trainer.train import main

SIX_STEPS = "--train.phase1_tokens=1536"


def test_compiled_blocks_take_the_steps_of_eager(train_assets, reference_run, tmp_path, capsys):
    from torch._dynamo.utils import counters

    counters.clear()
    run = tmp_path / "run"
    assert main(run_args(train_assets, run, 1, SIX_STEPS, "--train.compile=true",
                         "--train.compile_backend=aot_eager")) == 0
    out, err = capsys.readouterr()
    assert "blocks compiled with aot_eager at their first forward (train.compile = true)" in out
    assert "torch.compile of the blocks failed" not in err       # it stayed compiled
    assert counters["stats"]["unique_graphs"] > 0                # and dynamo did trace the blocks
    got = train_records(run)
    ref = train_records(reference_run)[:6]
    for g, r in zip(got, ref, strict=True):
        assert g["loss"] == pytest.approx(r["loss"], rel=1e-5, abs=1e-6)
        assert g["grad_norm"] == pytest.approx(r["grad_norm"], rel=1e-4)
        assert g["expert_tokens"] == r["expert_tokens"]           # the same routing decisions


def test_a_run_whose_compile_fails_warns_once_and_takes_the_eager_steps(train_assets, reference_run, tmp_path,
                                                                          capsys, monkeypatch):
    # inductor as on a machine without a working C compiler: the real backend lookup, failing in the build
    import torch._dynamo
    import torch._inductor.compile_fx as inductor

    def no_compiler(*args, **kwargs):
        raise RuntimeError("no working C compiler (simulated)")

    monkeypatch.setattr(inductor, "compile_fx", no_compiler)
    torch._dynamo.reset()  # no compiled graph of another test may serve these blocks
    run = tmp_path / "run"
    assert main(run_args(train_assets, run, 1, SIX_STEPS, "--train.compile=true")) == 0
    out, err = capsys.readouterr()
    assert "blocks compiled with inductor at their first forward (train.compile = true)" in out
    assert err.count("torch.compile of the blocks failed") == 1
    assert "no working C compiler (simulated)" in err and "running eager" in err
    got = train_records(run)
    ref = train_records(reference_run)[:6]
    for g, r in zip(got, ref, strict=True):  # the failed forward finished eagerly: the eager run's bits
        assert (g["loss"], g["grad_norm"], g["expert_tokens"]) == (r["loss"], r["grad_norm"], r["expert_tokens"])
    torch._dynamo.reset()


def test_cpu_defaults_say_what_they_apply(train_assets, tmp_path, capsys):
    assert main(run_args(train_assets, tmp_path / "run", 1, "--train.phase1_tokens=1024")) == 0
    out = capsys.readouterr().out
    assert ("speed: fp32; no weight casts; blocks eager (train.compile = auto: off on CPU); chunked cross-entropy"
            in out)


def test_bf16_cast_cache_takes_the_same_steps_as_per_forward_casts(train_assets, tmp_path, capsys):
    runs = {}
    for casts in ("auto", "per-forward"):
        run = tmp_path / casts
        assert main(run_args(train_assets, run, 1, "--train.phase1_tokens=1024", "--train.precision=bf16",
                             f"--train.weight_casts={casts}")) == 0
        runs[casts] = train_records(run)
    out = capsys.readouterr().out
    assert "matmul weights cast to bf16 once per optimizer step (cast cache)" in out
    assert "matmul weights cast by autocast in every forward (train.weight_casts = per-forward)" in out
    for a, b in zip(runs["auto"], runs["per-forward"], strict=True):
        assert (a["loss"], a["grad_norm"], a["expert_tokens"]) == (b["loss"], b["grad_norm"], b["expert_tokens"])


def test_per_step_casts_need_bf16(train_assets, tmp_path, capsys):
    assert main(run_args(train_assets, tmp_path / "a", 1, "--train.precision=fp32",
                         "--train.weight_casts=per-step")) == 2
    assert 'train.weight_casts = "per-step" needs bf16 training' in capsys.readouterr().err
    # precision "auto" resolves to fp32 on CPU: refused when the model is built, before any step
    assert main(run_args(train_assets, tmp_path / "b", 1, "--train.weight_casts=per-step")) == 2
    err = capsys.readouterr().err
    assert 'needs bf16 training, but this run trains in fp32 (train.precision = "auto" is fp32 on CPU)' in err
    assert not (tmp_path / "b" / "metrics.jsonl").exists()


def test_build_model_on_one_process():
    cfg = load_run_config(None, ["--train.precision=bf16", "--train.compile=true",
                                 "--train.compile_backend=aot_eager", "--parallel.activation_checkpoint=true"])
    mcfg = ModelConfig(vocab_size=64, d_model=32, n_layers=2, n_kv_heads=2, head_dim=8, n_experts=4, top_k=2,
                       ffn_hidden=48, max_seq_len=64)
    info = DistInfo()
    assert precision_of(cfg, info) == "bf16"
    built = build_model(cfg, mcfg, info)
    lv = built.levers
    assert (lv.precision, lv.fsdp, lv.weights, lv.compile, lv.activation_checkpoint) == (
        "bf16", False, "cast-cache", "aot_eager", True)
    assert built.model.weight_casts is not None                      # watching this optimizer
    assert all(getattr(layer, "_compiled_call_impl", None) is not None for layer in built.model.layers)
    assert built.optimizer.param_groups and all(p.device.type == "cpu" for p in built.model.parameters())
