"""Benchmark the blended loader against a nanoGPT-style np.memmap random-window batcher, and its memory.

    python bench/bench_loader.py [--quick]  # small: 2M-token corpus (+ 16M for the RSS check), ~1 min on 2 cores
    python bench/bench_loader.py --full     # 32M-token corpus and 256M for the RSS check (needs ~600 MB disk)

1. Throughput: tokens/s delivered to the training loop (batches of micro_batch × (seq_len+1) int64 tokens),
   blending 4 sources on, read in the loop's thread as the baseline reads (the prefetch-thread figure is
   printed beside), against nanoGPT's `get_batch`
   (np.memmap of one .bin holding the same tokens, recreated per batch as nanoGPT does, random windows,
   torch.stack), in the same run on the same machine. Figure: speedup = loader / baseline (goal ≥ 1).
2. Memory: a fresh process opens a corpus, draws the same number of batches, and reports its RSS and its
   anonymous RSS (RssAnon: memory the process owns; file-backed pages of the memory map are page cache the
   kernel can drop). Corpus 1× and 8× in size: flat means the 8× run holds about the same.
Ends with one JSON line of figures.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

WEIGHTS = {"web": 60, "code": 25, "math": 10, "wiki": 5}
SPLIT = {"web": 0.55, "code": 0.25, "math": 0.12, "wiki": 0.08}  # corpus token share per source


def build(root: Path, total: int, vocab: int = 32000) -> Path:
    from tests.trainer_kit.corpus import make_corpus

    if (root / "manifest.json").exists():
        return root
    return make_corpus(root, {s: int(total * f) for s, f in SPLIT.items()}, vocab=vocab, seed=0, mean_doc=600,
                       val_tokens=1000, docs_per_part=8192, docs_per_batch=1024, name=root.name)


def mixture(corpus):
    from trainer.data import parse_mixture

    return parse_mixture({"name": "bench", "sources": WEIGHTS}, corpus)


def bench_loader(root: Path, seq_len: int, mb: int, batches: int, prefetch: int) -> float:
    from trainer.data import BlendedLoader, Corpus

    corpus = Corpus.open(root)
    loader = BlendedLoader(corpus, mixture(corpus), seq_len=seq_len, seed=0, micro_batch=mb, prefetch=prefetch)
    next(loader)  # start-up (thread, first epoch permutations) is not throughput
    t = time.perf_counter()
    for _ in range(batches):
        b = next(loader)
        assert b.tokens.shape == (mb, seq_len + 1)
    dt = time.perf_counter() - t
    loader.close()
    return batches * mb * seq_len / dt


def bench_nanogpt(bin_path: Path, seq_len: int, mb: int, batches: int) -> float:
    import torch

    def get_batch():
        # nanoGPT train.py: recreate the memmap every batch (avoids its memory leak), random windows, stack.
        data = np.memmap(bin_path, dtype=np.uint16, mode="r")
        ix = torch.randint(len(data) - seq_len - 1, (mb,))
        return torch.stack([torch.from_numpy(data[i:i + seq_len + 1].astype(np.int64)) for i in ix])

    get_batch()
    t = time.perf_counter()
    for _ in range(batches):
        x = get_batch()
        assert x.shape == (mb, seq_len + 1)
    dt = time.perf_counter() - t
    return batches * mb * seq_len / dt


def write_bin(root: Path, out: Path) -> None:
    """The same train tokens as one flat .bin, nanoGPT's format."""
    from trainer.data import Corpus

    if out.exists():
        return
    corpus = Corpus.open(root)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as f:
        for s in corpus.sources:
            for c in corpus.open_stream(s).token_chunks():
                f.write(c.tobytes())
    os.replace(tmp, out)


def status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return -1


def rss_child(root: str, seq_len: int, mb: int, batches: int) -> None:
    from trainer.data import BlendedLoader, Corpus

    corpus = Corpus.open(root)
    loader = BlendedLoader(corpus, mixture(corpus), seq_len=seq_len, seed=0, micro_batch=mb, prefetch=2)
    for _ in range(batches):
        next(loader)
    loader.close()
    print(json.dumps({"rss_kb": status_kb("VmRSS"), "anon_kb": status_kb("RssAnon"), "file_kb": status_kb("RssFile"),
                      "hwm_kb": status_kb("VmHWM")}))


def measure_rss(root: Path, seq_len: int, mb: int, batches: int) -> dict:
    r = subprocess.run([sys.executable, __file__, "--rss-child", str(root), "--seq-len", str(seq_len), "--mb", str(mb),
                        "--batches", str(batches)], capture_output=True, text=True, timeout=600)
    if r.returncode:
        raise RuntimeError(f"RSS child failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="the default small size (2M / 16M tokens)")
    ap.add_argument("--full", action="store_true", help="32M-token corpus, 256M for the RSS check")
    ap.add_argument("--workdir", default=None, help="where to build the corpora (default: a temp dir)")
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--mb", type=int, default=8)
    ap.add_argument("--batches", type=int, default=None)
    ap.add_argument("--rss-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        rss_child(args.rss_child, args.seq_len, args.mb, args.batches)
        return 0
    from tqdm import tqdm

    size = 32_000_000 if args.full else 2_000_000
    batches = args.batches or (2000 if args.full else 300)
    tmp = tempfile.TemporaryDirectory(prefix="bench_loader_") if args.workdir is None else None
    work = Path(args.workdir or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    steps = tqdm(total=5, desc="bench_loader", unit="step")
    c1 = build(work / f"c{size}", size)
    steps.update()
    c8 = build(work / f"c{8 * size}", 8 * size)
    steps.update()
    write_bin(c1, work / "train.bin")
    base = bench_nanogpt(work / "train.bin", args.seq_len, args.mb, batches)
    # like for like: the baseline reads in the loop's thread, so the headline reads in it too (prefetch=0).
    # The prefetch thread is for a loop that computes between batches; in this empty loop it only adds the
    # hand-over between threads, so its figure is printed beside, not as the result.
    ours = bench_loader(c1, args.seq_len, args.mb, batches, prefetch=0)
    ours_thread = bench_loader(c1, args.seq_len, args.mb, batches, prefetch=4)
    steps.update()
    r1 = measure_rss(c1, args.seq_len, args.mb, batches)
    steps.update()
    r8 = measure_rss(c8, args.seq_len, args.mb, batches)
    steps.update()
    steps.close()

    mb_ = 1024.0
    print(f"\nthroughput, seq_len {args.seq_len}, micro_batch {args.mb}, {batches} batches, corpus {size:,} tokens")
    print(f"  {'loader':<34}{'tokens/s':>14}")
    print(f"  {'nanoGPT memmap random windows':<34}{base:>14,.0f}")
    print(f"  {'BlendedLoader (4 sources, blend)':<34}{ours:>14,.0f}")
    print(f"  {'  same, prefetch thread (4)':<34}{ours_thread:>14,.0f}")
    print(f"  {'speedup':<34}{ours / base:>14.2f}x")
    print(f"\nloader process memory after {batches} batches")
    print(f"  {'corpus':<12}{'tokens':>14}{'RSS MiB':>10}{'anon MiB':>10}{'file MiB':>10}{'peak MiB':>10}")
    for name, n, r in (("1x", size, r1), ("8x", 8 * size, r8)):
        print(f"  {name:<12}{n:>14,}{r['rss_kb'] / mb_:>10.1f}{r['anon_kb'] / mb_:>10.1f}{r['file_kb'] / mb_:>10.1f}"
              f"{r['hwm_kb'] / mb_:>10.1f}")
    figures = {"bench": "loader", "seq_len": args.seq_len, "micro_batch": args.mb, "batches": batches,
               "corpus_tokens_1x": size, "loader_tokens_per_s": round(ours), "nanogpt_tokens_per_s": round(base),
               "speedup": round(ours / base, 3), "loader_prefetch_thread_tokens_per_s": round(ours_thread),
               "rss_mib_1x": round(r1["rss_kb"] / mb_, 1), "rss_mib_8x": round(r8["rss_kb"] / mb_, 1),
               "rss_anon_mib_1x": round(r1["anon_kb"] / mb_, 1), "rss_anon_mib_8x": round(r8["anon_kb"] / mb_, 1),
               "rss_ratio_8x_over_1x": round(r8["rss_kb"] / r1["rss_kb"], 3),
               "rss_anon_ratio_8x_over_1x": round(r8["anon_kb"] / r1["anon_kb"], 3)}
    print(json.dumps(figures))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
