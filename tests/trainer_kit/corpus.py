"""Tiny corpora that follow the shard contract (docs/design.md), for tests and benches of the loader and
the trainer.

    root = make_corpus(tmp_path / "c", sources={"web": 20_000, "code": 5_000}, vocab=512, seed=0)
    corpus = Corpus.open(root)
    docs = read_all_tokens(root, "web")          # ground truth, read plainly (no memory map)

Writes `<root>/manifest.json`, a real `tokenizer.json` (a word-level tokenizer made with `tokenizers`, whose
vocabulary has exactly `vocab` entries: `<unk>`=0, `<s>`=1 (bos), `</s>`=2 (eos), then `w3`, `w4`, ...) and
`<source>/{train,val}/part-00000-KKKKK.arrow`, with the schema, metadata, part names and dtype rule of
`jetmoe_core.shards` (the contract the corpus builder writes by). Token ids are random in [3, vocab), each
document ends with EOS, and a source's train split holds exactly the requested number of tokens (EOS
included). Same arguments → same bytes. The corpus builder's own tests build theirs through the real stages.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from jetmoe_core import shards
from jetmoe_core.io import atomic_path, sha256_file, write_bytes_atomic

EOS_ID = 2
BOS_ID = 1


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
    with atomic_path(path) as tmp:
        tok.save(str(tmp))
    return sha256_file(path)


def _write_split(root: Path, source: str, split: str, lengths: list[int], values: np.ndarray, vocab: int,
                 tok_sha: str, docs_per_part: int, docs_per_batch: int) -> dict:
    _, pa_t = shards.token_dtype(vocab)
    meta = shards.part_metadata(tokenizer_sha256=tok_sha, vocab_size=vocab, eos_id=EOS_ID, bos_id=BOS_ID,
                                source=source, split=split)
    schema = shards.shard_schema(vocab, meta)
    starts = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    parts = []
    for k, lo in enumerate(range(0, max(len(lengths), 1), docs_per_part)):
        hi = min(lo + docs_per_part, len(lengths))
        rel = f"{source}/{split}/{shards.part_name(0, k)}"
        path = root / rel
        with atomic_path(path) as tmp, pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, schema) as w:
            # Several record batches per part, so readers are tested on chunked columns.
            for b in range(lo, hi, docs_per_batch):
                e = min(b + docs_per_batch, hi)
                offsets = (starts[b:e + 1] - starts[b]).astype(np.int32)
                ids = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values[starts[b]:starts[e]]))
                w.write_batch(pa.record_batch([ids.cast(pa.list_(pa_t)),
                                               pa.array([f"{source}/{split}/{d}" for d in range(b, e)]),
                                               pa.array(np.diff(offsets), type=pa.uint32())], schema=schema))
        parts.append({"path": rel, "n_docs": hi - lo, "n_tokens": int(starts[hi] - starts[lo]),
                      "bytes": path.stat().st_size, "sha256": sha256_file(path)})
    return {"n_docs": len(lengths), "n_tokens": int(starts[-1]), "parts": parts}


def make_corpus(root, sources: dict[str, int], vocab: int = 512, seed: int = 0, val_tokens: int | dict | None = None,
                mean_doc: int = 40, docs_per_part: int = 64, docs_per_batch: int = 16, name: str = "test") -> Path:
    """Write a contract-conformant corpus into `root` and return its path.

    sources: train tokens per source (exact). val_tokens: tokens per source's val split (int for all, a dict
    per source, default ~10% of train, at least one document).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    np_t, _ = shards.token_dtype(vocab)
    tok_sha = write_tokenizer(root / shards.TOKENIZER, vocab)
    manifest = {"format": shards.FORMAT, "corpus": name,
                "config_sha256": hashlib.sha256(repr((sorted(sources.items()), vocab, seed)).encode()).hexdigest(),
                "dtype": shards.dtype_name(vocab),
                "tokenizer": {"path": shards.TOKENIZER, "sha256": tok_sha, "vocab_size": vocab, "bos_id": BOS_ID,
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
            values = rng.integers(3, vocab, size=n, dtype=np.int64).astype(np_t)
            values[np.cumsum(lengths, dtype=np.int64) - 1] = EOS_ID
            splits[split] = _write_split(root, src, split, lengths, values, vocab, tok_sha, docs_per_part,
                                         docs_per_batch)
            n_docs_total += len(lengths)
        manifest["sources"][src] = {
            "splits": splits,
            "accounting": [{"stage": "tokenize", "docs_in": n_docs_total, "docs_out": n_docs_total,
                            "dropped": {}, "rejected": {}}]}
    write_bytes_atomic(root / shards.MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())
    return root


def read_all_tokens(root, source: str, split: str = "train") -> list[np.ndarray]:
    """Every document of a source split, in stored order, read plainly (no mmap): the tests' ground truth."""
    root = Path(root)
    manifest = json.loads((root / shards.MANIFEST).read_text())
    docs = []
    for part in manifest["sources"][source]["splits"][split]["parts"]:
        table = ipc.open_file(pa.OSFile(str(root / part["path"]))).read_all()
        docs.extend(np.asarray(x, dtype=np.int64) for x in table.column(shards.INPUT_IDS).to_pylist())
    return docs
