"""SFT then DPO on the chat sample with a tiny model: what they log and learn, their checkpoints, kill -9 + resume
equal to the uninterrupted run bit for bit (losses, weights, optimizer state), a finished stage rerun doing
nothing, and the errors: a wrong starting checkpoint, a changed key on resume, a model that does not fit the
corpus."""
from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from tests.trainer_kit.chat import DPO_BATCH, SFT_BATCH, align_args, records, run_cli
from trainer import checkpoint as ckpt
from trainer.align.run import dpo_main, sft_main


def test_sft_logs_and_learns(chat_runs):
    sft, _ = chat_runs
    train = records(sft, "train")
    assert [r["step"] for r in train] == list(range(1, 8)) and {r["stage"] for r in train} == {"sft"}
    assert train[0]["lr"] == 0.0 and max(r["lr"] for r in train) == pytest.approx(3e-3)  # warmup from 0, cosine
    for r in train:
        assert r["loss"] == r["lm_loss"] and math.isfinite(r["grad_norm"]) and r["trained_tokens"] > 0
        assert r["step_tokens"] > r["trained_tokens"] and len(r["expert_tokens"]["mlp"]) == 2
    assert train[-1]["epoch"] == pytest.approx(7 * SFT_BATCH / 200)
    assert train[-1]["tokens"] == sum(r["step_tokens"] for r in train)
    val = records(sft, "val")
    assert [v["step"] for v in val] == [0, 4, 7] and len(val[0]["loss"]) == 6  # the six SFT sets
    assert val[-1]["mean"] < val[0]["mean"] - 0.05
    state = json.loads((ckpt.step_dir(sft, 7) / "train_state.json").read_text())
    assert state["stage"] == "sft" and state["phase_end"] and state["step"] == 7
    assert [p.name for _, p in ckpt.list_checkpoints(sft)] == ["step-00000006", "step-00000007"]


def test_dpo_logs_rewards_margins_accuracy(chat_runs):
    _, dpo = chat_runs
    train = records(dpo, "train")
    assert [r["step"] for r in train] == list(range(1, len(train) + 1)) and len(train) >= 5
    first = train[0]  # the policy is the reference before the first update
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-6) and first["margins"] == 0.0
    assert first["rewards_chosen"] == first["rewards_rejected"] == 0.0 and first["accuracy"] == 0.0
    for r in train:
        assert r["margins"] == pytest.approx(r["rewards_chosen"] - r["rewards_rejected"], abs=1e-12)
        assert r["pairs"] == DPO_BATCH and 0 <= r["accuracy"] <= 1 and r["logps_chosen"] < 0
    assert train[-1]["margins"] > 0 and train[-1]["loss"] < math.log(2)
    val = records(dpo, "val")
    assert val[-1]["margins"] > val[0]["margins"] == 0.0 and val[-1]["mean"] < math.log(2)
    state = json.loads((ckpt.step_dir(dpo, len(train)) / "train_state.json").read_text())
    assert state["stage"] == "dpo" and state["phase_end"] and state["init"].endswith("step-00000007")


def test_finished_stage_reruns_as_a_noop(chat_assets, chat_runs, capsys):
    sft, _ = chat_runs
    before = (sft / "metrics.jsonl").read_bytes()
    assert sft_main(align_args(chat_assets, sft, "sft")) == 0
    assert "sft of" in capsys.readouterr().out and (sft / "metrics.jsonl").read_bytes() == before


def _same_run(a, b, last: int) -> None:
    ra, rb = records(a, "train"), records(b, "train")
    keys = ("loss", "grad_norm", "lr", "step_tokens")
    assert [[r[k] for k in keys] for r in ra] == [[r[k] for k in keys] for r in rb]
    for name in ("model.safetensors", "optimizer.pt"):
        assert (ckpt.step_dir(a, last) / name).read_bytes() == (ckpt.step_dir(b, last) / name).read_bytes(), name


@pytest.mark.parametrize("stage", ["sft", "dpo"])
def test_kill_9_then_resume_is_bit_exact(chat_assets, chat_runs, tmp_path, stage):
    ref = chat_runs[0] if stage == "sft" else chat_runs[1]
    extra = [] if stage == "sft" else [f"--init.checkpoint={chat_runs[0]}"]
    run = tmp_path / stage
    args = align_args(chat_assets, run, stage, *extra)
    r = run_cli(args, command=stage, faults={"kill_after_step": 4})
    assert r.returncode == -9, r.stderr[-2000:]
    assert records(run, "train")[-1]["step"] == 4
    r = run_cli(args, command=stage, faults={"kill_in_checkpoint": [6, "optimizer.pt"]})
    assert r.returncode == -9 and "resuming from" in r.stdout and "step-00000003" in r.stdout, r.stderr[-2000:]
    r = run_cli(args, command=stage)
    assert r.returncode == 0, r.stderr[-2000:]
    last = len(records(ref, "train"))
    _same_run(ref, run, last)
    assert not list((run / "checkpoints").glob(".tmp-*"))


def test_wrong_starting_points_are_refused(chat_assets, chat_runs, tmp_path, capsys):
    sft, dpo = chat_runs
    assert sft_main(align_args(chat_assets, tmp_path / "a", "sft", f"--init.checkpoint={sft}")) == 2
    err = capsys.readouterr().err
    assert "is step 7 of stage sft, not the final checkpoint of pretraining phase 2" in err and "make phase2" in err
    assert dpo_main(align_args(chat_assets, tmp_path / "b", "dpo", f"--init.checkpoint={tmp_path / 'none'}")) == 2
    assert "neither a checkpoint folder" in capsys.readouterr().err
    # a DPO run folder is not where SFT or DPO continue: the stage names the one it holds
    assert sft_main(align_args(chat_assets, dpo, "sft")) == 2
    assert "is not a sft checkpoint (stage 'dpo'" in capsys.readouterr().err


def test_changed_key_on_resume_is_refused(chat_assets, chat_runs, capsys):
    sft, _ = chat_runs
    assert sft_main(align_args(chat_assets, sft, "sft", "--optim.lr=1e-3")) == 2
    assert "optim.lr = 0.001 but the run in" in capsys.readouterr().err


def test_model_must_fit_the_corpus(chat_assets, tmp_path, capsys):
    from trainer.model import JetMoE, ModelConfig, save_checkpoint_weights
    from tests.trainer_kit.chat import MODEL

    other = tmp_path / "base512"
    save_checkpoint_weights(JetMoE(ModelConfig(**{**MODEL, "vocab_size": 512})), other)
    shutil.copyfile(chat_assets / "tokenizer.json", other / "tokenizer.json")
    assert sft_main(align_args(chat_assets, tmp_path / "r", "sft", f"--init.checkpoint={other}")) == 2
    assert "vocab_size is 1024 but the model in" in capsys.readouterr().err
    assert sft_main(align_args(chat_assets, tmp_path / "r", "sft", "--data.max_len=129")) == 2
    assert "data.max_len = 129 exceeds the model's max_seq_len = 128" in capsys.readouterr().err
    assert sft_main(align_args(chat_assets, tmp_path / "r", "sft", "--train.batch=6")) == 2
    assert "train.batch = 6 conversations is not a multiple of data.micro_batch × ranks = 4 × 1" in \
        capsys.readouterr().err


def test_router_aux_loss_is_added_when_asked(chat_assets, tmp_path):
    run = tmp_path / "aux"
    assert sft_main(align_args(chat_assets, run, "sft", "--train.router_aux_loss=true", "--train.epochs=0.08")) == 0
    from trainer.model import read_model_config
    cfg = read_model_config(chat_assets / "base")
    for r in records(run, "train"):
        want = r["lm_loss"] + cfg.load_balance_coef * r["load_balance"] + cfg.z_loss_coef * r["z_loss"]
        assert r["loss"] == pytest.approx(want, rel=1e-9) and r["loss"] > r["lm_loss"]
    assert torch.isfinite(torch.tensor(records(run, "val")[-1]["mean"]))
