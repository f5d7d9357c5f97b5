"""Alignment step throughput on CPU: tokens/s of an SFT step and a DPO step vs a pretraining step, same model.

    python bench/bench_align.py            # quick: a few steps of each (~1-2 min on 2 busy cores)
    python bench/bench_align.py --steps 6  # more steps, steadier figures

The chat corpus is the embedded alignment sample, built here by `make corpus CORPUS=chat_sample` with a small
byte-level BPE (tests.trainer_kit.chat); the model is the tiny demo model (trainer/configs/model/tiny.toml) at
that vocabulary. Each kind runs the trainer's own step function, fp32, the same micro-batches every step, after
one untimed warm-up step:

* pretraining (the baseline, in the same run): `trainer.step.train_step` on packed rows of seq_len tokens made
  of the same corpus's token ids: no padding, every token trained;
* SFT: `trainer.align.step.sft_step` on padded per-conversation micro-batches (as `python -m trainer sft`);
* DPO: `trainer.align.step.dpo_step`: each pair's chosen and rejected rows through the policy (with grad) and
  the frozen reference (no grad), so about 4 forward passes and 2 backward per pair.

tokens/s counts predicted positions (each real token but a row's first; padding excluded) over the step's wall
time; for DPO a pair's prompt counts twice (it is in both rows), as it is computed twice. The padded share says
what padding costs SFT and DPO. Ends with one JSON line of figures.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.trainer_kit.chat import make_chat_assets  # noqa: E402
from trainer.align.batches import collate_dpo, collate_sft  # noqa: E402
from trainer.align.data import ChatCorpus  # noqa: E402
from trainer.align.step import AlignSetup, dpo_step, sft_step  # noqa: E402
from trainer.config import load_run_config  # noqa: E402
from trainer.data.loader import Batch  # noqa: E402
from trainer.dist import DistInfo  # noqa: E402
from trainer.model import JetMoE, load_model_config  # noqa: E402
from trainer.optim import build_optimizer  # noqa: E402
from trainer.step import StepSetup, train_step  # noqa: E402

PAD = 2  # the byte-level BPE's EOS, as the trainer pads


def _model(mcfg):
    torch.manual_seed(0)
    model = JetMoE(mcfg)
    return model, build_optimizer(model, load_run_config(None), torch.device("cpu"))


def _timed(step, steps: int) -> float:
    step()  # untimed: allocator and kernel warm-up
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t) / steps


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=2, help="timed steps per kind")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--micro", type=int, default=8, help="rows (SFT, pretraining) or pairs (DPO) per micro-batch")
    p.add_argument("--accum", type=int, default=2, help="micro-batches per step")
    p.add_argument("--max-len", type=int, default=256)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    mcfg = dataclasses.replace(load_model_config(ROOT / "trainer/configs/model/tiny.toml"), vocab_size=1024,
                               max_seq_len=args.max_len)
    n_rows = args.micro * args.accum
    figures, table = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        assets = make_chat_assets(Path(tmp))
        conv = ChatCorpus.open(assets / "shards", "sft").rows("train", args.max_len)
        pairs = ChatCorpus.open(assets / "shards", "dpo").rows("train", args.max_len)
        rows = np.arange(len(conv.lengths))[:n_rows]
        sft_mb = [collate_sft(conv, rows[i:i + args.micro], PAD) for i in range(0, n_rows, args.micro)]
        prows = np.arange(len(pairs.lengths))[:n_rows]
        dpo_mb = [collate_dpo(pairs, prows[i:i + args.micro], PAD) for i in range(0, len(prows), args.micro)]
        # pretraining: the same corpus's ids packed into full rows of max_len + 1 tokens
        stream = np.concatenate([conv.conversation(int(i))[0] for i in range(len(conv.lengths))]).astype(np.int64)
        need = args.accum * args.micro * (args.max_len + 1)
        stream = np.resize(stream, need).reshape(args.accum, args.micro, args.max_len + 1)
        pre_mb = [Batch(torch.from_numpy(s), torch.zeros(args.micro, dtype=torch.long),
                        torch.arange(args.micro)) for s in stream]
        off = contextlib.nullcontext()

        model, opt = _model(mcfg)
        setup = StepSetup(model, opt, DistInfo(), accum=args.accum, grad_clip=1.0, autocast=off, fsdp=False,
                          n_sources=1)
        lr = 1e-4
        s_pre = _timed(lambda: train_step(setup, iter(pre_mb), lr), args.steps)
        tok_pre = args.accum * args.micro * args.max_len

        model, opt = _model(mcfg)
        a = AlignSetup(model, opt, DistInfo(), grad_clip=1.0, autocast=off, fsdp=False)
        n_trained = sum(b.n_trained for b in sft_mb)
        s_sft = _timed(lambda: sft_step(a, sft_mb, n_trained=n_trained, lr=lr), args.steps)
        tok_sft = sum(b.n_tokens - len(b.inputs) for b in sft_mb)  # predicted positions: each row's length - 1
        pad_sft = 1 - tok_sft / sum(b.inputs.numel() for b in sft_mb)

        model, opt = _model(mcfg)
        ref, _ = _model(mcfg)
        ref.requires_grad_(False)
        d = AlignSetup(model, opt, DistInfo(), grad_clip=1.0, autocast=off, fsdp=False, ref=ref.eval(), beta=0.01)
        s_dpo = _timed(lambda: dpo_step(d, dpo_mb, n_pairs=len(prows), lr=lr), args.steps)
        tok_dpo = sum(b.n_tokens - len(b.inputs) for b in dpo_mb)
        pad_dpo = 1 - tok_dpo / sum(b.inputs.numel() for b in dpo_mb)

    for kind, s, tok, pad in (("pretrain", s_pre, tok_pre, 0.0), ("sft", s_sft, tok_sft, pad_sft),
                              ("dpo", s_dpo, tok_dpo, pad_dpo)):
        figures[f"{kind}_tokens_per_s"] = round(tok / s, 1)
        figures[f"{kind}_step_s"] = round(s, 4)
        table.append((kind, tok, s, tok / s, 100 * pad))
        if kind != "pretrain":
            figures[f"{kind}_padded_pct"] = round(100 * pad, 2)
            figures[f"{kind}_vs_pretrain"] = round((tok / s) / (tok_pre / s_pre), 3)
    head = f"{'step':<10}{'tokens':>8}{'step s':>9}{'tokens/s':>10}{'padded %':>10}"
    print(head)
    print("-" * len(head))
    for r in table:
        print(f"{r[0]:<10}{r[1]:>8}{r[2]:>9.3f}{r[3]:>10,.0f}{r[4]:>10.1f}")
    print(f"(CPU, {args.threads} threads, fp32, tiny model at vocab 1024, max_len {args.max_len}, {args.micro} rows "
          f"or pairs × {args.accum} micro-batches a step, {args.steps} timed steps; tokens = predicted positions, "
          "padding excluded; a DPO token runs through the policy and the reference)")
    figures.update({"threads": args.threads, "max_len": args.max_len, "micro": args.micro, "accum": args.accum,
                    "steps": args.steps})
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
