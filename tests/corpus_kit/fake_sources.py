"""Tiny fake sources over a mirror folder a test writes, for tests of the corpus DAG runner.

    mirror = make_mirror(tmp_path)                     # fake/alpha (3 files), fake/beta, fake/grp (shared)
    cfg = write_config(tmp_path, mirror, tasks=2)      # download + format of every fake source
    build(cfg, registry=REGISTRY, progress=False)
    read_outputs(tmp_path / "work")                    # every output file's bytes (logs left out)

The fakes are real ``SourceSpec``s (real readers, real datatrove executors); only the adapters are tiny.
``grp_a``/``grp_b`` share one file and route each record by a field, as the Pile's sources do.
"""

from __future__ import annotations

import gzip
import json
import os
import textwrap
import time
from pathlib import Path

from pipeline.sources.base import Row, SourceSpec


def _plain(row: Row, spec: SourceSpec, _t):
    return row.doc(spec.name, row.text("text"))


def _routed(row: Row, spec: SourceSpec, _t):
    # like the Pile: one shared file, each record routed to a member source by a field
    return row.doc("grp_" + row.text("part"), row.text("text"))


def spec(name, repo, adapter=_plain, group="", rejects_to=None, patterns=("data/*.jsonl",)):
    return SourceSpec(name=name, family="web", repo_id=repo, revision="main", allow_patterns=patterns,
                      file_format="jsonl", description=f"fake {name}", adapter=adapter, input_group=group,
                      rejects_to=rejects_to)


REGISTRY = {
    "alpha": spec("alpha", "fake/alpha"),
    "beta": spec("beta", "fake/beta"),
    "grp_a": spec("grp_a", "fake/grp", _routed, "grp", "grp_b"),
    "grp_b": spec("grp_b", "fake/grp", _routed, "grp", "grp_b"),
}


def make_mirror(root: Path, n_alpha_files: int = 3) -> Path:
    """alpha: 3 files x 5 records (1 blank text, 1 invalid JSON in file 0); beta: 1 file; grp: shared file."""
    mirror = root / "mirror"
    for i in range(n_alpha_files):
        lines = [json.dumps({"text": f"alpha doc {i}-{j} " + "word " * j}) for j in range(4)]
        lines.append(json.dumps({"text": "   "}))  # rejected: empty_text
        if i == 0:
            lines.append("{not json")  # rejected: invalid_json
        _write(mirror / "fake/alpha/data" / f"part-{i}.jsonl", "\n".join(lines) + "\n")
    _write(mirror / "fake/alpha/README.md", "not a data file: outside allow_patterns")
    _write(mirror / "fake/beta/data/only.jsonl",
           "\n".join(json.dumps({"text": f"beta {j}"}) for j in range(7)) + "\n")
    grp = [json.dumps({"part": "a" if j % 3 else "b", "text": f"grp doc {j}"}) for j in range(10)]
    grp.insert(4, json.dumps({"text": "no part field"}))  # rejected: missing_field → counted to grp_b
    _write(mirror / "fake/grp/data/shared.jsonl", "\n".join(grp) + "\n")
    return mirror


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


ALL_STAGES = ["download", "format", "filter", "dedup", "dedup_cross", "tokenizer", "shard", "manifest"]


def write_config(root: Path, mirror: Path, *, sources='"all"', executor='kind = "local"\nworkers = 1',
                 tasks: int = 2, extra: str = "", stages: list[str] = ("download", "format")) -> Path:
    cfg = root / "corpus.toml"
    cfg.write_text(textwrap.dedent(f"""\
        [corpus]
        name = "fake"
        work_dir = "{root / 'work'}"
        shards_dir = "{root / 'shards'}"
        sources = {sources}
        stages = {json.dumps(list(stages))}

        [executor]
        """) + executor + textwrap.dedent(f"""

        [download]
        mirror_root = "{mirror}"

        [format]
        tasks = {tasks}
        """) + extra)
    return cfg


def read_outputs(work: Path) -> dict[str, bytes]:
    """Every output file of a build (logs excluded: they carry timestamps)."""
    return {p.relative_to(work).as_posix(): p.read_bytes() for p in sorted(work.rglob("*"))
            if p.is_file() and "_logs" not in p.parts and p.name != "_STARTED.json"}


def docs_of(work: Path, source: str) -> list[dict]:
    out = []
    for p in sorted((work / source / "format").glob("*.jsonl.gz")):
        out += [json.loads(line) for line in gzip.open(p, "rt")]
    return out


def _gated(row: Row, spec: SourceSpec, _t):
    text = row.text("text")
    gate = os.environ.get("DAG_TEST_GATE")
    if gate and text.startswith("GATE"):
        # the build under test stops here until killed: it is inside a task, after other tasks finished
        Path(gate + ".reached").touch()
        while Path(gate).exists():
            time.sleep(0.05)
    return row.doc(spec.name, text)


#: alpha's adapter stops at a record starting with "GATE" while $DAG_TEST_GATE names a file that exists
GATED = {**REGISTRY, "alpha": spec("alpha", "fake/alpha", _gated)}


# -- a small real corpus: three of the embedded samples, every stage ------------------------------------------
REPO_ROOT = Path(__file__).resolve().parents[2]
SMALL_REPOS = {"templategsm": "math-ai/TemplateGSM", "oasst_octopack": "bigcode/oasst-octopack",
               "magicoder_oss": "ise-uiuc/Magicoder-OSS-Instruct-75K"}


def small_corpus_config(root: Path, *, workers: int = 1, minhash: bool = False, tasks: int = 1,
                        extra: str = "", stages: list[str] = ALL_STAGES) -> Path:
    """``root/corpus.toml``: the real sources templategsm, oasst_octopack and magicoder_oss read from a copy
    of their embedded samples in ``root/mirror``, through every stage (download to manifest; or ``stages``),
    with a 300-token tokenizer; work in ``root/work``, shards in ``root/shards``. A build takes seconds."""
    import shutil

    mirror = root / "mirror"
    for repo in SMALL_REPOS.values():
        if not (mirror / repo).exists():
            shutil.copytree(REPO_ROOT / "pipeline/samples" / repo, mirror / repo)
    return write_config(root, mirror, sources=json.dumps(list(SMALL_REPOS)), stages=stages, tasks=tasks,
                        executor=f'kind = "local"\nworkers = {workers}',
                        extra=f"\n[dedup]\nminhash = {str(minhash).lower()}\n\n[tokenizer]\nvocab_size = 300\n"
                              f"\n[shards]\nval_fraction = 0.1\n" + extra)


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by relative path."""
    import hashlib

    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}
