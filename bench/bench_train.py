"""Training throughput on CPU (tokens/s) and the share of step time spent waiting on the data loader.

    python bench/bench_train.py            # quick: tiny + mid model, a few steps each (~1-3 min on 2 busy cores)
    python bench/bench_train.py --full     # more steps per size, steadier figures

For each size the same optimizer steps run twice in this process: once fed by the real BlendedLoader
(memory-mapped Arrow shards of a corpus written here, prefetch thread on) and once fed by the same batches
already in memory (the baseline: a loader that costs nothing). The loader share is the time spent in
next(loader) over the step time; the goal is < 2%. Ends with one JSON line of figures.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.trainer_kit.corpus import make_corpus  # noqa: E402
from trainer.config import load_run_config  # noqa: E402
from trainer.data import BlendedLoader, Corpus, load_mixture  # noqa: E402
from trainer.model import JetMoE, ModelConfig, count_params, load_model_config  # noqa: E402
from trainer.dist import DistInfo  # noqa: E402
from trainer.optim import build_optimizer  # noqa: E402
from trainer.step import StepSetup, train_step  # noqa: E402

SOURCES = {"refinedweb": 400_000, "starcoder": 150_000, "pile_rest": 60_000, "openwebmath": 20_000}
MIXTURE = 'name = "bench"\n[sources]\nrefinedweb = 64\nstarcoder = 25\npile_rest = 10\nopenwebmath = 1\n'


def sizes() -> dict[str, ModelConfig]:
    tiny = load_model_config(ROOT / "trainer/configs/model/tiny.toml")
    # "mid": the tiny config twice as wide and deep (~4× the compute per token), same vocab.
    mid = tiny.replace(d_model=256, n_layers=8, head_dim=32, ffn_hidden=512, name="mid")
    return {"tiny": tiny, "mid": mid}


def run(mcfg: ModelConfig, batches, steps: int, accum: int, micro: int, seq_len: int, n_sources: int) -> dict:
    """`steps` optimizer steps of trainer.step.train_step (the trainer's own step) on `batches`."""
    torch.manual_seed(0)
    model = JetMoE(mcfg)
    cfg = load_run_config(None)
    opt = build_optimizer(model, cfg, torch.device("cpu"))
    setup = StepSetup(model, opt, DistInfo(), accum=accum, grad_clip=1.0, autocast=contextlib.nullcontext(),
                      fsdp=False, n_sources=n_sources)
    data_s = 0.0
    # one untimed step: allocator and kernel warm-up
    t_start = None
    for step in range(steps + 1):
        if step == 1:
            t_start, data_s = time.perf_counter(), 0.0
        data_s += train_step(setup, batches, cfg.optim.lr).data_s
    wall = time.perf_counter() - t_start
    tokens = steps * accum * micro * seq_len
    return {"tokens_per_s": tokens / wall, "wall_s": wall, "data_s": data_s, "loader_share": data_s / wall}


def recorded(loader, seen: list):
    """The loader's batches, each kept in `seen` (for the in-memory baseline)."""
    for b in loader:
        seen.append(b)
        yield b


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--full", action="store_true", help="more steps per size")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    seq_len = 128
    micro, accum = (16, 2) if args.full else (8, 1)
    steps = {"tiny": 8, "mid": 4} if args.full else {"tiny": 2, "mid": 1}
    rows, figures = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        root = make_corpus(Path(tmp) / "corpus", sources=SOURCES, vocab=8192, seed=0, mean_doc=400,
                           docs_per_part=256)
        corpus = Corpus.open(root)
        (Path(tmp) / "mix.toml").write_text(MIXTURE)
        mix = load_mixture(Path(tmp) / "mix.toml", corpus)
        for name, mcfg in sizes().items():
            n = steps[name]
            seen: list = []
            with BlendedLoader(corpus, mix, seq_len=seq_len, seed=0, micro_batch=micro, num_workers=0,
                               prefetch=2) as loader:
                real = run(mcfg, recorded(loader, seen), n, accum, micro, seq_len, len(loader.source_names))
            base = run(mcfg, iter(seen), n, accum, micro, seq_len, len(loader.source_names))
            total, active = count_params(mcfg)
            rows.append((name, f"{total / 1e6:.1f}M/{active / 1e6:.1f}M", n, micro * accum * seq_len,
                         real["tokens_per_s"], base["tokens_per_s"], 100 * real["loader_share"]))
            figures[f"{name}_tokens_per_s"] = round(real["tokens_per_s"], 1)
            figures[f"{name}_tokens_per_s_in_memory"] = round(base["tokens_per_s"], 1)
            figures[f"{name}_loader_share_pct"] = round(100 * real["loader_share"], 3)
    head = f"{'size':<6}{'params tot/act':>16}{'steps':>7}{'tok/step':>10}{'tok/s loader':>14}{'tok/s in-mem':>14}" \
           f"{'loader %':>10}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r[0]:<6}{r[1]:>16}{r[2]:>7}{r[3]:>10}{r[4]:>14,.0f}{r[5]:>14,.0f}{r[6]:>10.3f}")
    print(f"(CPU, {args.threads} threads, fp32, seq {seq_len}, micro-batch {micro} × {accum}; loader % = time in "
          "next(loader) / wall of the loader run, goal < 2%; tok/s in-mem = the same steps on batches already in "
          "memory, the zero-cost-loader baseline; on a shared machine the two tok/s differ by noise)")
    figures.update({"threads": args.threads, "seq_len": seq_len, "goal_loader_share_pct": 2.0})
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
