"""Dedup finds planted exact and near duplicates, keeps one per cluster, and finds the same near duplicates
as datatrove's stock MinHash pipeline (spaCy word splitter) on the same input."""
import gzip
import json
import random
from pathlib import Path

import pytest
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter,
                                              MinhashDedupSignature)
from datatrove.pipeline.writers import JsonlWriter

from pipeline.accounting import from_datatrove_stats
from pipeline.stages.base import StageContext
from pipeline.stages.dedup import CrossDedupStage, DedupOptions, dedup_jobs, text_hash
from pipeline.stages.documents import docs_reader

VOCAB = [f"w{i}" + "abcdefgh"[i % 8] * (i % 5 + 1) for i in range(3000)]


def make_doc(rng, n=150):
    words = [rng.choice(VOCAB) for _ in range(n)]
    return " ".join(words) + "."


def corpus():
    """Two files. Uniques u0..u29; e*: exact copies (case/whitespace changed); n*: 2 words changed."""
    rng = random.Random(7)
    base = {f"u{i}": make_doc(rng) for i in range(30)}
    files = [dict(list(base.items())[:15]), dict(list(base.items())[15:])]
    files[0]["e1"] = base["u1"].upper()                       # same file, later
    files[1]["e2"] = "  " + base["u2"].replace(" ", "\n\t ")  # other file
    files[1]["e2b"] = base["u2"]                              # a cluster of three
    for k, src in (("n3", "u3"), ("n20", "u20"), ("n25", "u25")):
        w = base[src].split(" ")
        w[30], w[110] = "changed", "words"
        files[1 if k != "n3" else 0][k] = " ".join(w)
    return files, {"e1": "u1", "e2": "u2", "e2b": "u2"}, {"n3": "u3", "n20": "u20", "n25": "u25"}


def write_files(folder: Path, files):
    folder.mkdir(parents=True)
    for i, docs in enumerate(files):
        with gzip.open(folder / f"{i:05d}.jsonl.gz", "wt") as f:
            for k, t in docs.items():
                f.write(json.dumps({"id": k, "text": t, "metadata": {"source": "s"}}) + "\n")


def run_jobs(jobs, logs: Path):
    for job in jobs:
        LocalPipelineExecutor(job.pipeline, tasks=job.tasks, workers=1,
                              logging_dir=str(logs / job.name)).run()


def read_ids(folder: Path) -> set[str]:
    return {json.loads(line)["id"] for p in sorted(folder.glob("*.jsonl.gz")) for line in gzip.open(p, "rt")}


def stats(logs: Path, job: str):
    return [json.loads(p.read_text()) for p in sorted((logs / job / "stats").glob("*.json"))]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dedup")
    files, exact, near = corpus()
    write_files(tmp / "in", files)
    run_jobs(dedup_jobs(tmp / "in", tmp / "out", tmp / "work", DedupOptions(), tasks=2), tmp / "logs")
    return tmp, files, exact, near


def test_exact_and_near_duplicates_removed_one_kept(built):
    tmp, files, exact, near = built
    kept = read_ids(tmp / "out")
    all_ids = {k for f in files for k in f}
    assert kept == all_ids - set(exact) - set(near)
    acc = from_datatrove_stats("dedup", stats(tmp / "logs", "dedup")).check()
    assert acc.docs_in == len(all_ids) and acc.docs_out == len(kept)
    assert dict(acc.dropped) == {"exact_dup": 3, "minhash_dup": 3}


def test_removed_log_names_clusters(built):
    tmp, files, exact, near = built
    log = [json.loads(line) for p in sorted((tmp / "work" / "removed").glob("*.jsonl")) for line in open(p)]
    by_id = {r["id"]: r for r in log}
    assert set(by_id) == set(exact) | set(near)
    # e2 and e2b fell into u2's cluster: the hash of the normalized text
    assert by_id["e2"]["cluster"] == by_id["e2b"]["cluster"] == f"{text_hash(files[0]['u2']):016x}"
    assert {by_id[k]["reason"] for k in near} == {"minhash_dup"}
    assert len({by_id[k]["cluster"] for k in near}) == 3  # three distinct near-dup clusters


def test_same_near_duplicates_as_stock_datatrove(built, tmp_path):
    """Our MinHash (regex word splitter, counted reasons) against datatrove's own four stages with their
    default spaCy splitter, on the same input without exact dedup: the same documents are removed."""
    pytest.importorskip("spacy")
    tmp, files, exact, near = built
    opts = DedupOptions(exact=False)
    run_jobs(dedup_jobs(tmp / "in", tmp_path / "ours", tmp_path / "ours_work", opts, tasks=2), tmp_path / "l1")
    cfg = opts.minhash_config()
    w = tmp_path / "dt"
    stock = [
        ([docs_reader(tmp / "in"), MinhashDedupSignature(str(w / "sigs"), config=cfg)], 2),
        ([MinhashDedupBuckets(str(w / "sigs"), str(w / "buckets"), config=cfg)], cfg.num_buckets),
        ([MinhashDedupCluster(str(w / "buckets"), str(w / "remove"), config=cfg)], 1),
        ([docs_reader(tmp / "in"), MinhashDedupFilter(str(w / "remove")), JsonlWriter(str(w / "out"))], 2),
    ]
    for i, (pipe, tasks) in enumerate(stock):
        LocalPipelineExecutor(pipe, tasks=tasks, workers=1, logging_dir=str(tmp_path / f"l2_{i}")).run()
    ours, theirs = read_ids(tmp_path / "ours"), read_ids(w / "out")
    assert ours == theirs
    # without exact dedup, MinHash also catches the exact copies (Jaccard 1)
    all_ids = {k for f in files for k in f}
    assert len(all_ids - ours) == len(exact) + len(near)


def test_cross_source_keeps_the_first_sources_copy(tmp_path):
    rng = random.Random(3)
    a = {f"a{i}": make_doc(rng) for i in range(5)}
    b = {f"b{i}": make_doc(rng) for i in range(5)}
    b["b_copy"] = a["a2"].lower()
    ctx = StageContext("t", None, tmp_path / "work", tmp_path / "shards", ["srca", "srcb"],
                       {"dedup": DedupOptions()})
    for s, docs in (("srca", a), ("srcb", b)):
        write_files(ctx.dir("filter", s), [docs])
    from pipeline.stages.dedup import DedupStage
    for s in ctx.sources:
        st = DedupStage(ctx, s)
        run_jobs(st.jobs(), st.output_dir / "_logs")
    cross = CrossDedupStage(ctx)
    run_jobs(cross.jobs(), cross.output_dir / "_logs")
    assert read_ids(ctx.dir("dedup_cross", "srca")) == set(a)
    assert read_ids(ctx.dir("dedup_cross", "srcb")) == set(b) - {"b_copy"}
    accs = cross.accounts()
    assert accs["srcb"].check().dropped == {"cross_source_dup": 1}
    assert accs["srca"].check().docs_out == 5
