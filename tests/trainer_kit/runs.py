"""Tiny training runs for the trainer's tests: a 2-layer JetMoE on a 3-source token corpus, 20 + 10 steps.

    assets = make_assets(tmp_path)                  # corpus/, model.toml, m1.toml (phase 1), m2.toml (phase 2)
    main(run_args(assets, run_dir, phase=1))        # trainer.train.main, in this process
    run_cli(run_args(assets, run_dir, 1))           # `python -m trainer train ...` in its own process
    run_cli(args, faults={"kill_after_step": 7})    # ... with a SIGKILL hook installed (tests.trainer_kit.faults)
    train_records(run_dir)                          # the run's metrics.jsonl lines of kind "train"
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.trainer_kit.corpus import make_corpus

ROOT = Path(__file__).resolve().parents[2]
MODEL = """[model]
vocab_size = 512
d_model = 32
n_layers = 2
n_kv_heads = 2
head_dim = 8
n_experts = 4
top_k = 2
ffn_hidden = 64
max_seq_len = 64
"""
PHASE1_STEPS, PHASE2_STEPS = 20, 10
BATCH_TOKENS = 256


def make_assets(d: Path) -> Path:
    make_corpus(d / "corpus", sources={"web": 30_000, "code": 10_000, "math": 5_000}, vocab=512, seed=0)
    (d / "model.toml").write_text(MODEL)
    (d / "m1.toml").write_text('name = "m1"\n[sources]\nweb = 3\ncode = 1\n')
    (d / "m2.toml").write_text('name = "m2"\n[sources]\nweb = 1\ncode = 1\nmath = 2\n')
    return d


def run_args(assets: Path, run_dir, phase: int, *extra: str) -> list[str]:
    return ["trainer/configs/tiny.toml", "--phase", str(phase), "--run-dir", str(run_dir),
            f"--model.config={assets / 'model.toml'}", f"--data.corpus={assets / 'corpus'}",
            f"--data.phase1_mixture={assets / 'm1.toml'}", f"--data.phase2_mixture={assets / 'm2.toml'}",
            "--data.seq_len=32", "--data.micro_batch=4", "--data.prefetch=2", f"--train.batch_tokens={BATCH_TOKENS}",
            f"--train.phase1_tokens={PHASE1_STEPS * BATCH_TOKENS}",
            f"--train.phase2_tokens={PHASE2_STEPS * BATCH_TOKENS}",
            "--schedule.warmup_tokens=1024", "--optim.lr=3e-3", "--checkpoint.every_steps=5",
            "--checkpoint.keep_last=2", "--log.val_every_steps=10", "--log.val_batches=1", "--log.progress=false",
            "--log.tensorboard=false", "--train.threads=1", *extra]


def train_records(run_dir) -> list[dict]:
    from trainer.metrics import read_jsonl

    return [r for r in read_jsonl(Path(run_dir) / "metrics.jsonl") if r["kind"] == "train"]


def run_cli(args: list[str], faults: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python -m trainer train <args>` in its own process (so it can be killed with SIGKILL), from the
    repository root, with this process's PYTHONPATH; `faults` is a `tests.trainer_kit.faults` spec."""
    head = ["-m", "trainer"] if faults is None else ["-m", "tests.trainer_kit.faults", json.dumps(faults)]
    return subprocess.run([sys.executable, *head, "train", *args], cwd=ROOT, env=dict(os.environ),
                          capture_output=True, text=True, timeout=timeout)
