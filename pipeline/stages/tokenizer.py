"""The corpus tokenizer: trained on the corpus with Hugging Face ``tokenizers``, or taken from a local
``tokenizer.json`` or a hub repository. Corpus scope: one tokenizer for every source.

Config (``[tokenizer]``)::

    [tokenizer]
    kind = "train"          # "train" | "file" | "hub"
    vocab_size = 8192       # train: exact size (special tokens included); too small a corpus is an error
    max_train_mb = 64       # train: at most this much text, split evenly over the sources (first docs)
    path = ""               # file: a tokenizer.json (e.g. one exported from Llama-2 / Mistral)
    repo_id = ""            # hub: e.g. "jetmoe/jetmoe-8b" (its tokenizer.json: the paper's 32k
    revision = "main"       #      Llama-style SentencePiece vocabulary, bos=1, eos=2)
    bos_token = "<s>"
    eos_token = "</s>"

A trained tokenizer is byte-level BPE (GPT-2's byte alphabet, so no text is lost and nothing maps to
``<unk>``) with Llama's special-token ids: ``<unk>``=0, ``<s>``=1, ``</s>``=2. Training is deterministic: the
same documents in the same order (sources in config order, files and documents in order) give the same
merges; the stage writes ``tokenizer.json`` atomically into ``work/<corpus>/_corpus/tokenizer/``.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal

from datatrove.pipeline.base import PipelineStep
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from jetmoe_core.io import atomic_path, sha256_file, write_bytes_atomic

from pipeline.stages.base import Job, Stage, register

SPECIALS = ("<unk>", "<s>", "</s>")


@dataclass
class TokenizerOptions:
    """The ``[tokenizer]`` table."""
    kind: Literal["train", "file", "hub"] = "train"
    vocab_size: int = 8192
    max_train_mb: float = 64.0
    min_frequency: int = 2
    path: str = ""
    repo_id: str = ""
    revision: str = "main"
    bos_token: str = "<s>"
    eos_token: str = "</s>"
    #: stage whose per-source documents the tokenizer is trained on
    input_stage: str = "dedup_cross"

    def __post_init__(self):
        if self.kind not in ("train", "file", "hub"):
            raise ValueError(f"kind = {self.kind!r}: use \"train\", \"file\" (with path) or \"hub\" (with repo_id)")
        if self.kind == "file" and not self.path:
            raise ValueError("kind = \"file\" needs path = \"<a tokenizer.json>\"")
        if self.kind == "hub" and not self.repo_id:
            raise ValueError("kind = \"hub\" needs repo_id, e.g. \"jetmoe/jetmoe-8b\"")
        if self.kind == "train" and self.vocab_size < 256 + len(SPECIALS) + 1:
            raise ValueError(f"vocab_size = {self.vocab_size}: needs more than the 259 byte and special tokens")
        if self.kind == "file" and not Path(self.path).expanduser().is_file():
            raise ValueError(missing_tokenizer(self.path))
        if not self.max_train_mb > 0:
            raise ValueError(f"max_train_mb must be > 0, got {self.max_train_mb}")
        if self.min_frequency < 1:
            raise ValueError(f"min_frequency must be >= 1, got {self.min_frequency}")


def missing_tokenizer(path: str) -> str:
    """Why a ``kind = "file"`` tokenizer is missing, and the fix: a corpus's own tokenizer
    (``shards/<corpus>/tokenizer.json``) is there once that corpus is built."""
    msg = f"path = {path!r}: no such file (relative paths start at {Path.cwd()})"
    built = re.fullmatch(r"(?:.*/)?shards/([A-Za-z0-9_-]+)/tokenizer\.json", path)
    if built:
        corpus = built.group(1)
        make = "make corpus" if corpus == "sample" else f"make corpus CORPUS={corpus}"
        return (f"{msg}: it is the tokenizer of the corpus {corpus!r}, written when that corpus is built; run "
                f"`{make}` first (a chat corpus must use its base model's tokenizer), or point "
                f"[tokenizer] path at another tokenizer.json")
    return f"{msg}; give a tokenizer.json"


def new_bpe() -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tok


def train_bpe(texts: Iterator[str], vocab_size: int, min_frequency: int = 2) -> Tokenizer:
    """Byte-level BPE of exactly ``vocab_size`` tokens, specials at 0, 1, 2; raises if the text is too small."""
    tok = new_bpe()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
                                  special_tokens=list(SPECIALS), initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    got = tok.get_vocab_size(with_added_tokens=True)
    if got != vocab_size:
        raise ValueError(f"the training text gave a vocabulary of {got} tokens, not vocab_size = {vocab_size}: "
                         f"the corpus is too small (or min_frequency too high); add text, raise "
                         f"max_train_mb, or lower [tokenizer] vocab_size")
    for i, s in enumerate(SPECIALS):
        assert tok.token_to_id(s) == i, (s, tok.token_to_id(s))
    return tok


def iter_docs(folder: Path, budget_bytes: int) -> Iterator[str]:
    """Texts of a stage's ``*.jsonl.gz`` files in order, until ``budget_bytes`` of UTF-8 is reached."""
    used = 0
    for p in sorted(Path(folder).glob("*.jsonl.gz")):
        with gzip.open(p, "rt", encoding="utf-8") as f:
            for line in f:
                text = json.loads(line).get("text") or ""
                used += len(text.encode("utf-8"))
                yield text
                if used >= budget_bytes:
                    return


def tokenizer_info(tok: Tokenizer, opts: TokenizerOptions, where: str) -> dict:
    eos, bos = tok.token_to_id(opts.eos_token), tok.token_to_id(opts.bos_token)
    if eos is None:
        raise ValueError(f"{where}: has no eos_token {opts.eos_token!r}; set [tokenizer] eos_token to one it has")
    return {"vocab_size": tok.get_vocab_size(with_added_tokens=True), "eos_id": eos, "bos_id": bos}


class MakeTokenizer(PipelineStep):
    """Trains, copies or downloads the tokenizer into ``<out>/tokenizer.json`` (one task)."""

    type = "🔢 - TOKENIZER"
    name = "🔤 make tokenizer"

    def __init__(self, opts: TokenizerOptions, inputs: list[str], out: str):
        super().__init__()
        self.opts, self.inputs, self.out = opts, inputs, Path(out)

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        o, dest = self.opts, self.out / "tokenizer.json"
        if o.kind == "train":
            budget = int(o.max_train_mb * 1e6 / max(1, len(self.inputs)))
            texts = (t for folder in self.inputs for t in iter_docs(Path(folder), budget))
            tok = train_bpe(texts, o.vocab_size, o.min_frequency)
            data_bytes = tok.to_str(pretty=True).encode("utf-8")
        elif o.kind == "file":
            src = Path(o.path).expanduser()
            if not src.is_file():
                raise FileNotFoundError(f"[tokenizer] {missing_tokenizer(o.path)}")
            data_bytes = src.read_bytes()
        else:
            from huggingface_hub import hf_hub_download
            src = Path(hf_hub_download(o.repo_id, "tokenizer.json", revision=o.revision))
            data_bytes = src.read_bytes()
        tok = Tokenizer.from_str(data_bytes.decode("utf-8"))
        info = tokenizer_info(tok, o, str(dest))
        self.stat_update("vocab_size", value=info["vocab_size"])
        write_bytes_atomic(dest, data_bytes)
        return
        yield  # a generator like every datatrove step; it passes no documents on


@register
class TokenizerStage(Stage):
    name = "tokenizer"
    version = "v1"
    after = ("dedup_cross",)
    # the fidelity guard, when configured, passes before any document is tokenized or sharded
    after_if_configured = ("fidelity",)
    scope = "corpus"
    section = "tokenizer"
    Options = TokenizerOptions

    @property
    def path(self) -> Path:
        return self.output_dir / "tokenizer.json"

    def jobs(self) -> list[Job]:
        o = self.options or TokenizerOptions()
        inputs = [str(self.ctx.dir(o.input_stage, s)) for s in self.ctx.sources]
        return [Job("tokenizer", [MakeTokenizer(o, inputs, str(self.output_dir))])]

    def accounts(self):
        return {}  # documents pass it by; it makes a file

    def stale_reason(self) -> str | None:
        """A ``kind = "file"`` tokenizer whose file changed since it was copied (its corpus was rebuilt): the
        copy, and every shard tokenized with it, no longer stand for it."""
        o = self.options or TokenizerOptions()
        src = Path(o.path).expanduser()
        if o.kind != "file" or not self.path.is_file():
            return None
        if not src.is_file():
            return f"[tokenizer] {missing_tokenizer(o.path)}"
        if sha256_file(src) != sha256_file(self.path):
            return f"[tokenizer] path {o.path} changed since it was copied"
        return None


def copy_tokenizer(src: Path, dest: Path) -> None:
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
