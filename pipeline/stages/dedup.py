"""Deduplication: exact (normalized-text hash) and MinHash near-duplicates within each source, then exact
across sources.

Config (``[dedup]`` in the corpus TOML)::

    [dedup]
    exact = true            # drop a document whose normalized text was seen earlier in the source
    minhash = true          # datatrove's MinHash LSH: 5-gram shingles, 14 bands x 8 rows by default
    [dedup.policy]          # per source: "minhash" (exact + near) or "exact" (exact only); others: the above
    templategsm = "exact"   # its near-duplicates are its design (thousands of problems per template)
    n_grams = 5
    num_buckets = 14        # bands; with 8 rows a pair with Jaccard 0.8 is caught ~92% of the time
    hashes_per_bucket = 8
    seed = 1
    word_splitter = "regex" # shingles are word n-grams: "regex" (pipeline/text.py) or "spacy"
    cross_source = true     # drop a document whose normalized text a source earlier in the config kept

The stage reads the filter stage's documents, or the decontaminate stage's when ``[corpus] stages`` lists it.
Which copy is kept is deterministic: for exact duplicates the first in (task, position) order; for MinHash the
root of datatrove's union-find; across sources the copy in the source listed first in the config.
Removed documents are counted under ``exact_dup`` / ``minhash_dup`` / ``cross_source_dup``, and each one is
logged with the cluster it fell into in ``<stage dir>/removed/<rank>.<exact|minhash|cross>.jsonl``
(``{"id", "reason", "cluster"}``: the normalized-text hash, or datatrove's MinHash cluster id).
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import xxhash
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster,
                                              MinhashDedupSignature)
from jetmoe_core.io import atomic_path, write_text_atomic

from pipeline.accounting import StageAccount, from_datatrove_stats
from pipeline.stages.base import Job, Stage, register
from pipeline.stages.documents import docs_reader, docs_writer, n_input_files
from pipeline.text import word_splitter


#: what ``[dedup.policy]`` can give a source
DEDUP_LEVELS = ("exact", "minhash")


@dataclass
class DedupOptions:
    """The ``[dedup]`` table."""
    exact: bool = True
    minhash: bool = True
    #: source -> "minhash" (exact + MinHash near-dedup) or "exact" (exact only); unlisted sources take
    #: ``exact`` and ``minhash`` above. Near-dedup is noise removal where near-duplicates are noise, and data
    #: loss where they are the dataset's design (templated problems, one row per answer, shared prompts).
    policy: dict[str, str] = field(default_factory=dict)
    n_grams: int = 5
    num_buckets: int = 14
    hashes_per_bucket: int = 8
    seed: int = 1
    word_splitter: Literal["regex", "spacy"] = "regex"
    language: str = "en"
    cross_source: bool = True
    #: tables keyed by source name: the config loader checks each name against the catalog and the config's own
    SOURCE_KEYED = ("policy",)

    def __post_init__(self):
        for src, level in self.policy.items():
            if level not in DEDUP_LEVELS:
                raise ValueError(f"[dedup.policy] {src} = {level!r}: use one of {', '.join(DEDUP_LEVELS)}")

    def validate(self) -> None:
        """Checks the config loader runs when the file is read: the MinHash numbers (the sources the policy
        names: the config loader, ``SOURCE_KEYED``)."""
        for key in ("n_grams", "num_buckets", "hashes_per_bucket"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")

    def for_source(self, source: str) -> "DedupOptions":
        """These options with the source's policy applied (exact dedup stays on for every level)."""
        level = self.policy.get(source)
        if level is None:
            return self
        return replace(self, exact=True, minhash=level == "minhash")

    def minhash_config(self) -> MinhashConfig:
        return MinhashConfig(n_grams=self.n_grams, num_buckets=self.num_buckets,
                             hashes_per_bucket=self.hashes_per_bucket, seed=self.seed)


_WS = re.compile(r"\s+")


def text_hash(text: str) -> int:
    """64-bit hash of the normalized text: NFKC, lower case, whitespace runs collapsed, ends stripped."""
    norm = _WS.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()
    return xxhash.xxh3_64_intdigest(norm.encode("utf-8"))


def _save_array(path: Path, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, arr)


def _load_hashes(folder: Path, ranks=None) -> list[np.ndarray]:
    files = sorted(Path(folder).glob("*.npy"))
    return [np.load(p) for p in files if ranks is None or int(p.stem) in ranks]


class _RemovedLog:
    """``removed/<rank>.<kind>.jsonl``: one line per removed document with its cluster (written atomically)."""

    def __init__(self, folder: Path | None, rank: int, kind: str):
        self.path = Path(folder) / f"{rank:05d}.{kind}.jsonl" if folder else None
        self.lines: list[str] = []

    def add(self, doc_id: str, reason: str, cluster) -> None:
        if self.path:
            self.lines.append(json.dumps({"id": doc_id, "reason": reason, "cluster": cluster}))

    def close(self) -> None:
        if self.path:
            write_text_atomic(self.path, "".join(line + "\n" for line in self.lines))


class HashWriter(PipelineStep):
    """Pass-through step that saves the text hash of every document it sees to ``<folder>/<rank>.npy``."""

    type = "🫂 - DEDUP"
    name = "#️⃣ text hashes"

    def __init__(self, folder: str):
        super().__init__()
        self.folder = Path(folder)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        hashes = []
        for doc in data:
            self.stat_update("total")
            hashes.append(text_hash(doc.text))
            yield doc
        _save_array(self.folder / f"{rank:05d}.npy", np.array(hashes, dtype=np.uint64))


class ExactDupFilter(PipelineStep):
    """Drops a document whose hash occurs earlier: in a lower rank, or earlier in this rank's stream.

    Reads the hashes ``HashWriter`` saved for the same input, so it must see the same documents in the same
    order. Memory: 8 bytes per document of the lower ranks (sorted uint64 array).
    """

    type = "🫂 - DEDUP"
    name = "🟰 exact dedup"

    def __init__(self, hash_folder: str, removed_folder: str | None = None):
        super().__init__()
        self.hash_folder = Path(hash_folder)
        self.removed_folder = removed_folder

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        own_path = self.hash_folder / f"{rank:05d}.npy"
        own = np.load(own_path) if own_path.exists() else np.zeros(0, np.uint64)
        earlier = _load_hashes(self.hash_folder, ranks=set(range(rank)))
        seen = np.unique(np.concatenate(earlier)) if earlier else np.zeros(0, np.uint64)
        dup = np.isin(own, seen)
        _, first = np.unique(own, return_index=True)
        later = np.ones(len(own), bool)
        later[first] = False
        dup |= later
        log = _RemovedLog(self.removed_folder, rank, "exact")
        for i, doc in enumerate(data):
            if i >= len(own):
                raise RuntimeError(f"{own_path}: fewer hashes ({len(own)}) than documents: the input changed "
                                   f"since the hashes were written; delete {self.hash_folder} and rerun")
            self.stat_update("total")
            if dup[i]:
                self.stat_update("dropped_exact_dup")
                log.add(doc.id, "exact_dup", f"{int(own[i]):016x}")
                continue
            self.stat_update("forwarded")
            yield doc
        log.close()


class MinhashFilter(PipelineStep):
    """Applies the ``.remove`` lists of datatrove's ``MinhashDedupCluster``, counting each removal as
    ``minhash_dup`` and logging its cluster id (datatrove's own ``MinhashDedupFilter`` counts a bare
    ``dropped`` and only tags the documents it keeps)."""

    type = "🫂 - DEDUP"
    name = "🎯 MinHash filter"

    def __init__(self, remove_folder: str, removed_folder: str | None = None):
        super().__init__()
        self.remove_folder = Path(remove_folder)
        self.removed_folder = removed_folder

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        rm_path = self.remove_folder / f"{rank:06d}.remove"
        cl_path = self.remove_folder / f"{rank:06d}.clusters"
        remove = set(np.fromfile(rm_path, dtype="<u4").tolist()) if rm_path.exists() else set()
        clusters = {}
        if cl_path.exists():
            pairs = np.fromfile(cl_path, dtype="<u4").reshape(-1, 2)
            clusters = dict(zip(pairs[:, 0].tolist(), pairs[:, 1].tolist()))
        log = _RemovedLog(self.removed_folder, rank, "minhash")
        for i, doc in enumerate(data):
            self.stat_update("total")
            if i in remove:
                self.stat_update("dropped_minhash_dup")
                log.add(doc.id, "minhash_dup", clusters.get(i, -1))
                continue
            self.stat_update("forwarded")
            yield doc
        log.close()


class CrossSourceFilter(PipelineStep):
    """Drops a document whose hash a source earlier in the config kept (that copy stays)."""

    type = "🫂 - DEDUP"
    name = "🔀 cross-source dedup"

    def __init__(self, earlier: list[tuple[str, str]], removed_folder: str | None = None):
        super().__init__()
        self.earlier = earlier  # [(source, kept-hash folder)] in config order
        self.removed_folder = removed_folder

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        tables = []
        for src, folder in self.earlier:
            arrs = _load_hashes(Path(folder))
            if arrs:
                tables.append((src, np.unique(np.concatenate(arrs))))
        log = _RemovedLog(self.removed_folder, rank, "cross")
        for doc in data:
            self.stat_update("total")
            h = np.uint64(text_hash(doc.text))
            kept_in = next((src for src, t in tables if _contains(t, h)), None)
            if kept_in is not None:
                self.stat_update("dropped_cross_source_dup")
                log.add(doc.id, "cross_source_dup", f"{int(h):016x}@{kept_in}")
                continue
            self.stat_update("forwarded")
            yield doc
        log.close()


def _contains(sorted_arr: np.ndarray, h: np.uint64) -> bool:
    i = np.searchsorted(sorted_arr, h)
    return bool(i < len(sorted_arr) and sorted_arr[i] == h)


def dedup_jobs(src: Path, out: Path, work: Path, opts: DedupOptions, tasks: int) -> list[Job]:
    """The within-source dedup pipelines: ``src`` documents → ``out`` documents, scratch under ``work``."""
    removed = str(work / "removed")
    exact_hashes, kept_hashes = work / "_exact", work / "_kept_hashes"
    sigs, buckets, remove = work / "_minhash" / "sigs", work / "_minhash" / "buckets", work / "_minhash" / "remove"
    cfg = opts.minhash_config()
    jobs = []
    pre = []  # steps every later pass over the input repeats, so that MinHash indexes line up
    if opts.exact:
        jobs.append(Job("exact_hashes", [docs_reader(src), HashWriter(str(exact_hashes))], tasks=tasks))
        pre = [ExactDupFilter(str(exact_hashes))]
    final = [docs_reader(src)]
    if opts.exact:
        final.append(ExactDupFilter(str(exact_hashes), removed))
    if opts.minhash:
        splitter = word_splitter(opts.word_splitter, opts.language)
        jobs += [
            Job("minhash_signatures",
                [docs_reader(src), *pre, MinhashDedupSignature(str(sigs), config=cfg, language=splitter)], tasks=tasks),
            Job("minhash_buckets", [MinhashDedupBuckets(str(sigs), str(buckets), config=cfg)],
                tasks=cfg.num_buckets),
            Job("minhash_clusters", [MinhashDedupCluster(str(buckets), str(remove), config=cfg, save_cluster_id=True)]),
        ]
        final.append(MinhashFilter(str(remove), removed))
    final += [HashWriter(str(kept_hashes)), docs_writer(out)]
    jobs.append(Job("dedup", final, tasks=tasks, counts=True))
    return jobs


@register
class DedupStage(Stage):
    name = "dedup"
    version = "v1"
    after = ("filter",)
    # when configured, decontamination runs between the filters and dedup, and dedup reads its output
    after_if_configured = ("decontaminate",)
    scope = "source"
    section = "dedup"
    Options = DedupOptions

    def fingerprint_extra(self):
        # this source's level, not the whole policy: changing another source's level reruns only that source
        return replace((self.options or DedupOptions()).for_source(self.source), policy={})

    def jobs(self) -> list[Job]:
        opts = (self.options or DedupOptions()).for_source(self.source)
        src = self.input_dir("decontaminate" if "decontaminate" in self.ctx.stages else "filter")
        return dedup_jobs(src, self.output_dir, self.output_dir, opts, n_input_files(src))


@register
class CrossDedupStage(Stage):
    """Exact dedup across sources: corpus scope, writes each source's documents to
    ``work/<corpus>/<source>/dedup_cross/`` (what the shard stage reads)."""

    name = "dedup_cross"
    version = "v1"
    after = ("dedup",)
    scope = "corpus"
    section = "dedup"
    Options = DedupOptions

    def jobs(self) -> list[Job]:
        opts = self.options or DedupOptions()
        jobs = []
        for i, s in enumerate(self.ctx.sources):
            src = self.ctx.dir("dedup", s)
            earlier = [(e, str(self.ctx.dir("dedup", e) / "_kept_hashes")) for e in self.ctx.sources[:i]]
            step = CrossSourceFilter(earlier if opts.cross_source else [],
                                     str(self.ctx.dir("dedup_cross", s) / "removed"))
            jobs.append(Job(f"cross_{s}", [docs_reader(src), step, docs_writer(self.ctx.dir("dedup_cross", s))],
                            tasks=n_input_files(src), counts=True))
        return jobs

    def output_paths(self) -> list[Path]:
        return [self.output_dir, *(self.ctx.dir("dedup_cross", s) for s in self.ctx.sources)]

    def accounts(self) -> dict[str, StageAccount]:
        out = {}
        for s in self.ctx.sources:
            out[s] = from_datatrove_stats(self.name, self.task_stats(f"cross_{s}"))
        return out
