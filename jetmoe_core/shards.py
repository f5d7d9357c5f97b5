"""The shard and manifest contract, as code: the writer (``pipeline.stages.shard``), the checker
(``pipeline.verify``) and the readers (``trainer.data.corpus``, the SFT/DPO loaders) all take their names and
rules from here.

    shards/<corpus>/manifest.json
    shards/<corpus>/tokenizer.json
    shards/<corpus>/<source>/{train,val}/part-RRRRR-KKKKK.arrow

    kind = source_kind(manifest["sources"]["sft_capybara"])        # "pretrain" | "sft" | "dpo"
    require_kind(manifest, "sft", where=path)                       # KindError naming the other sources
    for offsets, values in list_chunks(table, INPUT_IDS): ...       # zero-copy numpy views of a list column

A part is an uncompressed Arrow IPC *file* (it memory-maps with zero copies), one row per document. Every token
column is ``list<uint16>`` when the vocabulary has at most 65,536 tokens, else ``list<uint32>``. A source has a
**kind**, written in the manifest (``sources.<name>.kind``; a manifest entry without one is ``pretrain``, as
manifests were before kinds existed) and, through the format version, in every part's metadata:

* ``pretrain`` (format ``jetmoe-shard-v1``): ``input_ids`` = the document's tokens then EOS, so the column's
  values buffer is the packed token stream; ``doc_id``, ``n_tokens``.
* ``sft`` (``jetmoe-sft-v1``): one row per conversation rendered by ``jetmoe_core.chat``: ``input_ids`` (the
  conversation's tokens up to and with its last EOS, so a row ends with EOS like a document), ``loss_mask`` (``list<uint8>``, same length: 1 on the tokens trained on, i.e. each
  assistant turn's content and the EOS closing it, 0 elsewhere), ``doc_id``, ``n_tokens``, ``n_trained``.
* ``dpo`` (``jetmoe-dpo-v1``): one row per preference pair: ``prompt_ids`` (the conversation up to and with the
  generation prompt ``<|assistant|>\\n``), ``chosen_ids`` and ``rejected_ids`` (each completion's tokens and
  its EOS; ``prompt_ids + chosen_ids`` is the chosen conversation without its final newline), ``doc_id``,
  ``n_tokens`` (the three lists together).

The schema metadata carries the format version, the tokenizer's sha256, the vocabulary size, the EOS (and BOS)
id, the dtype, the source and the split. docs/design.md has the rest.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

KINDS = ("pretrain", "sft", "dpo")
FORMATS = {"pretrain": "jetmoe-shard-v1", "sft": "jetmoe-sft-v1", "dpo": "jetmoe-dpo-v1"}
"""Each kind's part format, written into every part's metadata; bump one when its readers must change."""
FORMAT = FORMATS["pretrain"]
"""The manifest's ``format`` (and the pretraining parts'): bump when a reader of the manifest must change."""
KIND_OF_FORMAT = {v: k for k, v in FORMATS.items()}
MANIFEST = "manifest.json"
TOKENIZER = "tokenizer.json"
SPLITS = ("train", "val")
SOURCE_NAME = re.compile(r"^[a-z0-9_]+$")

INPUT_IDS, DOC_ID, N_TOKENS = "input_ids", "doc_id", "n_tokens"
LOSS_MASK, N_TRAINED = "loss_mask", "n_trained"
PROMPT_IDS, CHOSEN_IDS, REJECTED_IDS = "prompt_ids", "chosen_ids", "rejected_ids"
#: the token-list columns of each kind, in schema order
TOKEN_COLUMNS = {"pretrain": (INPUT_IDS,), "sft": (INPUT_IDS,), "dpo": (PROMPT_IDS, CHOSEN_IDS, REJECTED_IDS)}
#: manifest keys every reader needs
MANIFEST_KEYS = ("corpus", "config_sha256", "dtype", "tokenizer", "sources")
#: part metadata the readers check against the manifest
REQUIRED_META = ("tokenizer_sha256", "vocab_size", "eos_id", "dtype")
DTYPES = {"uint16": np.uint16, "uint32": np.uint32}


class KindError(ValueError):
    """A source of another kind than the reader reads (an SFT corpus given to the pretraining loader)."""


def token_dtype(vocab_size: int) -> tuple[type, pa.DataType]:
    """The dtype rule: uint16 up to 65,536 tokens of vocabulary, else uint32 (numpy type, Arrow type)."""
    return (np.uint16, pa.uint16()) if vocab_size <= 65536 else (np.uint32, pa.uint32())


def dtype_name(vocab_size: int) -> str:
    return np.dtype(token_dtype(vocab_size)[0]).name


def part_name(rank: int, k: int) -> str:
    """The k-th part written by task ``rank`` of a source's shard job."""
    return f"part-{rank:05d}-{k:05d}.arrow"


def split_dir(root: str | Path, source: str, split: str) -> Path:
    return Path(root) / source / split


def check_kind(kind: Any, where: str = "") -> str:
    if kind not in KINDS:
        raise KindError(f"{where}{' ' if where else ''}kind {kind!r} is not one of {', '.join(KINDS)}")
    return kind


def source_kind(entry: dict, where: str = "") -> str:
    """A manifest source entry's kind; ``pretrain`` when it has none (a manifest from before kinds existed)."""
    return check_kind(entry.get("kind", "pretrain") if isinstance(entry, dict) else None, where)


def require_kind(manifest: dict, want: str | tuple[str, ...], where: str | Path = "manifest.json") -> None:
    """Refuse a manifest holding a source of another kind: the error names the sources, their kinds, and what
    reads them."""
    wants = (want,) if isinstance(want, str) else tuple(want)
    other = {name: source_kind(entry, f"{where}: sources.{name}")
             for name, entry in sorted((manifest.get("sources") or {}).items())}
    other = {n: k for n, k in other.items() if k not in wants}
    if other:
        listed = ", ".join(f"{n} ({k})" for n, k in other.items())
        raise KindError(f"{where}: this reader reads {' or '.join(wants)} sources, but the corpus holds {listed}. "
                        f"Pretraining reads a corpus built from a pretraining config (pipeline/configs/sample.toml); "
                        f"SFT and DPO read one built from an alignment config (pipeline/configs/chat_sample.toml)")


def part_metadata(*, tokenizer_sha256: str, vocab_size: int, eos_id: int, bos_id: int | None, source: str,
                  split: str, kind: str = "pretrain") -> dict[str, str]:
    """The schema metadata of one part (all values as strings, keys sorted); the format names the kind."""
    meta = {"format": FORMATS[check_kind(kind)], "tokenizer_sha256": tokenizer_sha256, "vocab_size": vocab_size,
            "eos_id": eos_id, "bos_id": bos_id, "dtype": dtype_name(vocab_size), "source": source, "split": split}
    return {k: str(v) for k, v in sorted(meta.items())}


def shard_schema(vocab_size: int, meta: dict[str, Any], kind: str = "pretrain") -> pa.Schema:
    """The Arrow schema of a part of ``kind``."""
    _, pa_t = token_dtype(vocab_size)
    check_kind(kind)
    fields = [(c, pa.list_(pa_t)) for c in TOKEN_COLUMNS[kind]]
    if kind == "sft":
        fields.append((LOSS_MASK, pa.list_(pa.uint8())))
    fields += [(DOC_ID, pa.string()), (N_TOKENS, pa.uint32())]
    if kind == "sft":
        fields.append((N_TRAINED, pa.uint32()))
    return pa.schema(fields, metadata={k: str(v) for k, v in sorted(meta.items())})


def read_metadata(schema: pa.Schema) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()}


def check_schema(schema: pa.Schema, *, vocab_size: int, tokenizer_sha256: str, eos_id: int,
                 kind: str = "pretrain") -> list[str]:
    """What is wrong with a part's schema against the manifest and its source's kind (empty when nothing is)."""
    bad = []
    meta = read_metadata(schema)
    want = {"tokenizer_sha256": tokenizer_sha256, "vocab_size": str(vocab_size), "eos_id": str(eos_id),
            "dtype": dtype_name(vocab_size)}
    for key in REQUIRED_META:
        if meta.get(key) != want[key]:
            bad.append(f"schema metadata {key} = {meta.get(key)!r}, the manifest wants {want[key]!r}")
    _, pa_t = token_dtype(vocab_size)
    columns = [(c, pa_t) for c in TOKEN_COLUMNS[check_kind(kind)]] + ([(LOSS_MASK, pa.uint8())] if kind == "sft" else [])
    for name, value_t in columns:
        if name not in schema.names:
            bad.append(f"no {name} column (columns: {schema.names}); a {kind} part needs "
                       f"{', '.join(c for c, _ in columns)}")
            continue
        t = schema.field(name).type
        if not pa.types.is_list(t) or t.value_type != value_t:
            bad.append(f"{name} is {t}, want list<{value_t}>")
    return bad


def list_offsets(chunk: pa.ListArray) -> np.ndarray:
    """The int32 offsets of a list array, zero-copy from its buffer (slices included)."""
    return np.frombuffer(chunk.buffers()[1], dtype=np.int32, count=len(chunk) + 1, offset=chunk.offset * 4)


def list_chunks(table: pa.Table | pa.RecordBatch, name: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(offsets, values)`` per chunk of a list column, both numpy views of the mapped buffers (no copy): row i
    of a chunk is ``values[offsets[i] - offsets[0]:offsets[i + 1] - offsets[0]]``."""
    col = table.column(name)
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    out = []
    for chunk in chunks:
        offsets = list_offsets(chunk)
        values = chunk.values.to_numpy(zero_copy_only=True)
        out.append((offsets, values[offsets[0]:offsets[-1]] if len(offsets) else values[:0]))
    return out
