"""Tokenize stage throughput against raw ``tokenizers`` ``encode_batch`` on the same text and threads.

    python bench/bench_tokenize.py                 # 8 MB of sample web text, tokenizers' default threads
    python bench/bench_tokenize.py --mb 50 --threads 2

Runs, in this process, on the same documents and the same trained 8192-token BPE:

* raw: ``Tokenizer.encode_batch`` over batches of ``--batch`` documents, keeping the ids (the baseline);
* raw fast: ``Tokenizer.encode_batch_fast`` likewise (no character offsets: the call the stage makes);
* ours: the shard stage's ``ShardWriter`` (batched encode, EOS, train/val split, Arrow parts written and
  hashed), fed the same documents;
* one per call: ``Tokenizer.encode`` per document (what batching saves).

Throughput is MB of input text per second; the goal is ours >= 0.9x raw. Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=8.0)
    ap.add_argument("--threads", type=int, default=0, help="RAYON_NUM_THREADS for tokenizers (0: its default)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3, help="best of N timings")
    args = ap.parse_args(argv)
    if args.threads:
        os.environ["RAYON_NUM_THREADS"] = str(args.threads)  # read when tokenizers first starts its pool
    os.environ.setdefault("LOGURU_LEVEL", "ERROR")
    repo = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(repo))
    sys.path.insert(0, str(repo / "bench"))
    import gzip

    from datatrove.data import Document

    from bench_corpus import make_input
    from pipeline.stages.shard import ShardOptions, ShardWriter
    from jetmoe_core.io import write_bytes_atomic
    from pipeline.stages.tokenizer import train_bpe

    with tempfile.TemporaryDirectory(prefix="bench_tok_") as tmp:
        tmp = Path(tmp)
        _, n_bytes = make_input(tmp / "in", args.mb)
        texts = [json.loads(line)["text"] for line in gzip.open(tmp / "in" / "00000.jsonl.gz", "rt")]
        mb = n_bytes / 1e6
        tok = train_bpe(iter(texts), 8192)
        write_bytes_atomic(tmp / "tokenizer.json", tok.to_str().encode())
        docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]

        def raw():
            n = 0
            for i in range(0, len(texts), args.batch):
                n += sum(len(e.ids) for e in tok.encode_batch(texts[i:i + args.batch], add_special_tokens=False))
            return n

        def raw_fast():
            n = 0
            for i in range(0, len(texts), args.batch):
                n += sum(len(e.ids) for e in tok.encode_batch_fast(texts[i:i + args.batch], add_special_tokens=False))
            return n

        def ours():
            step = ShardWriter(str(tmp / "tokenizer.json"), "bench", str(tmp / "shards"), str(tmp / "parts"),
                               ShardOptions(batch_size=args.batch))
            for _ in step.run(iter(docs), rank=0, world_size=1):
                pass

        def single():
            return sum(len(tok.encode(t, add_special_tokens=False).ids) for t in texts[: max(1, len(texts) // 4)])

        best = {}
        for name, fn, share in (("raw encode_batch", raw, 1.0), ("raw encode_batch_fast", raw_fast, 1.0),
                                ("ours (ShardWriter)", ours, 1.0),
                                ("one doc per call", single, max(1, len(texts) // 4) / len(texts))):
            times = []
            for _ in range(args.repeat if name != "one doc per call" else 1):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            best[name] = mb * share / min(times)
        threads = os.environ.get("RAYON_NUM_THREADS", f"default ({os.cpu_count()} cpus)")
        print(f"{len(texts):,} documents, {mb:.1f} MB, batch {args.batch}, tokenizers threads: {threads}\n")
        print(f"{'run':<22} {'MB/s':>8} {'vs raw':>7}")
        for name, v in best.items():
            print(f"{name:<22} {v:>8.2f} {v / best['raw encode_batch']:>7.2f}")
        print()
        print(json.dumps({"input_mb": round(mb, 2), "raw_mb_s": round(best["raw encode_batch"], 3),
                          "ours_mb_s": round(best["ours (ShardWriter)"], 3),
                          "single_mb_s": round(best["one doc per call"], 3),
                          "ours_vs_raw": round(best["ours (ShardWriter)"] / best["raw encode_batch"], 3),
                          "raw_fast_mb_s": round(best["raw encode_batch_fast"], 3),
                          "ours_vs_raw_fast": round(best["ours (ShardWriter)"] / best["raw encode_batch_fast"], 3),
                          "threads": threads, "batch": args.batch}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
