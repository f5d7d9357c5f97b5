"""The corpus manifest: ``shards/<corpus>/manifest.json`` and ``tokenizer.json`` beside it (shard contract).

The manifest lists every source's kind (``pretrain``, ``sft`` or ``dpo``) and part format, every part of every
source and split with its document and token counts (and trained tokens, for SFT), byte size and sha256, the tokenizer (path, sha256, vocab size, bos/eos ids), the dtype, the config's sha256, and per source
the accounting chain: every stage's record (docs in, out, dropped and rejected by reason) from the first
stage to the shards, read from each stage's ``_DONE.json`` in DAG order through ``pipeline.dag.records`` (the
reader the runner's summary uses, so the two cannot disagree). It checks that chain before writing:
each stage balances, each stage's input is the previous one's output, and the last output equals the
documents in the shards. Beside the sources, ``fidelity``: per source the share of its documents each stage
removed, the rule that removed the most and the ``[fidelity]`` threshold's verdict
(``pipeline.fidelity.manifest_fidelity``). The JSON has sorted keys and no timestamps, so the same build
gives the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

from datatrove.pipeline.base import PipelineStep
from tokenizers import Tokenizer

from jetmoe_core import shards as contract
from jetmoe_core.io import sha256_file, write_json_atomic

from pipeline.accounting import AccountingError, StageAccount, check_chain
from pipeline.dag.records import source_accounts
from pipeline.fidelity import FidelityOptions, evaluate, manifest_fidelity
from pipeline.stages.base import STAGES, Job, Stage, register
from pipeline.stages.tokenizer import copy_tokenizer


def build_manifest(ctx, stages: list[str], shard_stage: str = "shard", tokenizer_stage: str = "tokenizer",
                   config_sha256: str = "", eos_token: str = "</s>", bos_token: str = "<s>",
                   config_overrides: list[str] | None = None) -> dict:
    root = Path(ctx.shards_dir)
    tok_src = ctx.dir(tokenizer_stage) / contract.TOKENIZER
    if not tok_src.is_file():
        raise FileNotFoundError(f"{tok_src}: no tokenizer; the tokenizer stage has not run")
    copy_tokenizer(tok_src, root / contract.TOKENIZER)
    tok = Tokenizer.from_file(str(root / contract.TOKENIZER))
    vocab = tok.get_vocab_size(with_added_tokens=True)
    man = {"corpus": ctx.corpus, "config_sha256": config_sha256, "format": contract.FORMAT,
           "dtype": contract.dtype_name(vocab),
           "tokenizer": {"path": contract.TOKENIZER, "sha256": sha256_file(root / contract.TOKENIZER),
                         "vocab_size": vocab, "bos_id": tok.token_to_id(bos_token), "eos_id": tok.token_to_id(eos_token)},
           "sources": {}}
    if config_overrides:  # the --section.key=value overrides the build ran with, beside the file's sha256
        man["config_overrides"] = list(config_overrides)
    for source in ctx.sources:
        kind = getattr(ctx.specs.get(source), "kind", "pretrain")
        zero = {"n_docs": 0, "n_tokens": 0, **({contract.N_TRAINED: 0} if kind == "sft" else {})}
        splits = {split: {**zero, "parts": []} for split in contract.SPLITS}
        parts_dir = ctx.dir(shard_stage, source) / "_parts"
        rank_files = sorted(parts_dir.glob("*.json"))
        if not rank_files:
            raise FileNotFoundError(f"{parts_dir}: no part lists; the shard stage has not run for {source}")
        for rf in rank_files:
            listed = json.loads(rf.read_text())
            for split, parts in listed.items():
                for p in parts:
                    f = root / p["path"]
                    if not f.is_file() or f.stat().st_size != p["bytes"]:
                        raise FileNotFoundError(f"{f}: listed in {rf} but missing or changed; rerun the shard stage")
                    splits[split]["parts"].append(p)
                    for key in zero:
                        splits[split][key] += p[key]
        accs = [StageAccount.from_dict(a) for a in source_accounts(ctx, stages, source)]
        check_chain(accs, source)
        n_docs = splits["train"]["n_docs"] + splits["val"]["n_docs"]
        if not accs or accs[-1].docs_out != n_docs:
            raise AccountingError(f"{source}: last stage's docs_out {accs[-1].docs_out if accs else None} != "
                                  f"{n_docs} documents in the shards")
        man["sources"][source] = {"kind": kind, "format": contract.FORMATS[kind], "splits": splits,
                                  "accounting": [a.to_dict() for a in accs]}
    # per source, the share each stage removed against the [fidelity] threshold (the table the build prints and
    # `python -m trainer report` shows), from the chains just checked; the guard's defaults when the config
    # sets none, so every manifest says how much of each dataset survived
    opts = ctx.options.get("fidelity") or FidelityOptions()
    man["fidelity"] = manifest_fidelity(evaluate({s: b["accounting"] for s, b in man["sources"].items()}, opts))
    return man


def write_manifest(path: Path, man: dict) -> None:
    write_json_atomic(path, man, sort_keys=True)  # sorted keys: the same build gives the same bytes


class WriteManifest(PipelineStep):
    type = "💽 - WRITER"
    name = "📜 manifest"

    def __init__(self, ctx, stages: list[str], config_sha256: str, eos_token: str, bos_token: str,
                 config_overrides: list[str] | None = None):
        super().__init__()
        self.ctx, self.stages, self.config_sha256 = ctx, stages, config_sha256
        self.eos_token, self.bos_token, self.config_overrides = eos_token, bos_token, config_overrides

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        man = build_manifest(self.ctx, self.stages, config_sha256=self.config_sha256,
                             eos_token=self.eos_token, bos_token=self.bos_token,
                             config_overrides=self.config_overrides)
        write_manifest(Path(self.ctx.shards_dir) / contract.MANIFEST, man)
        return
        yield


@register
class ManifestStage(Stage):
    name = "manifest"
    version = "v3"  # v3: the fidelity table; v2: each source's kind and part format
    after = ("shard",)
    scope = "corpus"
    # a build that stops before the manifest (a failed fidelity guard, a failed source) leaves no manifest of
    # another config or of other inputs behind for the trainer to read
    clear_when_blocked = True

    def jobs(self) -> list[Job]:
        cfg = self.ctx.config
        stages = list(getattr(getattr(cfg, "corpus", None), "stages", None) or STAGES)
        tok = self.ctx.options.get("tokenizer")
        return [Job("manifest", [WriteManifest(self.ctx, stages, getattr(cfg, "sha256", ""),
                                               getattr(tok, "eos_token", "</s>"), getattr(tok, "bos_token", "<s>"),
                                               getattr(cfg, "cli_overrides", None))])]

    def fingerprint_extra(self) -> dict:
        # the manifest records the config's sha256 and overrides: a changed config rewrites it
        cfg = self.ctx.config
        return {"config_sha256": getattr(cfg, "sha256", ""), "overrides": getattr(cfg, "cli_overrides", None)}

    def output_paths(self) -> list[Path]:
        root = Path(self.ctx.shards_dir)
        return [self.output_dir, root / contract.MANIFEST, root / contract.TOKENIZER]

    def accounts(self):
        return {}
