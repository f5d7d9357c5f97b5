"""A tiny corpus made by the real stages (filter → dedup → cross-source dedup → tokenizer → shards →
manifest) from documents made here: three sources, a few hundred short documents, a 400-token vocabulary.

    shards = build_tiny_corpus(tmp_path, **SMALL_PARTS)    # shards/<source>/{train,val}/part-*.arrow + manifest
    ctx = make_ctx(root); write_format_output(ctx); run_stages(ctx, ["filter", "dedup"])   # part of the way

The documents include one of each thing the stages must catch: an exact duplicate, a Gopher drop, a
cross-source duplicate (weba is listed first) and a code file with a 900-column line. Same arguments, same
bytes.
"""
import gzip
import hashlib
import json
import random
from pathlib import Path
from types import SimpleNamespace

from datatrove.executor import LocalPipelineExecutor

from jetmoe_core.io import write_json_atomic

from pipeline.accounting import StageAccount
from pipeline.stages.base import StageContext
from pipeline.stages.dedup import CrossDedupStage, DedupOptions, DedupStage
from pipeline.stages.filter import FilterOptions, FilterStage
from pipeline.stages.manifest import ManifestStage
from pipeline.stages.shard import ShardOptions, ShardStage
from pipeline.stages.tokenizer import TokenizerOptions, TokenizerStage

SOURCES = {"weba": "web", "webb": "web", "codea": "code"}
STAGE_NAMES = ["format", "filter", "dedup", "dedup_cross", "tokenizer", "shard", "manifest"]
VOCAB = 400

STOP = ["the", "of", "and", "to", "with", "that", "have", "be", "in", "a"]


def name(rng):
    return "".join(rng.choice("bcdfghklmnprstvz") + rng.choice("aeiou") for _ in range(rng.randint(2, 4)))


def prose(rng, lines=8):
    """Made-up words between English stop words: passes the web filters, never repeats itself."""
    out = []
    for _ in range(lines):
        sents = []
        for _ in range(2):
            words = [rng.choice(STOP) if rng.random() < 0.35 else name(rng) for _ in range(rng.randint(9, 16))]
            sents.append(" ".join(words).capitalize() + ".")
        out.append(" ".join(sents))
    return "\n".join(out)


def code(rng):
    fn, arg = name(rng).lower(), name(rng).lower()
    return (f"def {fn}({arg}, limit=10):\n    total = 0\n    for i in range(limit):\n        total += {arg} * i\n"
            f"    return total\n\n\nclass {name(rng).title()}:\n    value: int = {rng.randint(0, 99)}\n")


def make_docs():
    rng = random.Random(11)
    docs = {"weba": [prose(rng) for _ in range(60)], "webb": [prose(rng) for _ in range(40)],
            "codea": [code(rng) for _ in range(40)]}
    docs["weba"] += [docs["weba"][3], "too short to keep"]        # exact dup, gopher drop
    docs["webb"] += [docs["weba"][7]]                                # cross-source dup (weba is listed first)
    docs["codea"] += ["x = [" + ",".join(["1"] * 900) + "]\n"]     # code_max_line_length
    return docs


def make_ctx(root: Path, **shard_kw) -> StageContext:
    cfg = SimpleNamespace(sha256="0" * 64, corpus=SimpleNamespace(stages=STAGE_NAMES))
    opts = {"filters": FilterOptions(policy=dict(SOURCES)), "dedup": DedupOptions(),
            "tokenizer": TokenizerOptions(vocab_size=VOCAB), "shards": ShardOptions(val_fraction=0.1, **shard_kw)}
    return StageContext("tiny", cfg, root / "work", root / "shards", list(SOURCES), opts)


def write_format_output(ctx: StageContext):
    """Stands in for the format stage: its documents and its _DONE.json record."""
    for src, texts in make_docs().items():
        out = ctx.dir("format", src)
        out.mkdir(parents=True, exist_ok=True)
        with gzip.GzipFile(out / "00000.jsonl.gz", "wb", mtime=0) as f:
            for i, t in enumerate(texts):
                f.write((json.dumps({"id": f"{src}/{i}", "text": t, "metadata": {"source": src}}) + "\n").encode())
        acc = StageAccount("format", len(texts), len(texts))
        write_json_atomic(out / "_DONE.json", {"stage": "format", "version": "test", "accounts": {src: acc.to_dict()}})


def run_stage(stage) -> None:
    """What the DAG runner does for one unit: every job, then the accounting into _DONE.json."""
    for job in stage.jobs():
        LocalPipelineExecutor(job.pipeline, tasks=job.tasks, workers=1, logging_dir=str(stage.logs_dir(job.name)),
                              skip_completed=True).run()
    accs = stage.accounts()
    for a in accs.values():
        a.check()
    write_json_atomic(stage.output_dir / "_DONE.json", {"stage": stage.name, "version": stage.version,
                                                        "accounts": {s: a.to_dict() for s, a in accs.items()}})


def run_stages(ctx, names):
    classes = {"filter": FilterStage, "dedup": DedupStage, "dedup_cross": CrossDedupStage,
               "tokenizer": TokenizerStage, "shard": ShardStage, "manifest": ManifestStage}
    for n in names:
        cls = classes[n]
        for inst in ([cls(ctx, s) for s in ctx.sources] if cls.scope == "source" else [cls(ctx)]):
            run_stage(inst)


def build_tiny_corpus(root: Path, **shard_kw) -> Path:
    ctx = make_ctx(root, **shard_kw)
    write_format_output(ctx)
    run_stages(ctx, STAGE_NAMES[1:])
    return ctx.shards_dir


def tree_bytes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


SMALL_PARTS = {"max_part_mib": 0.012, "batch_size": 4}  # ~6k tokens a part, so a source spans several parts
