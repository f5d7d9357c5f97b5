"""Tokenize each source's documents in batches and write Arrow token shards (the shard contract).

Config (``[shards]``)::

    [shards]
    val_fraction = 0.01        # share of documents in val, chosen by a hash of the text (stable across runs)
    max_part_mib = 256         # a part is closed once its token buffer reaches this size
    batch_size = 256           # documents per encode_batch call (tokenizers runs a batch on all threads)
    max_tokens = 2048          # sft/dpo sources only: the longest conversation or pair (pipeline.stages.chat_shard)

This module writes the parts of ``pretrain`` sources; a source of kind ``sft`` or ``dpo`` is written by
``pipeline.stages.chat_shard`` through the same part writer, into the same layout.

Output: ``shards/<corpus>/<source>/{train,val}/part-RRRRR-KKKKK.arrow`` (rank R of the task, part K of the
rank), written to the shard contract of ``jetmoe_core.shards`` (its names, schema, metadata, format version
and dtype rule): Arrow IPC *file* format, uncompressed, one row per document with ``input_ids`` (the
document's tokens then EOS), ``doc_id`` and ``n_tokens``. Every part is written to a temp file and renamed
into place; each task lists its parts in ``work/<corpus>/<source>/shard/_parts/<rank>.json`` for the manifest.
"""

from __future__ import annotations

from collections import Counter
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from itertools import chain
from pathlib import Path

import numpy as np
import pyarrow as pa
import xxhash
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.batching import batched
from tokenizers import Tokenizer

from jetmoe_core import shards as contract
from jetmoe_core.io import atomic_path, sha256_file, write_json_atomic

from pipeline.stages.base import Job, Stage, register
from pipeline.stages.documents import docs_reader, n_input_files

@dataclass
class ShardOptions:
    """The ``[shards]`` table."""
    val_fraction: float = 0.01
    max_part_mib: float = 256.0
    batch_size: int = 256
    #: stage whose documents are tokenized
    input_stage: str = "dedup_cross"
    max_tokens: int = 2048
    """sft/dpo sources: a longer conversation is cut to its whole turns that fit, a longer pair is dropped."""

    def __post_init__(self):
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction = {self.val_fraction}: must be in [0, 1)")
        if not self.max_part_mib > 0:
            raise ValueError(f"max_part_mib must be > 0, got {self.max_part_mib}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_tokens < 8:
            raise ValueError(f"max_tokens must be >= 8 (a turn's tags alone take a few), got {self.max_tokens}")


def is_val(text: str, val_fraction: float) -> bool:
    """Deterministic split by document hash: the same text always lands in the same split."""
    return xxhash.xxh3_64_intdigest(text.encode("utf-8")) % 1_000_000 < int(round(val_fraction * 1_000_000))


def encode_batch(tok: Tokenizer, texts: list[str], eos_id: int, np_t) -> tuple[np.ndarray, np.ndarray]:
    """Tokens of each text followed by EOS, as (offsets int64, values) ready to become a list array."""
    # encode_batch_fast skips the character offsets that encode_batch computes for every token: the ids are
    # the same, and the shards never store offsets (tokenizers >= 0.20; older ones take the slow call)
    encode = getattr(tok, "encode_batch_fast", tok.encode_batch)
    ids = [e.ids for e in encode(texts, add_special_tokens=False)]
    lengths = np.fromiter((len(x) + 1 for x in ids), dtype=np.int64, count=len(ids))
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    values = np.empty(int(offsets[-1]), dtype=np_t)
    is_eos = np.zeros(len(values), dtype=bool)
    is_eos[offsets[1:] - 1] = True
    values[is_eos] = eos_id
    values[~is_eos] = np.fromiter(chain.from_iterable(ids), dtype=np_t, count=len(values) - len(ids))
    return offsets, values


class PartWriter:
    """Bounded Arrow IPC file parts of one split of one rank, each renamed into place when complete.

    ``token_bytes``: bytes a token takes across the schema's columns (default: the ``input_ids`` dtype's); a part
    is closed once its tokens take ``max_bytes``. Keyword counts given to ``write`` (``n_trained``) are summed
    per part into its entry."""

    def __init__(self, folder: Path, rank: int, schema: pa.Schema, max_bytes: int, rel_root: Path,
                 token_bytes: int | None = None):
        self.folder, self.rank, self.schema, self.max_bytes, self.rel_root = folder, rank, schema, max_bytes, rel_root
        self.token_bytes = token_bytes or schema.field(contract.INPUT_IDS).type.value_type.byte_width
        self.parts: list[dict] = []
        self._writer = self._sink = self._tmp = self._commit = None
        self._docs = self._tokens = 0
        self._counts: Counter = Counter()
        folder.mkdir(parents=True, exist_ok=True)
        # a killed earlier run of this rank may have left parts and temp files: this run rewrites them all
        for stale in chain(folder.glob(f"part-{rank:05d}-*.arrow"), folder.glob(f".part-{rank:05d}-*.tmp")):
            stale.unlink()

    @property
    def _name(self) -> str:
        return contract.part_name(self.rank, len(self.parts))

    def write(self, batch: pa.RecordBatch, n_tokens: int, **counts: int) -> None:
        if self._writer is None:
            self._commit = ExitStack()  # closing it fsyncs the temp file and renames it into place
            self._tmp = self._commit.enter_context(atomic_path(self.folder / self._name))
            self._sink = pa.OSFile(str(self._tmp), "wb")
            self._writer = pa.ipc.new_file(self._sink, self.schema)  # uncompressed: memory-maps zero-copy
        self._writer.write_batch(batch)
        self._docs += batch.num_rows
        self._tokens += n_tokens
        self._counts.update(counts)
        if self._tokens * self.token_bytes >= self.max_bytes:
            self.close_part()

    def close_part(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self._sink.close()
        self._commit.close()
        final = self.folder / self._name
        self.parts.append({"path": str(final.relative_to(self.rel_root)), "n_docs": self._docs,
                           "n_tokens": self._tokens, "bytes": final.stat().st_size, "sha256": sha256_file(final),
                           **{k: int(v) for k, v in sorted(self._counts.items())}})
        self._writer = self._sink = self._tmp = self._commit = None
        self._docs = self._tokens = 0
        self._counts = Counter()


class ShardWriter(PipelineStep):
    """Tokenizes documents in batches and writes train/val Arrow parts; counts every document written."""

    type = "💽 - WRITER"
    name = "🏹 arrow shards"

    def __init__(self, tokenizer_path: str, source: str, shards_dir: str, parts_dir: str, opts: ShardOptions,
                 eos_token: str = "</s>", bos_token: str = "<s>"):
        super().__init__()
        self.tokenizer_path, self.source, self.shards_dir = tokenizer_path, source, Path(shards_dir)
        self.parts_dir, self.opts, self.eos_token, self.bos_token = Path(parts_dir), opts, eos_token, bos_token

    def run(self, data, rank: int = 0, world_size: int = 1):
        tok_path = Path(self.tokenizer_path)
        if not tok_path.is_file():
            raise FileNotFoundError(f"{tok_path}: no tokenizer; run the tokenizer stage first")
        tok = Tokenizer.from_file(str(tok_path))
        vocab, eos = tok.get_vocab_size(with_added_tokens=True), tok.token_to_id(self.eos_token)
        if eos is None:
            raise ValueError(f"{tok_path}: has no eos token {self.eos_token!r}")
        np_t, pa_t = contract.token_dtype(vocab)
        tok_sha, bos = sha256_file(tok_path), tok.token_to_id(self.bos_token)
        max_bytes = int(self.opts.max_part_mib * (1 << 20))
        writers = {}
        for split in contract.SPLITS:
            meta = contract.part_metadata(tokenizer_sha256=tok_sha, vocab_size=vocab, eos_id=eos, bos_id=bos,
                                          source=self.source, split=split)
            writers[split] = PartWriter(contract.split_dir(self.shards_dir, self.source, split), rank,
                                         contract.shard_schema(vocab, meta), max_bytes, self.shards_dir)
        for batch in batched(data, self.opts.batch_size):
            with self.track_time(unit="batch"):
                texts = [d.text for d in batch]
                offsets, values = encode_batch(tok, texts, eos, np_t)
                val = np.fromiter((is_val(t, self.opts.val_fraction) for t in texts), dtype=bool, count=len(texts))
                all_lens = np.diff(offsets)
                for split, mask in (("train", ~val), ("val", val)):
                    idx = np.flatnonzero(mask)
                    if not len(idx):
                        continue
                    lens = all_lens[idx]
                    sub_off = np.zeros(len(idx) + 1, dtype=np.int32)
                    np.cumsum(lens, out=sub_off[1:])
                    sub_vals = values if len(idx) == len(texts) else values[np.repeat(mask, all_lens)]
                    ids = pa.ListArray.from_arrays(pa.array(sub_off), pa.array(sub_vals, type=pa_t))
                    rb = pa.RecordBatch.from_arrays(
                        [ids, pa.array([batch[i].id for i in idx], pa.string()), pa.array(lens, pa.uint32())],
                        schema=writers[split].schema)
                    writers[split].write(rb, int(sub_off[-1]))
                    self.stat_update(f"docs_{split}", value=len(idx))
                    self.stat_update(f"tokens_{split}", value=int(sub_off[-1]))
            for _ in batch:
                self.stat_update("total")
        for w in writers.values():
            w.close_part()
        write_json_atomic(self.parts_dir / f"{rank:05d}.json", {s: w.parts for s, w in writers.items()})
        return
        yield


@register
class ShardStage(Stage):
    name = "shard"
    version = "v1"
    after = ("dedup_cross", "tokenizer")
    # the fidelity guard, when configured, passes before any document is tokenized or sharded
    after_if_configured = ("fidelity",)
    scope = "source"
    section = "shards"
    Options = ShardOptions

    @property
    def kind(self) -> str:
        return getattr(self.ctx.specs.get(self.source), "kind", "pretrain")

    def jobs(self) -> list[Job]:
        o = self.options or ShardOptions()
        tok_opts = self.ctx.options.get("tokenizer")
        src = self.input_dir(o.input_stage)
        args = (str(self.ctx.dir("tokenizer") / "tokenizer.json"), self.source, str(self.ctx.shards_dir),
                str(self.output_dir / "_parts"), o)
        tokens = {"eos_token": getattr(tok_opts, "eos_token", "</s>"), "bos_token": getattr(tok_opts, "bos_token", "<s>")}
        if self.kind == "pretrain":
            step = ShardWriter(*args, **tokens)
        else:
            from pipeline.stages.chat_shard import ChatShardWriter

            step = ChatShardWriter(self.kind, *args, **tokens)
        return [Job("shard", [docs_reader(src), step], tasks=n_input_files(src), counts=True)]

    def fingerprint_extra(self):
        # max_tokens shapes sft/dpo shards only: a pretraining source's fingerprint leaves it out
        opts = asdict(self.options or ShardOptions())
        if self.kind == "pretrain":
            opts.pop("max_tokens")
        return opts

    def output_paths(self) -> list[Path]:
        return [self.output_dir, Path(self.ctx.shards_dir) / self.source]
