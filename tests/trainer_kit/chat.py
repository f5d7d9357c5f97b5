"""Tiny SFT and DPO runs for the alignment tests: a 2-layer JetMoE on the embedded alignment sample.

    assets = make_chat_assets(tmp_path)         # tokenizer.json, shards/ (the chat corpus), base/ (a checkpoint)
    main_sft(align_args(assets, run, "sft"))    # trainer.align.run in this process
    run_cli(align_args(assets, run, "dpo", f"--init.checkpoint={sft_run}"), command="dpo")   # its own process
    records(run, "train")                       # the run's metrics.jsonl lines of one kind

The chat corpus is built by the documented command (`make corpus CORPUS=chat_sample`, offline) with a byte-level
BPE of 1,024 tokens trained on the samples (tests.corpus_kit.chat_kit), so its rows are the template's real
ids; the base checkpoint is a freshly initialised tiny model with that tokenizer (what SFT starts from).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from tests.corpus_kit.chat_kit import byte_bpe_tokenizer, make_chat_corpus

ROOT = Path(__file__).resolve().parents[2]
MODEL = dict(vocab_size=1024, d_model=32, n_layers=2, n_kv_heads=2, head_dim=8, n_experts=4, top_k=2, ffn_hidden=64,
             max_seq_len=128, name="chat-test")
SFT_BATCH, DPO_BATCH = 8, 4


def make_chat_assets(d: Path) -> Path:
    from trainer.model import JetMoE, ModelConfig, save_checkpoint_weights

    d.mkdir(parents=True, exist_ok=True)
    tok = byte_bpe_tokenizer(d / "tokenizer.json")
    r, shards = make_chat_corpus(d, tok)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    torch.manual_seed(0)
    base = d / "base"
    save_checkpoint_weights(JetMoE(ModelConfig(**MODEL)), base)
    shutil.copyfile(tok, base / "tokenizer.json")
    return d


def align_args(assets: Path, run_dir, stage: str, *extra: str) -> list[str]:
    """A short run of `stage` on the assets: SFT 8 conversations a step for a quarter epoch (7 steps), DPO 4
    pairs a step for one epoch (10 steps); checkpoints every 3 steps."""
    common = [f"trainer/configs/align/{stage}-tiny.toml", "--run-dir", str(run_dir),
              f"--data.corpus={assets / 'shards'}", "--data.max_len=128", "--train.threads=1",
              "--checkpoint.every_steps=3", "--checkpoint.keep_last=2", "--log.val_every_steps=4",
              "--log.val_batches=1", "--log.val_batch_size=4", "--log.progress=false", "--log.tensorboard=false"]
    if stage == "sft":
        common += [f"--init.checkpoint={assets / 'base'}", "--data.micro_batch=4", f"--train.batch={SFT_BATCH}",
                   "--train.epochs=0.25", "--optim.lr=3e-3"]
    else:
        common += ["--data.micro_batch=2", f"--train.batch={DPO_BATCH}", "--train.epochs=1", "--optim.lr=1e-3"]
    return [*common, *extra]


def records(run_dir, kind: str) -> list[dict]:
    from trainer.metrics import read_jsonl

    return [r for r in read_jsonl(Path(run_dir) / "metrics.jsonl") if r["kind"] == kind]


def run_cli(args: list[str], command: str = "sft", faults: dict | None = None,
            timeout: int = 300) -> subprocess.CompletedProcess:
    """`python -m trainer <command> <args>` in its own process (killable), from the repository root."""
    head = ["-m", "trainer"] if faults is None else ["-m", "tests.trainer_kit.faults", json.dumps(faults)]
    return subprocess.run([sys.executable, *head, command, *args], cwd=ROOT, env=dict(os.environ),
                          capture_output=True, text=True, timeout=timeout)
