"""What `data.verify = "sha256"` costs: the trainer's start-up check of the parts it reads, per GB.

    python bench/bench_verify.py             # 1 GB in 16 parts, 1 thread and the trainer's 8 (~1 min)
    python bench/bench_verify.py --mb 64     # smaller

Writes random parts and a manifest-like list of their sha256 and sizes into a temp folder, then times
`Corpus.check_parts` on them exactly as the trainer calls it: cold (each part dropped from the page cache
with posix_fadvise first, so the disk is read) and warm (the parts cached), with 1 thread and with the
trainer's 8. Prints s/GB and what that means for 1 TB on one rank and on 8 ranks of a node (the ranks share
the parts; they all read the same filesystem, so the rate cannot pass the disk's). Ends with a JSON line.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainer.data.corpus import Corpus, Part  # noqa: E402


def write_parts(folder: Path, total_mb: int, n: int) -> list[Part]:
    parts = []
    size = total_mb * (1 << 20) // n
    for i in range(n):
        data = os.urandom(size)
        path = folder / f"part-{i:05d}.arrow"
        path.write_bytes(data)
        parts.append(Part(path.name, 1, 1, hashlib.sha256(data).hexdigest(), size))
    return parts


def drop_cache(folder: Path, parts: list[Part]) -> None:
    for p in parts:
        fd = os.open(folder / p.path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=int, default=1024, help="total size of the parts in MiB")
    ap.add_argument("--parts", type=int, default=16)
    args = ap.parse_args(argv)
    figures: dict = {"mb": args.mb, "parts": args.parts, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        parts = write_parts(folder, args.mb, args.parts)
        corpus = Corpus.__new__(Corpus)  # check_parts needs only the folder
        corpus.root = folder
        gb = sum(p.bytes for p in parts) / 1e9
        print(f"{'cache':<6}{'threads':>8}{'s':>8}{'s/GB':>8}{'GB/s':>8}")
        for cache in ("cold", "warm"):
            for threads in (1, 8):
                if cache == "cold":
                    drop_cache(folder, parts)
                t = time.perf_counter()
                problems = corpus.check_parts(parts, "sha256", threads=threads)
                dt = time.perf_counter() - t
                assert not problems, problems
                figures[f"{cache}_{threads}t_s_per_gb"] = round(dt / gb, 3)
                print(f"{cache:<6}{threads:>8}{dt:>8.2f}{dt / gb:>8.2f}{gb / dt:>8.2f}")
    best = min(figures["cold_8t_s_per_gb"], figures["warm_8t_s_per_gb"])
    one = figures["cold_1t_s_per_gb"]
    print(f"1 TB: {one * 1000 / 60:.0f} min on one rank with one thread; at best {best * 1000 / 60:.1f} min with 8 "
          f"threads on one rank here, and ~1/8 of that on 8 ranks when the filesystem keeps up "
          f"(this machine has {os.cpu_count()} cores, shared)")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
