"""The ``decontaminate`` stage: drop training documents that share a long n-gram with an evaluation set.

Optional: list ``"decontaminate"`` in ``[corpus] stages`` (after ``filter``); the dedup stage then reads its
output instead of the filter's (``after_if_configured``). Config (``[decontaminate]``)::

    [decontaminate]
    evalsets = ["gsm8k", "humaneval", "mbpp", "mmlu", "arc", "hellaswag", "truthfulqa", "winogrande"]
    n = 13                                # GPT-3's 13-grams, as OLMo's and Dolma's decontamination
    mirror_root = "/data/hf-mirror"       # <root>/<repo_id>/<path in repo>; "" = download from the hub
    [decontaminate.custom.mytask]         # any local files: jsonl, json or parquet, the fields to index
    files = ["/data/evals/mytask/*.jsonl"]
    fields = ["question", "answer"]

Contract: a document is dropped when any of its n-grams (after datatrove's ``simplify_text``: lower case,
numbers as 0, punctuation and diacritics removed, whitespace collapsed) is an n-gram of an evaluation example;
it is counted as ``decontaminated_<evalset>`` in this stage's accounting (the evaluation set of the first
matching n-gram in the document). An example is indexed as the text a leak would show: question and answer
together (so the n-grams of each and those across the seam), each multiple-choice option after its question,
WinoGrande's sentence with each option in the blank. A text shorter than ``n`` words has no n-gram.

One unit for the corpus: its first job builds the index once, as datatrove's ``<evalset>.index.hashes``
files (uint64 xxhash64 of the n-grams, the format its ``NGramsDecontFilter`` reads) in
``work/<corpus>/_corpus/decontaminate/index/``; datatrove's own indexer needs lighteval and the hub to read
the tasks, which is why this module reads the evaluation files itself. Then one job per source filters the
filter stage's documents into ``work/<corpus>/<source>/decontaminate/``, looking n-grams up in one sorted
array. The unit's fingerprint holds the options and the sha256 of local evaluation files (custom sets, a
mirror), so changing either reruns it and what follows, never the filters before it.

``EVALSETS`` names the paper's Table 3 benchmarks with their hub layout (the split the Open LLM Leaderboard
scores: test, or validation where test labels are hidden).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Callable

import numpy as np
import xxhash
from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.utils.text import TextNormConfig, simplify_text

from jetmoe_core.io import sha256_file

from pipeline.accounting import StageAccount, from_datatrove_stats
from pipeline.stages.base import Job, Stage, register
from pipeline.stages.documents import docs_reader, docs_writer, n_input_files


@dataclass(frozen=True)
class EvalSet:
    repo_id: str
    revision: str
    patterns: tuple[str, ...]
    #: one example (a row) -> the texts to index
    texts: Callable[[dict], list[str]]
    fields: str


def _join(*parts) -> str:
    return "\n".join(str(p) for p in parts if p)


def _nested(row: dict, key: str) -> Any:
    for k in key.split("."):
        row = row.get(k) if isinstance(row, dict) else None
    return row


EVALSETS: dict[str, EvalSet] = {
    "gsm8k": EvalSet("openai/gsm8k", "main", ("main/test-*.parquet",),
                     lambda r: [_join(r["question"], r["answer"])], "question, answer"),
    "humaneval": EvalSet("openai/openai_humaneval", "main", ("openai_humaneval/test-*.parquet",),
                         lambda r: [_join(r["prompt"], r["canonical_solution"])], "prompt, canonical_solution"),
    "mbpp": EvalSet("google-research-datasets/mbpp", "main", ("full/test-*.parquet",),
                    lambda r: [_join(r["text"], r["code"])], "text, code"),
    "mmlu": EvalSet("cais/mmlu", "main", ("all/test-*.parquet",),
                    lambda r: [_join(r["question"], " ".join(map(str, r["choices"])))], "question, choices"),
    "arc": EvalSet("allenai/ai2_arc", "main", ("ARC-Challenge/test-*.parquet",),
                   lambda r: [_join(r["question"], " ".join(map(str, _nested(r, "choices.text") or [])))],
                   "question, choices.text"),
    # the repo holds a loading script; the hub's parquet conversion branch holds the data
    "hellaswag": EvalSet("Rowan/hellaswag", "refs/convert/parquet", ("default/validation/*.parquet",),
                         lambda r: [f"{r['ctx']} {e}" for e in r["endings"]], "ctx, endings"),
    "truthfulqa": EvalSet("truthfulqa/truthful_qa", "main", ("generation/validation-*.parquet",),
                          lambda r: [_join(r["question"], a) for a in
                                     [r["best_answer"], *r["correct_answers"], *r["incorrect_answers"]]],
                          "question, best_answer, correct_answers, incorrect_answers"),
    "winogrande": EvalSet("allenai/winogrande", "main", ("winogrande_xl/validation-*.parquet",),
                          lambda r: [r["sentence"].replace("_", r["option1"]),
                                     r["sentence"].replace("_", r["option2"])], "sentence, option1, option2"),
}


@dataclass
class CustomEvalSet:
    """``[decontaminate.custom.<name>]``: local files (globs) and the fields joined into one text."""
    files: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)

    def __post_init__(self):
        if not self.files or not self.fields:
            raise ValueError("a custom evaluation set needs files (paths or globs) and fields (keys to index)")


@dataclass
class DecontOptions:
    """The ``[decontaminate]`` table."""
    #: names from EVALSETS or from ``custom``; the paper's Table 3 by default
    evalsets: list[str] = field(default_factory=lambda: list(EVALSETS))
    n: int = 13
    #: a local folder laid out as <mirror_root>/<repo_id>/<path in repo>; "" = download from the hub
    mirror_root: str = ""
    custom: dict[str, CustomEvalSet] = field(default_factory=dict)

    def __post_init__(self):
        self.custom = {k: v if isinstance(v, CustomEvalSet) else CustomEvalSet(**v) for k, v in self.custom.items()}
        unknown = [e for e in self.evalsets if e not in EVALSETS and e not in self.custom]
        if unknown:
            raise ValueError(f"[decontaminate] evalsets {unknown} unknown; built in: {', '.join(EVALSETS)}; "
                             f"or describe one under [decontaminate.custom.<name>]")
        if self.n < 3:
            raise ValueError(f"[decontaminate] n = {self.n}: n-grams this short match ordinary text")


# ---------------------------------------------------------------------------------------------- text
_NORM = TextNormConfig(norm_unicode_diacritics=False)


@cache
def _marks() -> dict[int, None]:
    """Combining marks, removed after NFD: datatrove's diacritics step as one C-level ``str.translate``."""
    return {c: None for c in range(0x110000) if unicodedata.category(chr(c)) == "Mn"}


def normalize(text: str) -> str:
    """datatrove's ``simplify_text`` with its default config (the diacritics step vectorised)."""
    return unicodedata.normalize("NFD", simplify_text(text, _NORM)).translate(_marks()).strip()


def ngram_hashes(text: str, n: int) -> np.ndarray:
    """xxhash64 of every word n-gram (words joined by one space) of the normalized text."""
    words = normalize(text).split()
    grams = map(" ".join, zip(*(words[i:] for i in range(n))))
    return np.fromiter(map(xxhash.xxh64_intdigest, grams), dtype=np.uint64)


# ---------------------------------------------------------------------------------------------- eval files
def _rows(path: Path):
    name = path.name
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        yield from pq.read_table(path).to_pylist()
    elif name.endswith((".jsonl", ".jsonl.gz")):
        import gzip

        with (gzip.open(path, "rt") if name.endswith(".gz") else open(path)) as f:
            for i, line in enumerate(f, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as e:
                        raise ValueError(f"{path}:{i}: not JSON ({e.msg}); evaluation files are JSON Lines") from None
    elif name.endswith(".json"):
        data = json.loads(path.read_text())
        yield from (data if isinstance(data, list) else data.get("data", []))
    else:
        raise ValueError(f"{path}: unknown evaluation file type; use .parquet, .jsonl(.gz) or .json")


def eval_files(name: str, opts: DecontOptions, download_dir: Path | None = None) -> list[Path]:
    """The local files of one evaluation set: globs (custom), a mirror, or a hub snapshot."""
    from pipeline.hub import list_mirror, resolve_commit, snapshot

    if name in opts.custom:
        files = sorted({Path(p) for pat in opts.custom[name].files for p in glob.glob(os.path.expanduser(pat))})
        if not files:
            raise FileNotFoundError(f"[decontaminate.custom.{name}] files {opts.custom[name].files} "
                                    f"match no file")
        return files
    spec = EVALSETS[name]
    if opts.mirror_root:
        listed = list_mirror(opts.mirror_root, spec.repo_id, spec.patterns)
    else:
        if download_dir is None:
            raise ValueError("hub evaluation sets need a download folder")
        commit = resolve_commit(spec.repo_id, "dataset", spec.revision)
        listed = snapshot(spec.repo_id, "dataset", commit, spec.patterns, download_dir / name)
    if not listed:
        raise FileNotFoundError(f"evaluation set {name}: no file of {spec.repo_id} matches {list(spec.patterns)}"
                                + (f" under {opts.mirror_root}" if opts.mirror_root else ""))
    return [Path(f["path"]) for f in listed]


def example_texts(name: str, opts: DecontOptions, files: list[Path]) -> list[str]:
    out = []
    for path in files:
        for i, row in enumerate(_rows(path)):
            try:
                if name in opts.custom:
                    out.append(_join(*(_nested(row, k) for k in opts.custom[name].fields)))
                else:
                    out += EVALSETS[name].texts(row)
            except (KeyError, TypeError, AttributeError) as e:
                fields = ", ".join(opts.custom[name].fields) if name in opts.custom else EVALSETS[name].fields
                raise ValueError(f"{path}: row {i} lacks the fields evaluation set {name} needs ({fields}): "
                                 f"{type(e).__name__}: {e}") from None
    return out


def decont_fingerprint(opts: DecontOptions) -> list:
    """What the decontamination's output depends on beyond the options: the local evaluation files' bytes (hub
    sets are read at the revision the options name)."""
    out = []
    for name in opts.evalsets:
        if name in opts.custom or opts.mirror_root:
            out.append([name, [sha256_file(p) for p in eval_files(name, opts)]])
    return out


def build_index(opts: DecontOptions, out: Path, download_dir: Path | None = None) -> Path:
    """Write ``<evalset>.index.hashes`` for every evaluation set, and ``index.json`` (examples, n-grams and
    files per set), into the folder ``out`` (replaced whole, atomically); returns ``out``. Hub sets are
    downloaded into ``download_dir`` (default ``out/../_downloads``)."""
    out = Path(out)
    files = {name: eval_files(name, opts, download_dir or out.parent / "_downloads") for name in opts.evalsets}
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    counts = {}
    for name in opts.evalsets:
        texts = example_texts(name, opts, files[name])
        hashes = np.unique(np.concatenate([ngram_hashes(t, opts.n) for t in texts] or [np.zeros(0, np.uint64)]))
        hashes.astype("<u8").tofile(tmp / f"{name}.index.hashes")
        counts[name] = {"examples": len(texts), "ngrams": int(len(hashes)),
                        "files": [str(p) for p in files[name]]}
    (tmp / "index.json").write_text(json.dumps({"n": opts.n, "evalsets": counts}, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(out, ignore_errors=True)  # a rebuild after a killed run: the new index replaces the old
    os.replace(tmp, out)
    return out


class DecontFilter(BaseFilter):
    """Drops a document sharing an n-gram with an indexed evaluation set (``decontaminated_<evalset>``)."""

    name = "🦠 decontaminate"

    def __init__(self, index_dir: str, evalsets: list[str], n: int, exclusion_writer=None):
        super().__init__(exclusion_writer)
        self.index_dir, self.evalsets, self.n = str(index_dir), list(evalsets), n
        self._hashes: np.ndarray | None = None
        self._owner: np.ndarray | None = None

    def _load(self) -> None:
        arrays = [np.fromfile(Path(self.index_dir) / f"{e}.index.hashes", dtype="<u8") for e in self.evalsets]
        allh = np.concatenate(arrays) if arrays else np.zeros(0, np.uint64)
        owner = np.concatenate([np.full(len(a), i, np.int32) for i, a in enumerate(arrays)] or [np.zeros(0, np.int32)])
        # one entry per hash, owned by the first evaluation set listed that has it (np.unique keeps the first)
        self._hashes, first = np.unique(allh, return_index=True)
        self._owner = owner[first]

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if self._hashes is None:
            self._load()
        grams = ngram_hashes(doc.text, self.n)
        if not len(grams) or not len(self._hashes):
            return True
        pos = np.searchsorted(self._hashes, grams).clip(max=len(self._hashes) - 1)
        hit = np.flatnonzero(self._hashes[pos] == grams)
        if not len(hit):
            return True
        return False, f"decontaminated_{self.evalsets[self._owner[pos[hit[0]]]]}"


class BuildIndex(PipelineStep):
    """The index job's one task: :func:`build_index` into the stage's ``index/`` folder."""

    type = "🔎 - INDEX"
    name = "🦠 evaluation n-grams"

    def __init__(self, opts: DecontOptions, out: str):
        super().__init__()
        self.opts, self.out = opts, out

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        build_index(self.opts, Path(self.out))
        return
        yield


@register
class DecontaminateStage(Stage):
    name = "decontaminate"
    version = "v1"
    after = ("filter",)
    scope = "corpus"
    section = "decontaminate"
    Options = DecontOptions

    @property
    def index_dir(self) -> Path:
        return self.output_dir / "index"

    def jobs(self) -> list[Job]:
        opts = self.options or DecontOptions()
        jobs = [Job("index", [BuildIndex(opts, str(self.index_dir))])]
        for s in self.ctx.sources:
            src = self.input_dir("filter", s)
            jobs.append(Job(f"decontaminate_{s}", [docs_reader(src), DecontFilter(str(self.index_dir), opts.evalsets,
                                                                                  opts.n),
                                                   docs_writer(self.ctx.dir(self.name, s))],
                            tasks=n_input_files(src), counts=True))
        return jobs

    def fingerprint_extra(self):
        opts = self.options or DecontOptions()
        return [opts, decont_fingerprint(opts)]

    def output_paths(self) -> list[Path]:
        return [self.output_dir, *(self.ctx.dir(self.name, s) for s in self.ctx.sources)]

    def accounts(self) -> dict[str, StageAccount]:
        return {s: from_datatrove_stats(self.name, self.task_stats(f"decontaminate_{s}")) for s in self.ctx.sources}
