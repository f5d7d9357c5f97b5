"""The SFT conversations and DPO pairs of a chat corpus, memory-mapped, with the row-length policy applied.

    chat = ChatCorpus.open("shards/chat_sample", "sft")        # the corpus's SFT sources (or "dpo")
    rows = chat.rows("train", max_len=256)                     # Conversations (SFT) or Pairs (DPO)
    rows.n, rows.lengths, rows.trained                         # per row: tokens, trained tokens (SFT)
    ids, mask = rows.conversation(i)                           # SFT row i, cut to max_len
    prompt, chosen, rejected = rows.pair(i)                    # DPO row i
    rows.cut, rows.cut_trained, rows.dropped                   # what the policy did, counted

The corpus is read as `jetmoe_core.shards` defines it (docs/design.md, "For the trainer: SFT and DPO
shards"): `trainer.data.Corpus` checks the manifest (opened for the kinds sft and dpo), and each part's token
columns are numpy views of the mapped Arrow buffers (`shards.list_chunks`): no token is copied until a batch
is cut from them, and only per-row offsets (a few bytes a row) live in memory. Every source of the stage's
kind is used, pooled: rows are indexed in source-name order, then part order, then row order.

Length policy (`data.max_len`): an SFT conversation longer than max_len is cut to its first max_len tokens, as
TRL's `max_length` truncation does (its trained tokens past the cut are counted in `cut_trained`), and one
left with no trained token is dropped; a DPO pair whose prompt plus either completion is longer is dropped
(a cut completion would be judged on part of it). A part that breaks the contract (a missing column, another
format, mask and ids of different lengths, a conversation without a trained token, an empty completion) is a
`CorpusError` naming the file, the row and the fix.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from jetmoe_core import shards
from trainer.data.corpus import Corpus, CorpusError, Part

__all__ = ["ChatCorpus", "Conversations", "Pairs", "ColumnIndex"]


@dataclass
class ColumnIndex:
    """Where each row of one token column lives: `chunks[chunk[i]][begin[i]:begin[i] + length[i]]`."""

    chunks: list[np.ndarray] = field(default_factory=list)
    chunk: list[np.ndarray] = field(default_factory=list)
    begin: list[np.ndarray] = field(default_factory=list)
    length: list[np.ndarray] = field(default_factory=list)

    def add(self, offsets: np.ndarray, values: np.ndarray) -> None:
        self.chunks.append(values)
        n = len(offsets) - 1
        self.chunk.append(np.full(n, len(self.chunks) - 1, dtype=np.int32))
        self.begin.append((offsets[:-1] - offsets[0]).astype(np.int64))
        self.length.append(np.diff(offsets).astype(np.int64))

    def freeze(self) -> "ColumnIndex":
        cat = (lambda xs, t: np.concatenate(xs) if xs else np.zeros(0, t))
        self.chunk, self.begin, self.length = (cat(self.chunk, np.int32), cat(self.begin, np.int64),
                                               cat(self.length, np.int64))
        return self

    def row(self, i: int, n: int | None = None) -> np.ndarray:
        b = int(self.begin[i])
        return self.chunks[int(self.chunk[i])][b:b + (int(self.length[i]) if n is None else n)]


@dataclass
class _Rows:
    """Rows of one kind and split, pooled over the stage's sources (see the module docstring)."""

    sources: list[str]
    source: np.ndarray            # per row: index into sources
    where: list[tuple[Path, int]]  # per part: (file, its first row's index)
    max_len: int
    keep: np.ndarray = None       # row ids (into the parts' rows) kept by the length policy
    lengths: np.ndarray = None    # per kept row: tokens (after the cut)
    dropped: int = 0
    """Rows left out by the length policy."""

    @property
    def n(self) -> int:
        return len(self.keep)

    def locate(self, i: int) -> tuple[Path, int]:
        """(part file, row in it) of kept row i: for error messages."""
        raw = int(self.keep[i])
        firsts = [f for _, f in self.where]
        k = int(np.searchsorted(firsts, raw, side="right")) - 1
        return self.where[k][0], raw - self.where[k][1]

    def source_rows(self) -> dict[str, np.ndarray]:
        """Kept row ids per source name (the val loop scores each source apart)."""
        src = self.source[self.keep]
        return {name: np.flatnonzero(src == s) for s, name in enumerate(self.sources) if (src == s).any()}


@dataclass
class Conversations(_Rows):
    ids: ColumnIndex = None
    mask: ColumnIndex = None
    trained: np.ndarray = None    # per kept row: trained tokens (after the cut)
    cut: int = 0
    """Conversations longer than max_len, cut to their first max_len tokens (and kept)."""
    cut_trained: int = 0
    """Trained tokens lost to those cuts (dropped rows included)."""

    def conversation(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, loss mask) of kept row i, cut to max_len: views of the mapped buffers."""
        raw, n = int(self.keep[i]), int(self.lengths[i])
        return self.ids.row(raw, n), self.mask.row(raw, n)


@dataclass
class Pairs(_Rows):
    prompt: ColumnIndex = None
    chosen: ColumnIndex = None
    rejected: ColumnIndex = None

    def pair(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raw = int(self.keep[i])
        return self.prompt.row(raw), self.chosen.row(raw), self.rejected.row(raw)


def _masked_sums(mask: ColumnIndex, n: np.ndarray) -> np.ndarray:
    """Per row i: the sum of its first n[i] mask bytes, from one cumulative sum per chunk (vectorised)."""
    out = np.zeros(len(n), dtype=np.int64)
    for k, values in enumerate(mask.chunks):
        sel = np.flatnonzero(mask.chunk == k)
        cs = np.concatenate([[0], np.cumsum(values, dtype=np.int64)])
        out[sel] = cs[mask.begin[sel] + n[sel]] - cs[mask.begin[sel]]
    return out


class ChatCorpus:
    """A chat corpus's sources of one kind ("sft" or "dpo"); see the module docstring."""

    def __init__(self, corpus: Corpus, kind: str):
        self.corpus, self.kind = corpus, kind
        self.sources = [s for s in corpus.sources if corpus.kind_of[s] == kind]
        mpath = corpus.root / shards.MANIFEST
        if not self.sources:
            held = ", ".join(f"{s} ({k})" for s, k in corpus.kind_of.items()) or "no sources"
            raise CorpusError(f"{mpath}: no {kind} source (the corpus holds {held}); build the chat corpus from "
                              f"an alignment config that lists {kind} sources (pipeline/configs/chat_sample.toml)")

    @classmethod
    def open(cls, path: str | Path, kind: str) -> "ChatCorpus":
        if kind not in ("sft", "dpo"):
            raise ValueError(f"kind must be 'sft' or 'dpo', got {kind!r}")
        return cls(Corpus.open(path, kinds=("sft", "dpo")), kind)

    @property
    def root(self) -> Path:
        return self.corpus.root

    def parts(self, split: str) -> list[Part]:
        return [p for s in self.sources for p in self.corpus.parts(s, split)]

    def rows(self, split: str, max_len: int) -> Conversations | Pairs:
        columns = shards.TOKEN_COLUMNS[self.kind] + ((shards.LOSS_MASK,) if self.kind == "sft" else ())
        index = {c: ColumnIndex() for c in columns}
        source, where, n_rows = [], [], 0
        for s, name in enumerate(self.sources):
            for part in self.corpus.parts(name, split):
                path = self.root / part.path
                where.append((path, n_rows))
                got = self._read_part(path, columns, index)
                if got != part.n_docs:
                    raise CorpusError(f"{path}: {got} rows but the manifest lists {part.n_docs}; the part changed "
                                      f"after the build: rebuild the corpus")
                source.append(np.full(got, s, dtype=np.int16))
                n_rows += got
        cols = {c: ix.freeze() for c, ix in index.items()}
        src = np.concatenate(source) if source else np.zeros(0, np.int16)
        if self.kind == "sft":
            return self._conversations(cols, src, where, max_len)
        return self._pairs(cols, src, where, max_len)

    def _read_part(self, path: Path, columns: tuple[str, ...], index: dict[str, ColumnIndex]) -> int:
        try:
            reader = ipc.open_file(pa.memory_map(str(path), "r"))
        except (OSError, pa.ArrowInvalid) as e:
            raise CorpusError(f"{path}: cannot open as an Arrow IPC file ({e}); rebuild the corpus") from None
        want = shards.FORMATS[self.kind]
        fmt = shards.read_metadata(reader.schema).get("format")
        if fmt != want:
            raise CorpusError(f"{path}: schema metadata format = {fmt!r}, but the {self.kind} reader reads {want!r}; "
                              f"rebuild the corpus with this version of the corpus builder")
        c = self.corpus
        bad = shards.check_schema(reader.schema, vocab_size=c.vocab_size, tokenizer_sha256=c.tokenizer_sha256,
                                  eos_id=c.eos_id, kind=self.kind)
        if bad:
            raise CorpusError(f"{path}: {bad[0]}; rebuild the corpus")
        n = 0
        for b in range(reader.num_record_batches):
            batch = reader.get_batch(b)
            firsts = None
            for col in columns:
                (offsets, values), = shards.list_chunks(batch, col)
                if col == shards.LOSS_MASK and not np.array_equal(offsets - offsets[0], firsts):
                    raise CorpusError(f"{path}: loss_mask and input_ids differ in length in record batch {b}; "
                                      f"rebuild the corpus")
                if col == shards.INPUT_IDS:
                    firsts = offsets - offsets[0]
                index[col].add(offsets, values)
            n += batch.num_rows
        return n

    def _conversations(self, cols, src, where, max_len: int) -> Conversations:
        ids, mask = cols[shards.INPUT_IDS], cols[shards.LOSS_MASK]
        rows = Conversations(self.sources, src, where, max_len, ids=ids, mask=mask)
        rows.keep = np.arange(len(ids.length))  # every row, until the policy below decides
        full = ids.length
        lengths = np.minimum(full, max_len)
        whole, trained = _masked_sums(mask, full), _masked_sums(mask, lengths)
        for bad, what in ((full < 2, "has fewer than 2 tokens"),
                          (whole == 0, "has no trained token (loss_mask is all 0), but every SFT row holds an "
                                       "assistant turn")):
            if bad.any():
                path, row = rows.locate(int(np.flatnonzero(bad)[0]))
                raise CorpusError(f"{path}: conversation {row} {what}; rebuild the corpus")
        keep = trained > 0
        rows.keep = np.flatnonzero(keep)
        rows.lengths, rows.trained = lengths[keep], trained[keep]
        rows.cut = int(((full > max_len) & keep).sum())
        rows.cut_trained = int((whole - trained).sum())
        rows.dropped = int((~keep).sum())
        return rows

    def _pairs(self, cols, src, where, max_len: int) -> Pairs:
        p, c, r = cols[shards.PROMPT_IDS], cols[shards.CHOSEN_IDS], cols[shards.REJECTED_IDS]
        rows = Pairs(self.sources, src, where, max_len, prompt=p, chosen=c, rejected=r)
        rows.keep = np.arange(len(p.length))
        empty = np.flatnonzero((c.length < 1) | (r.length < 1) | (p.length < 1))
        if len(empty):
            path, row = rows.locate(int(empty[0]))
            raise CorpusError(f"{path}: pair {row} has an empty prompt or completion (each completion ends with "
                              f"EOS); rebuild the corpus")
        longest = p.length + np.maximum(c.length, r.length)
        keep = longest <= max_len
        rows.keep = np.flatnonzero(keep)
        rows.lengths = longest[keep]
        rows.dropped = int((~keep).sum())
        return rows

    def check_tokenizer(self, vocab_size: int, tokenizer_sha256: str | None, where: str) -> None:
        """The model's vocabulary and tokenizer must be the corpus's (a chat model keeps its base tokenizer)."""
        c = self.corpus
        mpath = c.root / shards.MANIFEST
        if vocab_size != c.vocab_size:
            raise CorpusError(f"{mpath}: the corpus's vocab_size is {c.vocab_size} but the model in {where} has "
                              f"{vocab_size}; build the chat corpus with the base model's tokenizer "
                              f"([tokenizer] path = <the base corpus>/tokenizer.json)")
        if tokenizer_sha256 and tokenizer_sha256 != c.tokenizer_sha256:
            raise CorpusError(f"{mpath}: tokenizer sha256 {c.tokenizer_sha256[:12]}… differs from {where}'s "
                              f"tokenizer.json ({tokenizer_sha256[:12]}…); the chat corpus was tokenized with "
                              f"another tokenizer: rebuild it with the base model's ([tokenizer] path)")
