"""Peak memory of a corpus build on 1x and 4x the input: streaming stages keep it nearly flat.

    python bench/bench_corpus_memory.py            # 2 MB and 8 MB of input text
    python bench/bench_corpus_memory.py --mb 12    # 12 MB and 48 MB

Each build (filter → dedup exact + MinHash → tokenize + Arrow shards, one task, the same trained tokenizer)
runs in a fresh subprocess that reports its own peak resident memory (``ru_maxrss``), so the two builds do
not share a high-water mark. The goal: peak(4x) <= 1.5 x peak(1x). Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, resource, sys
os.environ.setdefault("LOGURU_LEVEL", "ERROR")
sys.path.insert(0, {repo!r}); sys.path.insert(0, {bench!r})
from pathlib import Path
from bench_corpus import ours
r = ours(Path({inp!r}), Path({work!r}), Path({tok!r}))
print(json.dumps({{"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "kept": r["kept_final"],
                  "seconds": r["total_s"]}}))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=2.0, help="size of the 1x input in MB of text")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "bench"))
    import gzip

    from bench_corpus import make_input
    from jetmoe_core.io import write_bytes_atomic
    from pipeline.stages.tokenizer import train_bpe

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_mem_") as tmp:
        tmp = Path(tmp)
        sizes = {"1x": args.mb, "4x": 4 * args.mb}
        for name, mb in sizes.items():
            make_input(tmp / name / "in", mb)
        texts = (json.loads(line)["text"] for line in gzip.open(tmp / "1x" / "in" / "00000.jsonl.gz", "rt"))
        write_bytes_atomic(tmp / "tokenizer.json", train_bpe(texts, 8192).to_str().encode())
        for name, mb in sizes.items():
            code = CHILD.format(repo=str(REPO), bench=str(REPO / "bench"), inp=str(tmp / name / "in"),
                                work=str(tmp / name / "work"), tok=str(tmp / "tokenizer.json"))
            r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               env={**os.environ, "LOGURU_LEVEL": "ERROR"})
            if r.returncode:
                print(r.stderr[-3000:], file=sys.stderr)
                return 1
            res = json.loads(r.stdout.strip().splitlines()[-1])
            rows.append((name, mb, res))
    print(f"{'input':<6} {'MB':>6} {'peak MiB':>9} {'seconds':>8} {'kept docs':>10}")
    for name, mb, res in rows:
        print(f"{name:<6} {mb:>6.1f} {res['peak_mib']:>9.1f} {res['seconds']:>8.1f} {res['kept']:>10,}")
    ratio = rows[1][2]["peak_mib"] / rows[0][2]["peak_mib"]
    print(f"\npeak(4x) / peak(1x) = {ratio:.2f} (goal <= 1.5)\n")
    print(json.dumps({"input_mb_1x": args.mb, "peak_mib_1x": round(rows[0][2]["peak_mib"], 1),
                      "peak_mib_4x": round(rows[1][2]["peak_mib"], 1), "peak_ratio_4x_1x": round(ratio, 3)},
                     sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
