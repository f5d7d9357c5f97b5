"""End-to-end corpus build throughput on real text: this project's stages against a plain datatrove pipeline
doing the same steps (Gopher quality + Gopher repetition + C4 + FineWeb filters, MinHash dedup, tokenize).

    python bench/bench_corpus.py                  # 8 MB of real text, 2 tasks on 2 workers (make bench)
    python bench/bench_corpus.py --mb 80          # the size of the issue's corpus
    python bench/bench_corpus.py --no-spacy       # skip the slow spaCy baseline

Input: real English technical prose, the docstrings of the packages installed in this Python
(bench/realtext.py), cut into documents of at most 8,000 characters, with 3% exact and 3% near duplicates of
earlier documents planted for dedup to find; split into ``--tasks`` files. Runs, one after the other in this
process, on the same files and the same tokenizer (a BPE trained on the input, not timed), each with
``--tasks`` tasks on as many workers:

* ours: pipeline/stages filter (the web rule family with the options of pipeline/configs/sample.toml, the
  alphabetic-word share counted over tokens as datatrove counts it) →
  dedup (exact + MinHash) → shard (batched tokenize + Arrow parts);
* datatrove + regex: datatrove's own filter classes with the same options and the same word splitter
  (pipeline.text.RegexWordTokenizer), datatrove's MinHash, datatrove's DocumentTokenizer;
* datatrove + spaCy: the same with datatrove's default (spaCy) word splitter.

The kept-document comparison lists, after the filters, how many documents each run kept and how many kept
sets differ from ours: with the same splitter it must be 0 (``tests/test_filters_fast.py`` checks the same
class by class). Throughput is MB of input text per second of wall time (noisy on a shared machine).
Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import sys
import tempfile
import time
import tomllib
from pathlib import Path

os.environ.setdefault("LOGURU_LEVEL", "ERROR")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from datatrove.executor import LocalPipelineExecutor  # noqa: E402
from datatrove.pipeline.dedup.minhash import (MinhashDedupBuckets, MinhashDedupCluster,  # noqa: E402
                                              MinhashDedupFilter, MinhashDedupSignature)
from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,  # noqa: E402
                                        GopherRepetitionFilter)
from datatrove.pipeline.readers import JsonlReader  # noqa: E402
from datatrove.pipeline.tokens import DocumentTokenizer  # noqa: E402
from datatrove.pipeline.writers import JsonlWriter  # noqa: E402

from jetmoe_core.io import write_bytes_atomic  # noqa: E402
from pipeline.stages.dedup import DedupOptions, dedup_jobs  # noqa: E402
from pipeline.stages.documents import docs_reader, docs_writer  # noqa: E402
from pipeline.stages.filter import FilterOptions, _check_kwargs, family_filters  # noqa: E402
from pipeline.stages.shard import ShardOptions, ShardWriter  # noqa: E402
from pipeline.stages.tokenizer import train_bpe  # noqa: E402
from pipeline.text import RegexWordTokenizer  # noqa: E402
from realtext import docstring_docs, write_jsonl  # noqa: E402

#: the web rules' options are the sample config's, so the bench measures what a build runs, except for the
#: one datatrove cannot run: Gopher's alphabetic-word share is counted over tokens, datatrove's definition
WEB = tomllib.loads((REPO / "pipeline/configs/sample.toml").read_text())["filters"]["web"]
WEB["gopher_quality"] = {k: v for k, v in WEB.get("gopher_quality", {}).items() if k != "alpha_words"}


def make_input(folder: Path, mb: float, seed: int = 0, files: int = 1) -> tuple[int, int]:
    """Real documents (bench/realtext.py: docstrings of the installed packages) up to ``mb`` MB of UTF-8 text
    in ``folder``/0000N.jsonl.gz (``files`` files, documents dealt round-robin), with 3% exact and 3% near
    duplicates of earlier ones planted in between so that dedup has work; returns (docs, bytes)."""
    rng = random.Random(seed)
    real = docstring_docs(mb)
    if not real:
        sys.exit("no docstrings found under this Python installation (bench/realtext.py)")
    docs: list[tuple[str, str]] = []
    for doc_id, text in real:
        docs.append((doc_id, text))
        r = rng.random()
        if r < 0.03:
            docs.append((f"{doc_id}#exact", rng.choice(docs)[1]))
        elif r < 0.06:
            words = rng.choice(docs)[1].split(" ")
            for _ in range(2):  # near duplicate: 2 words changed
                words[rng.randrange(len(words))] = "changed"
            docs.append((f"{doc_id}#near", " ".join(words)))
    n_bytes = sum(write_jsonl(docs[i::files], folder / f"{i:05d}.jsonl.gz") for i in range(files))
    return len(docs), n_bytes


def run(pipeline: list, logs: Path, tasks: int = 1) -> None:
    LocalPipelineExecutor(pipeline, tasks=tasks, workers=tasks, logging_dir=str(logs), start_method="fork").run()


def ids(folder: Path) -> set[str]:
    return {json.loads(line)["id"] for p in sorted(folder.glob("*.jsonl.gz")) for line in gzip.open(p, "rt")}


def ours(inp: Path, work: Path, tok_path: Path, tasks: int = 1) -> dict:
    t0 = time.perf_counter()
    run([docs_reader(inp), *family_filters("web", FilterOptions(web=dict(WEB))), docs_writer(work / "filtered")],
        work / "l_f", tasks)
    t_f = time.perf_counter()
    for job in dedup_jobs(work / "filtered", work / "dedup", work / "dd", DedupOptions(), tasks=tasks):
        run(job.pipeline, work / f"l_{job.name}", job.tasks)
    t_d = time.perf_counter()
    run([docs_reader(work / "dedup"), ShardWriter(str(tok_path), "bench", str(work / "shards"), str(work / "parts"),
                                                   ShardOptions())], work / "l_s", tasks)
    t_s = time.perf_counter()
    return {"filter_s": t_f - t0, "dedup_s": t_d - t_f, "tokenize_s": t_s - t_d, "total_s": t_s - t0,
            "kept_filter": ids(work / "filtered"), "kept_final": len(ids(work / "dedup"))}


def datatrove_filters(language) -> list:
    """datatrove's classes, in our order, with the sample config's arguments."""
    out = []
    for key, cls in (("gopher_quality", GopherQualityFilter), ("gopher_repetition", GopherRepetitionFilter),
                     ("c4", C4QualityFilter), ("fineweb", FineWebQualityFilter)):
        kw = _check_kwargs(cls, WEB.get(key, {}), f"filters.web.{key}")
        if kw is not None:
            out.append(cls(language=language, **kw))
    return out


def datatrove_plain(inp: Path, work: Path, tok_path: Path, language, tasks: int = 1) -> dict:
    lang = {"language": language}
    reader = lambda folder: JsonlReader(str(folder), glob_pattern="*.jsonl.gz")  # noqa: E731
    t0 = time.perf_counter()
    run([reader(inp), *datatrove_filters(language), JsonlWriter(str(work / "filtered"))], work / "l_f", tasks)
    t_f = time.perf_counter()
    mh = work / "mh"
    run([reader(work / "filtered"), MinhashDedupSignature(str(mh / "sigs"), **lang)], work / "l_m1", tasks)
    run([MinhashDedupBuckets(str(mh / "sigs"), str(mh / "buckets"))], work / "l_m2", tasks=14)
    run([MinhashDedupCluster(str(mh / "buckets"), str(mh / "remove"))], work / "l_m3")
    run([reader(work / "filtered"), MinhashDedupFilter(str(mh / "remove")), JsonlWriter(str(work / "dedup"))],
        work / "l_m4", tasks)
    t_d = time.perf_counter()
    run([reader(work / "dedup"), DocumentTokenizer(str(work / "tokens"), tokenizer_name_or_path=str(tok_path),
                                                   eos_token="</s>", shuffle_documents=False)], work / "l_t", tasks)
    t_s = time.perf_counter()
    return {"filter_s": t_f - t0, "dedup_s": t_d - t_f, "tokenize_s": t_s - t_d, "total_s": t_s - t0,
            "kept_filter": ids(work / "filtered"), "kept_final": len(ids(work / "dedup"))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=8.0, help="MB of input text (the issue's corpus: 80)")
    ap.add_argument("--tasks", type=int, default=2, help="input files = tasks = workers of each job")
    ap.add_argument("--no-spacy", action="store_true", help="skip the datatrove + spaCy baseline")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench_corpus_"))
    try:
        n_docs, n_bytes = make_input(root / "input", args.mb, files=args.tasks)
        mb = n_bytes / 1e6
        texts = (json.loads(line)["text"] for p in sorted((root / "input").glob("*.jsonl.gz"))
                 for line in gzip.open(p, "rt"))
        tok_path = root / "tokenizer.json"
        write_bytes_atomic(tok_path, train_bpe(texts, 8192).to_str().encode())  # shared by every run, not timed
        print(f"input: {n_docs:,} documents, {mb:.1f} MB of real text (docstrings of Python "
              f"{sys.version.split()[0]}'s packages), {args.tasks} tasks", flush=True)

        runs = {"ours": ours(root / "input", root / "ours", tok_path, args.tasks)}
        runs["datatrove_regex"] = datatrove_plain(root / "input", root / "dt_regex", tok_path, RegexWordTokenizer(),
                                                  args.tasks)
        have_spacy = True
        try:
            import spacy  # noqa: F401
        except ImportError:
            have_spacy = False
        if have_spacy and not args.no_spacy:
            runs["datatrove_spacy"] = datatrove_plain(root / "input", root / "dt_spacy", tok_path, "en", args.tasks)

        base = runs["ours"]["kept_filter"]
        print(f"\n{'run':<17} {'filter s':>9} {'dedup s':>8} {'tokenize s':>11} {'total s':>8} {'MB/s':>6} "
              f"{'kept (filter)':>14} {'differ':>7} {'kept (final)':>13}")
        fig = {"input_mb": round(mb, 2), "input_docs": n_docs, "tasks": args.tasks, "input": "real: docstrings"}
        for name, r in runs.items():
            diff = len(r["kept_filter"] ^ base)
            tput = mb / r["total_s"]
            print(f"{name:<17} {r['filter_s']:>9.1f} {r['dedup_s']:>8.1f} {r['tokenize_s']:>11.1f} "
                  f"{r['total_s']:>8.1f} {tput:>6.2f} {len(r['kept_filter']):>14,} {diff:>7,} {r['kept_final']:>13,}")
            fig[f"{name}_mb_s"] = round(tput, 3)
            fig[f"{name}_filter_s"] = round(r["filter_s"], 2)
            fig[f"{name}_kept_after_filters"] = len(r["kept_filter"])
            fig[f"{name}_kept_diff_vs_ours"] = diff
            fig[f"{name}_kept_final"] = r["kept_final"]
        for name in ("datatrove_spacy", "datatrove_regex"):
            if name in runs:
                fig[f"speedup_vs_{name}"] = round(runs[name]["total_s"] / runs["ours"]["total_s"], 2)
                fig[f"filter_speedup_vs_{name}"] = round(runs[name]["filter_s"] / runs["ours"]["filter_s"], 2)
        print()
        print(json.dumps(fig, sort_keys=True))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
