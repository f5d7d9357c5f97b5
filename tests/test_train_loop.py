"""The training loop end to end on a tiny corpus and model: phase 1 → phase 2, the WSD lr at the phase
boundaries, kill -9 + resume == uninterrupted (bit for bit, twice), corrupt newest checkpoint → previous,
NaN stops with the step and the last good checkpoint, bad run configs fail with a clear message."""
import random

import pytest
import torch

from tests.trainer_kit.runs import MODEL, PHASE1_STEPS, PHASE2_STEPS, run_args, run_cli, train_records
from trainer import checkpoint as ckpt
from trainer.metrics import read_jsonl
from trainer.train import main


def test_phases_schedule_and_mixture_switch(train_assets, reference_run):
    recs = train_records(reference_run)
    assert [r["step"] for r in recs] == list(range(1, PHASE1_STEPS + PHASE2_STEPS + 1))
    lr = {r["step"]: r["lr"] for r in recs}
    # Logged step s reports the lr used by optimizer step s-1 (0-based).
    assert lr[1] == pytest.approx(3e-4)                     # warmup from 10% of max
    assert lr[5] == pytest.approx(3e-3)                     # warmup = 1024 tokens = 4 steps, then stable
    assert lr[PHASE1_STEPS] == pytest.approx(3e-3)          # stable to the end of phase 1
    assert lr[PHASE1_STEPS + 1] < 3e-3                      # phase 2 decays from its first step
    assert lr[PHASE1_STEPS + PHASE2_STEPS] == pytest.approx(3e-4)   # down to 10% of max
    assert all(r["phase"] == (1 if r["step"] <= PHASE1_STEPS else 2) for r in recs)
    # Phase 1 never draws math (not in m1); phase 2 does (m2 gives it half the tokens).
    assert all("math" not in r["source_tokens"] for r in recs[:PHASE1_STEPS])
    p2 = [r["source_tokens"].get("math", 0) for r in recs[PHASE1_STEPS:]]
    assert sum(p2) == pytest.approx(0.5 * PHASE2_STEPS * 256, rel=0.15)
    for r in recs:
        assert sum(r["source_tokens"].values()) == 256
        # every token visits top_k = 2 experts in every MoA and MoE layer
        assert all(sum(layer) == 2 * 256 for layer in r["expert_tokens"]["attn"] + r["expert_tokens"]["mlp"])
        assert all(k in r for k in ("loss", "lm_loss", "load_balance", "z_loss", "grad_norm", "tokens_per_s"))
    # Phase 2 starts from phase 1's weights: the val loss of a source both mixtures share is identical
    # at the end of phase 1 and at the start of phase 2 (same step, same weights, same val data).
    vals = [r for r in read_jsonl(reference_run / "metrics.jsonl") if r["kind"] == "val" and r["step"] == PHASE1_STEPS]
    assert [v["phase"] for v in vals] == [1, 2]
    assert vals[0]["loss"]["web"] == vals[1]["loss"]["web"] and "math" in vals[1]["loss"]
    # Checkpoints: the last K plus phase 1's final one (phase 2 restarts from it).
    steps = [s for s, _ in ckpt.list_checkpoints(reference_run)]
    assert PHASE1_STEPS in steps and steps[-1] == PHASE1_STEPS + PHASE2_STEPS and len(steps) == 3
    final = ckpt.find_latest(reference_run)
    assert final.state["phase"] == 2 and final.state["loader"]["mixture_name"] == "m2"
    # ... and AdamW carried on: its step counters count both phases' steps.
    optim = torch.load(final.path / "optimizer.pt", weights_only=True)
    assert {int(v["step"]) for v in optim["state"].values()} == {PHASE1_STEPS + PHASE2_STEPS}
    assert (final.path / "tokenizer.json").read_bytes() == (train_assets / "corpus" / "tokenizer.json").read_bytes()
    # Learning happened: the loss of the last steps is below the first ones.
    assert sum(r["lm_loss"] for r in recs[-5:]) < sum(r["lm_loss"] for r in recs[:5])


def test_phase_reruns_are_noops_and_order_is_enforced(train_assets, reference_run, tmp_path, capsys):
    assert main(run_args(train_assets, reference_run, 2)) == 0
    assert "already complete" in capsys.readouterr().out
    assert main(run_args(train_assets, reference_run, 1)) == 2                  # phase 1 of a run in phase 2
    assert "phase-2 checkpoint" in capsys.readouterr().err
    assert main(run_args(train_assets, tmp_path / "fresh", 2)) == 2         # phase 2 with no phase 1
    assert "run phase 1 first" in capsys.readouterr().err


def test_kill_9_twice_then_resume_is_bit_exact(train_assets, reference_run, tmp_path):
    run = tmp_path / "run"
    rng = random.Random(1234)
    kill_step = rng.randrange(6, 14)                       # a random step, off the checkpoint grid or on it
    r = run_cli(run_args(train_assets, run, 1), faults={"kill_after_step": kill_step})
    assert r.returncode == -9, r.stderr[-2000:]
    assert train_records(run)[-1]["step"] == kill_step
    # Second kill: half-way through writing the step-15 checkpoint (its temp folder is left behind).
    r = run_cli(run_args(train_assets, run, 1), faults={"kill_in_checkpoint": [15, "optimizer.pt"]})
    assert r.returncode == -9, r.stderr[-2000:]
    assert (run / "checkpoints" / ".tmp-step-00000015").exists()
    assert ckpt.find_latest(run).step == 10
    r = run_cli(run_args(train_assets, run, 1))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resuming from" in r.stdout and "val loss" in r.stdout
    assert not (run / "checkpoints" / ".tmp-step-00000015").exists()
    ref = [(x["step"], x["loss"], x["grad_norm"]) for x in train_records(reference_run)[:PHASE1_STEPS]]
    got = [(x["step"], x["loss"], x["grad_norm"]) for x in train_records(run)]
    assert got == ref                                        # every step once, equal floats
    a = ckpt.step_dir(reference_run, PHASE1_STEPS) / "model.safetensors"
    b = ckpt.step_dir(run, PHASE1_STEPS) / "model.safetensors"
    assert a.read_bytes() == b.read_bytes()


def test_corrupt_latest_falls_back_and_replays_exactly(train_assets, reference_run, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(run_args(train_assets, run, 1)) == 0
    last = ckpt.step_dir(run, PHASE1_STEPS)
    good = (last / "model.safetensors").read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 3] ^= 0x01
    (last / "model.safetensors").write_bytes(bytes(bad))
    capsys.readouterr()
    assert main(run_args(train_assets, run, 1)) == 0               # falls back to step 15 and redoes 16..20
    err = capsys.readouterr().err
    assert "step-00000020 is unusable" in err and "step-00000015" in err
    assert (last / "model.safetensors").read_bytes() == good
    assert ckpt.verify(last) is None
    assert [x["loss"] for x in train_records(run)] == [x["loss"] for x in train_records(reference_run)[:PHASE1_STEPS]]


def test_nan_loss_stops_naming_step_and_checkpoint(train_assets, tmp_path, capsys):
    run = tmp_path / "run"
    rc = main(run_args(train_assets, run, 1, "--optim.lr=1e30", "--schedule.warmup_tokens=0",
                       "--checkpoint.every_steps=1", "--optim.grad_clip=0"))
    err = capsys.readouterr().err
    assert rc == 3, err
    assert "loss is nan" in err or "loss is inf" in err
    step = int(err.split(" at step ")[1].split()[0])
    assert f"step-{step:08d}" in err and "Last good checkpoint" in err
    assert ckpt.find_latest(run).step == step                  # the step before it diverged was saved


@pytest.mark.parametrize("extra,needle", [
    (["--optim.betas=0.9"], "optim.betas"),
    (["--data.seq_len=128"], "max_seq_len"),
    (["--data.micro_batch=3"], "micro_batch"),
    (["--model.config=nope"], "known model configs"),
    (["--data.corpus=/nonexistent/corpus"], "/nonexistent/corpus"),
    (["--train.batch_tokens=100"], "train.batch_tokens"),
])
def test_bad_run_configs_fail_clearly(train_assets, tmp_path, capsys, extra, needle):
    assert main(run_args(train_assets, tmp_path / "run", 1, *extra)) == 2
    err = capsys.readouterr().err
    assert needle in err, err


def test_vocab_mismatch_is_refused(train_assets, tmp_path, capsys):
    m = tmp_path / "m.toml"
    m.write_text(MODEL.replace("vocab_size = 512", "vocab_size = 1024"))
    assert main(run_args(train_assets, tmp_path / "run", 1, f"--model.config={m}")) == 2
    assert "1024" in capsys.readouterr().err


def test_changed_run_config_on_resume_is_refused(train_assets, reference_run, capsys):
    assert main(run_args(train_assets, reference_run, 2, "--optim.lr=1e-3")) == 2
    assert "optim.lr" in capsys.readouterr().err


def test_activation_checkpointing_gives_the_same_steps(train_assets, reference_run, tmp_path):
    run = tmp_path / "run"
    assert main(run_args(train_assets, run, 1, "--parallel.activation_checkpoint=true",
                         "--train.phase1_tokens=1536")) == 0
    got = [x["loss"] for x in train_records(run)]
    ref = [x["loss"] for x in train_records(reference_run)[:6]]
    assert got == pytest.approx(ref, rel=1e-6, abs=1e-7)
    # the checkpoint's weights carry the plain names (export and phase 2 read them without the wrapper)
    from safetensors import safe_open
    with safe_open(str(ckpt.step_dir(run, 6) / "model.safetensors"), "pt") as f:
        assert not any("_checkpoint_wrapped_module" in k for k in f.keys())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_bf16_fused_run(train_assets, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(run_args(train_assets, run, 1, "--train.phase1_tokens=1536")) == 0
    out, err = capsys.readouterr()
    # the CUDA defaults: bf16 weight copies once per step, blocks compiled with inductor (and staying so)
    assert "(cast cache)" in out and "blocks compiled with inductor" in out, out
    assert "torch.compile of the blocks failed" not in err, err
    recs = train_records(run)
    assert len(recs) == 6 and all(r["loss"] == r["loss"] for r in recs)
    from trainer.metrics import device_peak_tflops
    if device_peak_tflops(torch.cuda.get_device_name()):
        assert all(0 < r["mfu"] < 1 for r in recs)
