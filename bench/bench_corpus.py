"""End-to-end corpus build throughput: this project's stages against a plain datatrove pipeline doing the same
steps (Gopher quality + Gopher repetition + C4 + FineWeb filters, MinHash dedup, tokenize) on the same input.

    python bench/bench_corpus.py            # 8 MB of input text (make bench)
    python bench/bench_corpus.py --mb 50    # the figure the issue asks for
    python bench/bench_corpus.py --mb 8 --no-spacy   # skip the slow spaCy baseline

The input is web text from the embedded samples (RefinedWeb, UltraTextbooks, peS2o), its paragraphs
recombined into new documents up to the asked size, with 3% exact and 3% near duplicates planted. Three runs,
one task each, one after the other in this process, on the same files and the same trained tokenizer:

* ours: pipeline/stages filter (web family: datatrove's Gopher quality, C4 and FineWeb filters and our
  FastGopherRepetitionFilter, regex word splitter) → dedup (exact + MinHash) → shard (batched tokenize +
  Arrow parts);
* datatrove + spaCy: datatrove's filters and MinHash with their default (spaCy) word splitter, then
  datatrove's DocumentTokenizer;
* datatrove + regex: the same with pipeline.text.RegexWordTokenizer passed as each step's language.

Throughput is MB of input text per second of wall time (noisy on a shared machine). The kept-document
comparison reports, after the filters, how many documents each run kept and how many differ from ours.
Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LOGURU_LEVEL", "ERROR")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pyarrow.parquet as pq  # noqa: E402
from datatrove.executor import LocalPipelineExecutor  # noqa: E402
from datatrove.pipeline.dedup.minhash import (MinhashDedupBuckets, MinhashDedupCluster,  # noqa: E402
                                              MinhashDedupFilter, MinhashDedupSignature)
from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,  # noqa: E402
                                        GopherRepetitionFilter)
from datatrove.pipeline.readers import JsonlReader  # noqa: E402
from datatrove.pipeline.tokens import DocumentTokenizer  # noqa: E402
from datatrove.pipeline.writers import JsonlWriter  # noqa: E402

from pipeline.stages.dedup import DedupOptions, dedup_jobs  # noqa: E402
from pipeline.stages.documents import docs_reader, docs_writer  # noqa: E402
from pipeline.stages.filter import FilterOptions, family_filters  # noqa: E402
from pipeline.stages.shard import ShardOptions, ShardWriter  # noqa: E402
from jetmoe_core.io import write_bytes_atomic  # noqa: E402
from pipeline.stages.tokenizer import train_bpe  # noqa: E402
from pipeline.text import RegexWordTokenizer  # noqa: E402

SAMPLES = REPO / "pipeline" / "samples"


def sample_paragraphs() -> list[str]:
    texts = []
    for pattern, col in (("tiiuae/falcon-refinedweb/data/*.parquet", "content"),
                         ("Locutusque/UltraTextbooks/data/*.parquet", "text")):
        for p in sorted(glob.glob(str(SAMPLES / pattern))):
            texts += [t for t in pq.read_table(p, columns=[col]).column(col).to_pylist() if t]
    for p in sorted(glob.glob(str(SAMPLES / "allenai/peS2o/data/v2/*.json.gz"))):
        with gzip.open(p, "rt") as f:
            for line in f:
                try:  # the samples plant broken records for the format stage's tests: skip them here
                    texts.append(json.loads(line).get("text") or "")
                except (json.JSONDecodeError, AttributeError):
                    pass
    paras = [p.strip() for t in texts for p in t.split("\n") if len(p.strip()) > 40]
    if not paras:
        sys.exit(f"no sample text under {SAMPLES}: the embedded samples are missing")
    return paras


def make_input(folder: Path, mb: float, seed: int = 0) -> tuple[int, int]:
    """Recombined documents up to ``mb`` MB of UTF-8 text in ``folder``/00000.jsonl.gz; returns (docs, bytes)."""
    rng = random.Random(seed)
    paras = sample_paragraphs()
    folder.mkdir(parents=True, exist_ok=True)
    target, used, n, docs = int(mb * 1e6), 0, 0, []
    with gzip.open(folder / "00000.jsonl.gz", "wt", compresslevel=1) as f:
        while used < target:
            r = rng.random()
            if docs and r < 0.03:
                text = rng.choice(docs)                                   # exact duplicate
            elif docs and r < 0.06:
                words = rng.choice(docs).split(" ")                       # near duplicate: 2 words changed
                for _ in range(2):
                    words[rng.randrange(len(words))] = "changed"
                text = " ".join(words)
            else:
                text = "\n".join(rng.choice(paras) for _ in range(rng.randint(3, 12)))
                if len(docs) < 2000:
                    docs.append(text)
                elif rng.random() < 0.1:
                    docs[rng.randrange(len(docs))] = text
            f.write(json.dumps({"id": f"d{n}", "text": text}) + "\n")
            used += len(text.encode("utf-8"))
            n += 1
    return n, used


def run(pipeline: list, logs: Path, tasks: int = 1) -> None:
    LocalPipelineExecutor(pipeline, tasks=tasks, workers=1, logging_dir=str(logs)).run()


def ids(folder: Path) -> set[str]:
    return {json.loads(line)["id"] for p in sorted(folder.glob("*.jsonl.gz")) for line in gzip.open(p, "rt")}


def ours(inp: Path, work: Path, tok_path: Path) -> dict:
    t0 = time.perf_counter()
    run([docs_reader(inp), *family_filters("web", FilterOptions()), docs_writer(work / "filtered")], work / "l_f")
    t_f = time.perf_counter()
    for job in dedup_jobs(work / "filtered", work / "dedup", work / "dd", DedupOptions(), tasks=1):
        run(job.pipeline, work / f"l_{job.name}", job.tasks)
    t_d = time.perf_counter()
    run([docs_reader(work / "dedup"), ShardWriter(str(tok_path), "bench", str(work / "shards"), str(work / "parts"),
                                                   ShardOptions())], work / "l_s")
    t_s = time.perf_counter()
    return {"filter_s": t_f - t0, "dedup_s": t_d - t_f, "tokenize_s": t_s - t_d, "total_s": t_s - t0,
            "kept_filter": ids(work / "filtered"), "kept_final": len(ids(work / "dedup"))}


def datatrove_plain(inp: Path, work: Path, tok_path: Path, language) -> dict:
    lang = {"language": language}
    reader = lambda folder: JsonlReader(str(folder), glob_pattern="*.jsonl.gz")  # noqa: E731
    t0 = time.perf_counter()
    run([reader(inp), GopherQualityFilter(**lang), GopherRepetitionFilter(**lang), C4QualityFilter(**lang),
         FineWebQualityFilter(**lang), JsonlWriter(str(work / "filtered"))], work / "l_f")
    t_f = time.perf_counter()
    mh = work / "mh"
    run([reader(work / "filtered"), MinhashDedupSignature(str(mh / "sigs"), **lang)], work / "l_m1")
    run([MinhashDedupBuckets(str(mh / "sigs"), str(mh / "buckets"))], work / "l_m2", tasks=14)
    run([MinhashDedupCluster(str(mh / "buckets"), str(mh / "remove"))], work / "l_m3")
    run([reader(work / "filtered"), MinhashDedupFilter(str(mh / "remove")), JsonlWriter(str(work / "dedup"))],
        work / "l_m4")
    t_d = time.perf_counter()
    run([reader(work / "dedup"), DocumentTokenizer(str(work / "tokens"), tokenizer_name_or_path=str(tok_path),
                                                   eos_token="</s>", shuffle_documents=False)], work / "l_t")
    t_s = time.perf_counter()
    return {"filter_s": t_f - t0, "dedup_s": t_d - t_f, "tokenize_s": t_s - t_d, "total_s": t_s - t0,
            "kept_filter": ids(work / "filtered"), "kept_final": len(ids(work / "dedup"))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=8.0, help="MB of input text (the issue's figure: 50)")
    ap.add_argument("--no-spacy", action="store_true", help="skip the datatrove + spaCy baseline")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench_corpus_"))
    try:
        n_docs, n_bytes = make_input(root / "input", args.mb)
        mb = n_bytes / 1e6
        texts = (json.loads(line)["text"] for line in gzip.open(root / "input" / "00000.jsonl.gz", "rt"))
        tok_path = root / "tokenizer.json"
        write_bytes_atomic(tok_path, train_bpe(texts, 8192).to_str().encode())  # shared by every run, not timed
        print(f"input: {n_docs:,} documents, {mb:.1f} MB of text", flush=True)

        runs = {"ours": ours(root / "input", root / "ours", tok_path)}
        runs["datatrove_regex"] = datatrove_plain(root / "input", root / "dt_regex", tok_path, RegexWordTokenizer())
        have_spacy = True
        try:
            import spacy  # noqa: F401
        except ImportError:
            have_spacy = False
        if have_spacy and not args.no_spacy:
            runs["datatrove_spacy"] = datatrove_plain(root / "input", root / "dt_spacy", tok_path, "en")

        base = runs["ours"]["kept_filter"]
        print(f"\n{'run':<17} {'filter s':>9} {'dedup s':>8} {'tokenize s':>11} {'total s':>8} {'MB/s':>6} "
              f"{'kept (filter)':>14} {'differ':>7} {'kept (final)':>13}")
        fig = {"input_mb": round(mb, 2), "input_docs": n_docs}
        for name, r in runs.items():
            diff = len(r["kept_filter"] ^ base)
            tput = mb / r["total_s"]
            print(f"{name:<17} {r['filter_s']:>9.1f} {r['dedup_s']:>8.1f} {r['tokenize_s']:>11.1f} "
                  f"{r['total_s']:>8.1f} {tput:>6.2f} {len(r['kept_filter']):>14,} {diff:>7,} {r['kept_final']:>13,}")
            fig[f"{name}_mb_s"] = round(tput, 3)
            fig[f"{name}_kept_after_filters"] = len(r["kept_filter"])
            fig[f"{name}_kept_diff_vs_ours"] = diff
            fig[f"{name}_kept_final"] = r["kept_final"]
        for name in ("datatrove_spacy", "datatrove_regex"):
            if name in runs:
                fig[f"speedup_vs_{name}"] = round(runs[name]["total_s"] / runs["ours"]["total_s"], 2)
        print()
        print(json.dumps(fig, sort_keys=True))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
