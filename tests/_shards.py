"""Tiny corpora that follow the shard contract (docs/design.md), for tests of the loader and the trainer.

    from tests._shards import make_corpus
    root = make_corpus(tmp_path / "c", sources={"web": 20_000, "code": 5_000}, vocab=512, seed=0)
    corpus = Corpus.open(root)

Writes `<root>/manifest.json`, a real `tokenizer.json` (a word-level tokenizer made with `tokenizers`, whose
vocabulary has exactly `vocab` entries: `<unk>`=0, `<s>`=1 (bos), `</s>`=2 (eos), then `w3`, `w4`, ...) and
`<source>/{train,val}/part-NNNNN.arrow` (Arrow IPC file format, uncompressed, `input_ids` list<uint16|uint32>,
each document ends with EOS). Token counts are exact: a source's train split holds exactly the requested
number of tokens (EOS included). Same arguments → same bytes.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

EOS_ID = 2
BOS_ID = 1


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _doc_lengths(rng: np.random.Generator, n_tokens: int, mean_doc: int) -> list[int]:
    """Document lengths (EOS included) that sum to exactly n_tokens."""
    lens = rng.geometric(1.0 / mean_doc, size=n_tokens // mean_doc + 16).astype(np.int64)
    while lens.sum() < n_tokens:  # rare: draw more until they cover n_tokens
        lens = np.concatenate([lens, rng.geometric(1.0 / mean_doc, size=len(lens) + 16)])
    ends = np.cumsum(lens)
    k = int(np.searchsorted(ends, n_tokens))  # first document that reaches n_tokens: cut it there
    out = lens[:k + 1].copy()
    out[k] = n_tokens - (ends[k - 1] if k else 0)
    return [int(x) for x in out] if n_tokens > 0 else []


def write_tokenizer(path: Path, vocab: int) -> str:
    """A real tokenizer.json with exactly `vocab` tokens; returns its sha256."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = {"<unk>": 0, "<s>": BOS_ID, "</s>": EOS_ID}
    words.update({f"w{i}": i for i in range(3, vocab)})
    tok = Tokenizer(models.WordLevel(vocab=words, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tmp = path.with_name(path.name + ".tmp")
    tok.save(str(tmp))
    os.replace(tmp, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_split(root: Path, source: str, split: str, lengths: list[int], values: np.ndarray, dtype: str,
                 meta: dict, docs_per_part: int, docs_per_batch: int) -> dict:
    arrow_type = pa.list_(pa.uint16() if dtype == "uint16" else pa.uint32())
    schema = pa.schema([("input_ids", arrow_type), ("n_tokens", pa.int32())],
                       metadata={k: str(v) for k, v in meta.items()})
    starts = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    parts = []
    folder = root / source / split
    folder.mkdir(parents=True, exist_ok=True)
    for p, lo in enumerate(range(0, max(len(lengths), 1), docs_per_part)):
        hi = min(lo + docs_per_part, len(lengths))
        rel = f"{source}/{split}/part-{p:05d}.arrow"
        path = root / rel
        tmp = path.with_name(path.name + ".tmp")
        with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, schema) as w:
            # Several record batches per part, so readers are tested on chunked columns.
            for b in range(lo, hi, docs_per_batch):
                e = min(b + docs_per_batch, hi)
                offsets = (starts[b:e + 1] - starts[b]).astype(np.int32)
                ids = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values[starts[b]:starts[e]]))
                w.write_batch(pa.record_batch([ids.cast(arrow_type), pa.array(np.diff(offsets), type=pa.int32())],
                                              schema=schema))
        os.replace(tmp, path)
        data = path.read_bytes()
        parts.append({"path": rel, "n_docs": hi - lo, "n_tokens": int(starts[hi] - starts[lo]),
                      "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    return {"n_docs": len(lengths), "n_tokens": int(starts[-1]), "parts": parts}


def make_corpus(root, sources: dict[str, int], vocab: int = 512, seed: int = 0, val_tokens: int | dict | None = None,
                mean_doc: int = 40, docs_per_part: int = 64, docs_per_batch: int = 16, name: str = "test") -> Path:
    """Write a contract-conformant corpus into `root` and return its path.

    sources: train tokens per source (exact). val_tokens: tokens per source's val split (int for all, a dict
    per source, default ~10% of train, at least one document). Token ids are random in [3, vocab).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    dtype = "uint16" if vocab <= 65536 else "uint32"
    tok_sha = write_tokenizer(root / "tokenizer.json", vocab)
    meta = {"tokenizer_sha256": tok_sha, "vocab_size": vocab, "eos_id": EOS_ID, "dtype": dtype}
    manifest = {"corpus": name, "config_sha256": hashlib.sha256(repr((sorted(sources.items()), vocab, seed)).encode())
                .hexdigest(), "dtype": dtype,
                "tokenizer": {"path": "tokenizer.json", "sha256": tok_sha, "vocab_size": vocab, "bos_id": BOS_ID,
                              "eos_id": EOS_ID},
                "sources": {}}
    for i, (src, n_train) in enumerate(sorted(sources.items())):
        rng = np.random.default_rng([seed, i])
        if isinstance(val_tokens, dict):
            n_val = val_tokens.get(src, 0)
        elif val_tokens is None:
            n_val = max(mean_doc, n_train // 10)
        else:
            n_val = val_tokens
        splits = {}
        n_docs_total = 0
        for split, n in (("train", n_train), ("val", n_val)):
            lengths = _doc_lengths(rng, n, mean_doc)
            values = rng.integers(3, vocab, size=n, dtype=np.int64).astype(np.uint16 if dtype == "uint16" else
                                                                          np.uint32)
            values[np.cumsum(lengths, dtype=np.int64) - 1] = EOS_ID
            splits[split] = _write_split(root, src, split, lengths, values, dtype, meta, docs_per_part,
                                         docs_per_batch)
            n_docs_total += len(lengths)
        manifest["sources"][src] = {
            "splits": splits,
            "accounting": [{"stage": "tokenize", "docs_in": n_docs_total, "docs_out": n_docs_total,
                            "dropped": {}, "rejected": {}}]}
    _atomic_write(root / "manifest.json", json.dumps(manifest, indent=1, sort_keys=True).encode())
    return root


def read_all_tokens(root, source: str, split: str = "train") -> list[np.ndarray]:
    """Every document of a source split, in stored order, read plainly (no mmap): the tests' ground truth."""
    root = Path(root)
    manifest = json.loads((root / "manifest.json").read_text())
    docs = []
    for part in manifest["sources"][source]["splits"][split]["parts"]:
        table = ipc.open_file(pa.OSFile(str(root / part["path"]))).read_all()
        docs.extend(np.asarray(x, dtype=np.int64) for x in table.column("input_ids").to_pylist())
    return docs
