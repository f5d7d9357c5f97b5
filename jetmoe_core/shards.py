"""The shard and manifest contract, as code: the writer (``pipeline.stages.shard``), the checker
(``pipeline.verify``) and the readers (``trainer.data.corpus``) all take their names and rules from here.

    shards/<corpus>/manifest.json
    shards/<corpus>/tokenizer.json
    shards/<corpus>/<source>/{train,val}/part-RRRRR-KKKKK.arrow

A part is an uncompressed Arrow IPC *file* (it memory-maps with zero copies), one row per document:
``input_ids`` is ``list<uint16>`` when the vocabulary has at most 65,536 tokens, else ``list<uint32>``, and
holds the document's tokens then EOS, so the column's values buffer is the packed token stream; ``doc_id``
and ``n_tokens`` ride along. The schema metadata carries the format version, the tokenizer's sha256, the
vocabulary size, the EOS (and BOS) id, the dtype, the source and the split. docs/design.md has the rest.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

FORMAT = "jetmoe-shard-v1"
"""Written into every part's metadata and the manifest's ``format``; bump when a reader must change."""
MANIFEST = "manifest.json"
TOKENIZER = "tokenizer.json"
SPLITS = ("train", "val")
SOURCE_NAME = re.compile(r"^[a-z0-9_]+$")

INPUT_IDS, DOC_ID, N_TOKENS = "input_ids", "doc_id", "n_tokens"
#: manifest keys every reader needs
MANIFEST_KEYS = ("corpus", "config_sha256", "dtype", "tokenizer", "sources")
#: part metadata the readers check against the manifest
REQUIRED_META = ("tokenizer_sha256", "vocab_size", "eos_id", "dtype")
DTYPES = {"uint16": np.uint16, "uint32": np.uint32}


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


def part_metadata(*, tokenizer_sha256: str, vocab_size: int, eos_id: int, bos_id: int | None, source: str,
                  split: str) -> dict[str, str]:
    """The schema metadata of one part (all values as strings, keys sorted)."""
    meta = {"format": FORMAT, "tokenizer_sha256": tokenizer_sha256, "vocab_size": vocab_size, "eos_id": eos_id,
            "bos_id": bos_id, "dtype": dtype_name(vocab_size), "source": source, "split": split}
    return {k: str(v) for k, v in sorted(meta.items())}


def shard_schema(vocab_size: int, meta: dict[str, Any]) -> pa.Schema:
    _, pa_t = token_dtype(vocab_size)
    return pa.schema([(INPUT_IDS, pa.list_(pa_t)), (DOC_ID, pa.string()), (N_TOKENS, pa.uint32())],
                     metadata={k: str(v) for k, v in sorted(meta.items())})


def read_metadata(schema: pa.Schema) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()}


def check_schema(schema: pa.Schema, *, vocab_size: int, tokenizer_sha256: str, eos_id: int) -> list[str]:
    """What is wrong with a part's schema against the manifest (empty when nothing is)."""
    bad = []
    meta = read_metadata(schema)
    want = {"tokenizer_sha256": tokenizer_sha256, "vocab_size": str(vocab_size), "eos_id": str(eos_id),
            "dtype": dtype_name(vocab_size)}
    for key in REQUIRED_META:
        if meta.get(key) != want[key]:
            bad.append(f"schema metadata {key} = {meta.get(key)!r}, the manifest wants {want[key]!r}")
    if INPUT_IDS not in schema.names:
        return bad + [f"no {INPUT_IDS} column (columns: {schema.names})"]
    t = schema.field(INPUT_IDS).type
    _, pa_t = token_dtype(vocab_size)
    if not pa.types.is_list(t) or t.value_type != pa_t:
        bad.append(f"{INPUT_IDS} is {t}, want list<{pa_t}>")
    return bad


def list_offsets(chunk: pa.ListArray) -> np.ndarray:
    """The int32 offsets of a list array, zero-copy from its buffer (slices included)."""
    return np.frombuffer(chunk.buffers()[1], dtype=np.int32, count=len(chunk) + 1, offset=chunk.offset * 4)
