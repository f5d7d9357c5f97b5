"""Reader of a built corpus: `shards/<corpus>/manifest.json` + memory-mapped Arrow token parts.

    from trainer.data import Corpus
    corpus = Corpus.open("shards/sample")
    corpus.sources, corpus.n_tokens("refinedweb"), corpus.vocab_size

The trainer meets the corpus builder only through these files (docs/design.md, "The shard contract"), so
this module reads the manifest and the parts itself and never imports `pipeline`; the names, columns,
metadata keys and dtype rule it checks come from `jetmoe_core.shards`, the contract the builder writes by.

Zero copy: a part is an uncompressed Arrow IPC file opened with `pa.memory_map`; the `input_ids` column's
values buffer is the packed token stream, viewed as a numpy array without reading it. Only the per-document
offsets (4-8 bytes a document) are turned into index arrays; token pages are touched only when a sequence
is cut from them, and the kernel may drop them again (they are file-backed), so the loader's own memory
does not grow with the corpus.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from jetmoe_core import shards
from jetmoe_core.io import sha256_file
from jetmoe_core.shards import KindError, require_kind


def build_hint(root: str | os.PathLike) -> str:
    """How to build the corpus that belongs in ``root``: the corpus builder writes ``shards/<name>`` from
    ``pipeline/configs/<name>.toml``, so ``shards/jetmoe`` is ``make corpus CORPUS=jetmoe``. Only file names are
    looked at (the trainer never imports the corpus builder)."""
    name = Path(root).name
    config = Path("pipeline/configs") / f"{name}.toml"
    if config.is_file():
        return (f"build the corpus first: `make corpus CORPUS={name}` (= python -m pipeline build {config}; "
                f"docs/corpus.md)")
    return (f"build the corpus first: `python -m pipeline build <your corpus config>` whose [corpus] shards_dir is "
            f"{root} (the shipped configs are pipeline/configs/sample.toml and jetmoe.toml; docs/corpus.md)")


class CorpusError(ValueError):
    """A corpus folder that does not follow the shard contract; the message names the file and the key."""


@dataclass(frozen=True)
class Part:
    """One Arrow part of a source split, as listed in the manifest."""

    path: str  # relative to the corpus folder
    n_docs: int
    n_tokens: int
    sha256: str | None
    bytes: int | None = None


class Corpus:
    """A built corpus folder. Open with `Corpus.open(path)`; the manifest is validated on open.

    `kinds` are the source kinds the reader accepts (`jetmoe_core.shards.KINDS`): pretraining reads
    "pretrain" only; the SFT and DPO loaders (`trainer.align.data`) open a chat corpus with ("sft", "dpo") and
    read `kind_of[source]`."""

    def __init__(self, root: Path, manifest: dict, manifest_bytes: bytes, kinds: tuple[str, ...] = ("pretrain",)):
        self.root = root
        self.manifest = manifest
        self.fingerprint = hashlib.sha256(manifest_bytes).hexdigest()
        mpath = root / shards.MANIFEST

        def need(obj, key, kind, where):
            if not isinstance(obj, dict) or key not in obj:
                raise CorpusError(f"{mpath}: missing key {where}{key!r}; the corpus was not built by "
                                  f"`python -m pipeline build` or is incomplete: rebuild it")
            val = obj[key]
            if kind is not None and not isinstance(val, kind) or isinstance(val, bool) and kind is int:
                raise CorpusError(f"{mpath}: key {where}{key} must be {getattr(kind, '__name__', kind)}, "
                                  f"got {val!r}; rebuild the corpus")
            return val

        fmt = manifest.get("format")
        if fmt != shards.FORMAT:
            raise CorpusError(f"{mpath}: format = {fmt!r}, but this trainer reads {shards.FORMAT!r}; rebuild the "
                              f"corpus with this version of the corpus builder")
        self.name = need(manifest, "corpus", str, "")
        self.dtype = need(manifest, "dtype", str, "")
        if self.dtype not in shards.DTYPES:
            raise CorpusError(f"{mpath}: dtype {self.dtype!r} is not one of {sorted(shards.DTYPES)}; rebuild the "
                              f"corpus")
        tok = need(manifest, "tokenizer", dict, "")
        self.tokenizer_path = root / need(tok, "path", str, "tokenizer.")
        self.tokenizer_sha256 = need(tok, "sha256", str, "tokenizer.")
        self.vocab_size = need(tok, "vocab_size", int, "tokenizer.")
        self.eos_id = need(tok, "eos_id", int, "tokenizer.")
        self.bos_id = tok.get("bos_id")
        if self.dtype != shards.dtype_name(self.vocab_size):
            raise CorpusError(f"{mpath}: dtype {self.dtype} breaks the dtype rule for vocab_size {self.vocab_size} "
                              f"({shards.dtype_name(self.vocab_size)}); rebuild the corpus")
        sources = need(manifest, "sources", dict, "")
        try:  # an SFT/DPO corpus holds conversations and pairs: the pretraining loader must not stream them
            require_kind(manifest, kinds, mpath)
        except KindError as e:
            raise CorpusError(str(e)) from None
        self._parts: dict[tuple[str, str], list[Part]] = {}
        self._counts: dict[tuple[str, str], tuple[int, int]] = {}
        for src, entry in sources.items():
            if not shards.SOURCE_NAME.match(src):
                raise CorpusError(f"{mpath}: source name {src!r} must match [a-z0-9_]+")
            splits = need(entry, "splits", dict, f"sources.{src}.")
            for split in shards.SPLITS:
                if split not in splits:
                    # A source may legitimately have no val split (too small); treat it as empty.
                    self._parts[(src, split)] = []
                    self._counts[(src, split)] = (0, 0)
                    continue
                where = f"sources.{src}.splits.{split}."
                sp = splits[split]
                n_docs = need(sp, "n_docs", int, where)
                n_tokens = need(sp, "n_tokens", int, where)
                parts = []
                for i, p in enumerate(need(sp, "parts", list, where)):
                    pw = f"{where}parts[{i}]."
                    parts.append(Part(need(p, "path", str, pw), need(p, "n_docs", int, pw),
                                      need(p, "n_tokens", int, pw), p.get("sha256"), p.get("bytes")))
                if sum(p.n_tokens for p in parts) != n_tokens or sum(p.n_docs for p in parts) != n_docs:
                    raise CorpusError(f"{mpath}: {where}n_tokens/n_docs ({n_tokens}/{n_docs}) differ from the sum "
                                      f"over its parts; the manifest is inconsistent: rebuild the corpus")
                self._parts[(src, split)] = parts
                self._counts[(src, split)] = (n_docs, n_tokens)
        self.sources: list[str] = sorted(sources)
        self.kind_of: dict[str, str] = {src: shards.source_kind(sources[src]) for src in self.sources}

    @classmethod
    def open(cls, path: str | os.PathLike, kinds: tuple[str, ...] = ("pretrain",)) -> "Corpus":
        """Read ``<path>/manifest.json``; a missing one is a CorpusError that says how to build that corpus."""
        root = Path(path)
        mpath = root / shards.MANIFEST
        if not mpath.is_file():
            raise CorpusError(f"{mpath}: no manifest; {build_hint(root)}, or point at the folder that holds "
                              f"manifest.json")
        data = mpath.read_bytes()
        try:
            manifest = json.loads(data)
        except json.JSONDecodeError as e:
            raise CorpusError(f"{mpath}: not valid JSON (line {e.lineno}: {e.msg}); rebuild the corpus") from e
        return cls(root, manifest, data, kinds)

    def __repr__(self) -> str:
        return f"Corpus({str(self.root)!r}, name={self.name!r}, sources={len(self.sources)})"

    def _check_source(self, source: str, split: str) -> None:
        if source not in self.sources:
            raise KeyError(f"corpus {self.root}: no source {source!r}; it has: {', '.join(self.sources)}")
        if split not in shards.SPLITS:
            raise KeyError(f"split must be one of {shards.SPLITS}, got {split!r}")

    def n_tokens(self, source: str, split: str = "train") -> int:
        """Tokens of a source split, EOS included (from the manifest)."""
        self._check_source(source, split)
        return self._counts[(source, split)][1]

    def n_docs(self, source: str, split: str = "train") -> int:
        self._check_source(source, split)
        return self._counts[(source, split)][0]

    def parts(self, source: str, split: str = "train") -> list[Part]:
        self._check_source(source, split)
        return list(self._parts[(source, split)])

    def open_stream(self, source: str, split: str = "train") -> "PackedStream":
        """Memory-map one source split (see PackedStream)."""
        self._check_source(source, split)
        return PackedStream([self.root / p.path for p in self._parts[(source, split)]], self.dtype,
                            expect_docs=self.n_docs(source, split), expect_tokens=self.n_tokens(source, split),
                            where=f"{self.root / shards.MANIFEST} sources.{source}.splits.{split}",
                            tokenizer_sha256=self.tokenizer_sha256)

    def check_parts(self, parts: list[Part], mode: str = "sha256", threads: int = 8) -> list[str]:
        """What is wrong with these parts against the manifest (empty when nothing is). mode "sha256" hashes
        each part (`threads` at a time: hashlib releases the GIL, so reads and hashes overlap), "size"
        compares file sizes only. Each problem names the file and the fix."""
        from concurrent.futures import ThreadPoolExecutor

        fix = (f"the part changed after the build (edited, copied from another build, or damaged on disk): "
               f"find every such part with `python -m pipeline verify {self.root}`, then rebuild the corpus "
               f"(python -m pipeline build <its config>); data.verify = \"off\" trains on it unchecked")

        def check(p: Part) -> str | None:
            path = self.root / p.path
            want = p.sha256 if mode == "sha256" else p.bytes
            if want is None:
                key = "sha256" if mode == "sha256" else "bytes"
                return (f"{self.root / shards.MANIFEST}: part {p.path} has no {key} to check against; rebuild the "
                        f"corpus, or set data.verify to a weaker check")
            try:
                if mode == "size":
                    got = path.stat().st_size
                    return None if got == want else f"{path}: {got} bytes, the manifest says {want}; {fix}"
                got = sha256_file(path)
            except FileNotFoundError:
                return f"{path}: missing (listed in {self.root / shards.MANIFEST}); rebuild the corpus"
            except OSError as e:
                return f"{path}: cannot be read ({e.strerror}); check the file and the disk"
            return None if got == want else (f"{path}: sha256 {got[:12]}… differs from the manifest's "
                                             f"{want[:12]}…; {fix}")

        with ThreadPoolExecutor(max(1, threads)) as pool:
            return [msg for msg in pool.map(check, parts) if msg]

    def verify(self, check_sha256: bool = True) -> None:
        """Full check (reads every part): tokenizer hash, part hashes, dtype, and EOS ending every document.
        Slow on a big corpus; `Corpus.open` checks only the manifest."""
        if sha256_file(self.tokenizer_path) != self.tokenizer_sha256:
            raise CorpusError(f"{self.tokenizer_path}: sha256 differs from the manifest's tokenizer.sha256; "
                              f"the tokenizer was replaced after the build: rebuild the corpus")
        for (src, split), parts in self._parts.items():
            for p in parts:
                if check_sha256 and p.sha256 and sha256_file(self.root / p.path) != p.sha256:
                    raise CorpusError(f"{self.root / p.path}: sha256 differs from the manifest; the part was "
                                      f"modified or truncated: rebuild the corpus")
            if parts:
                s = self.open_stream(src, split)
                last = s.doc_last_tokens()
                bad = np.flatnonzero(last != self.eos_id)
                if len(bad):
                    raise CorpusError(f"{self.root}: source {src} {split}: {len(bad)} documents do not end with "
                                      f"EOS {self.eos_id} (first: document {int(bad[0])}); rebuild the corpus")


def check_tokenizer(corpus: Corpus, vocab_size: int, tokenizer_sha256: str | None = None) -> None:
    """Refuse a corpus whose tokenizer does not match the model config (docs/design.md, "The shard contract").

    vocab_size must equal the corpus's vocab size; tokenizer_sha256, when the model config pins one, must equal
    the manifest's. The tokenizer.json on disk must also still hash to the manifest's value.
    """
    mpath = corpus.root / shards.MANIFEST
    if int(vocab_size) != corpus.vocab_size:
        raise ValueError(f"{mpath}: corpus vocab_size is {corpus.vocab_size} but the model config has vocab_size "
                         f"{vocab_size}; set the model's vocab_size to {corpus.vocab_size} or build the corpus with "
                         f"the model's tokenizer")
    if tokenizer_sha256 is not None and tokenizer_sha256 != corpus.tokenizer_sha256:
        raise ValueError(f"{mpath}: corpus tokenizer sha256 {corpus.tokenizer_sha256[:12]}… differs from the model "
                         f"config's tokenizer_sha256 {tokenizer_sha256[:12]}…; the corpus was tokenized with another "
                         f"tokenizer: rebuild it with the model's tokenizer or point the config at the right corpus")
    if not corpus.tokenizer_path.is_file():
        raise ValueError(f"{corpus.tokenizer_path}: missing; the corpus folder is incomplete: rebuild it")
    actual = sha256_file(corpus.tokenizer_path)
    if actual != corpus.tokenizer_sha256:
        raise ValueError(f"{corpus.tokenizer_path}: sha256 {actual[:12]}… differs from the manifest's "
                         f"{corpus.tokenizer_sha256[:12]}…; the file was replaced after the build: rebuild the corpus")


class PackedStream:
    """The documents of one source split, memory-mapped.

    `doc_tokens(d)` is a zero-copy numpy view of document d (EOS included). The index arrays hold, per
    document, which Arrow chunk it lives in, where it starts there and its length: O(documents) memory,
    never O(tokens).

    Opening is lazy and the object pickles without its maps, so loader worker processes reopen the files
    themselves instead of inheriting (or copying) the parent's mappings.
    """

    def __init__(self, paths: list[Path], dtype: str, expect_docs: int | None = None,
                 expect_tokens: int | None = None, where: str = "", tokenizer_sha256: str | None = None):
        self.paths = [Path(p) for p in paths]
        self.tokenizer_sha256 = tokenizer_sha256
        self.dtype = dtype
        self.expect_docs = expect_docs
        self.expect_tokens = expect_tokens
        self.where = where
        self._chunks: list[np.ndarray] | None = None

    def __getstate__(self):
        state = dict(self.__dict__)
        for k in ("_chunks", "_maps", "doc_chunk", "doc_begin", "doc_len"):
            state.pop(k, None)
        state["_chunks"] = None
        return state

    def _open(self) -> None:
        want = shards.DTYPES[self.dtype]
        chunks, maps, chunk_ids, begins, lens = [], [], [], [], []
        self._chunk_part: list[int] = []  # the part (index into paths) each Arrow chunk comes from
        self._part_first_doc: list[int] = []
        n_seen = 0
        for part_i, path in enumerate(self.paths):
            self._part_first_doc.append(n_seen)
            try:
                mm = pa.memory_map(str(path), "r")
                reader = ipc.open_file(mm)
            except (OSError, pa.ArrowInvalid) as e:
                raise CorpusError(f"{path}: cannot open as an Arrow IPC file ({e}); the shard contract needs the "
                                  f"IPC *file* format: rebuild the corpus") from e
            maps.append(mm)
            meta = shards.read_metadata(reader.schema)
            if meta.get("format") != shards.FORMAT:
                raise CorpusError(f"{path}: schema metadata format = {meta.get('format')!r}, but this trainer reads "
                                  f"{shards.FORMAT!r}; rebuild the corpus with this version of the corpus builder")
            part_tok = meta.get("tokenizer_sha256")
            if self.tokenizer_sha256 and part_tok is not None and part_tok != self.tokenizer_sha256:
                raise CorpusError(f"{path}: tokenized with tokenizer {part_tok[:12]}… but the manifest's is "
                                  f"{self.tokenizer_sha256[:12]}…; parts from another build were mixed in: rebuild "
                                  f"the corpus")
            if shards.INPUT_IDS not in reader.schema.names:
                raise CorpusError(f"{path}: no {shards.INPUT_IDS} column (columns: {reader.schema.names}); rebuild "
                                  f"the corpus")
            for b in range(reader.num_record_batches):
                col = reader.get_batch(b).column(shards.INPUT_IDS)
                if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type)):
                    raise CorpusError(f"{path}: input_ids is {col.type}, expected list<{self.dtype}>")
                values = col.values
                if values.type != pa.from_numpy_dtype(want):
                    raise CorpusError(f"{path}: input_ids holds {values.type} but the manifest says {self.dtype}; "
                                      f"rebuild the corpus")
                if values.null_count or col.null_count:
                    raise CorpusError(f"{path}: input_ids has nulls; every document must be a list of tokens")
                offsets = col.offsets.to_numpy(zero_copy_only=True)
                chunks.append(values.to_numpy(zero_copy_only=True))
                self._chunk_part.append(part_i)
                n_seen += len(offsets) - 1
                chunk_ids.append(np.full(len(offsets) - 1, len(chunks) - 1, dtype=np.int32))
                begins.append(offsets[:-1].astype(np.int64))
                lens.append(np.diff(offsets).astype(np.int64))
        self._maps = maps
        self.doc_chunk = np.concatenate(chunk_ids) if chunk_ids else np.zeros(0, np.int32)
        self.doc_begin = np.concatenate(begins) if begins else np.zeros(0, np.int64)
        self.doc_len = np.concatenate(lens) if lens else np.zeros(0, np.int64)
        n_docs, n_tokens = len(self.doc_len), int(self.doc_len.sum())
        if self.expect_docs is not None and (n_docs, n_tokens) != (self.expect_docs, self.expect_tokens):
            raise CorpusError(f"{self.where}: the parts hold {n_docs} documents / {n_tokens} tokens but the manifest "
                              f"says {self.expect_docs} / {self.expect_tokens}; rebuild the corpus")
        if n_docs and int(self.doc_len.min()) < 1:
            raise CorpusError(f"{self.where}: an empty document (every document ends with EOS, so has ≥ 1 token)")
        self._n_tokens = n_tokens  # read per sequence by the loader: keep the sum, not a pass over doc_len
        self._chunks = chunks

    def _ensure(self) -> None:
        if self._chunks is None:
            self._open()

    @property
    def n_docs(self) -> int:
        self._ensure()
        return len(self.doc_len)

    @property
    def n_tokens(self) -> int:
        self._ensure()
        return self._n_tokens

    def lengths(self) -> np.ndarray:
        self._ensure()
        return self.doc_len

    def token_chunks(self) -> list[np.ndarray]:
        """The packed token stream in stored order, as zero-copy views (one per Arrow record batch)."""
        self._ensure()
        return list(self._chunks)

    def doc_tokens(self, d: int) -> np.ndarray:
        self._ensure()
        b = int(self.doc_begin[d])
        return self._chunks[int(self.doc_chunk[d])][b:b + int(self.doc_len[d])]

    def locate(self, d: int) -> tuple[Path, int]:
        """(the part file, the document's row in it) of document d: for error messages."""
        self._ensure()
        part = self._chunk_part[int(self.doc_chunk[d])]
        return self.paths[part], d - self._part_first_doc[part]

    def bad_id_error(self, d: int, vocab_size: int) -> "CorpusError":
        """The error for document d holding a token id >= vocab_size, naming the file, the row and the fix."""
        tokens = self.doc_tokens(d)
        bad = int(tokens[int(np.argmax(tokens >= vocab_size))])
        path, row = self.locate(d)
        return CorpusError(f"{path}: document {row} holds token id {bad}, but the vocabulary has {vocab_size} ids "
                           f"(0..{vocab_size - 1}); the part does not match the corpus tokenizer: check the corpus "
                           f"with `python -m pipeline verify {path.parents[2]}` and rebuild it")

    def copy_doc_range(self, d: int, start: int, n: int, out: np.ndarray) -> None:
        """out[:n] = document d's tokens [start, start+n): the one copy, straight from the map."""
        b = int(self.doc_begin[d]) + start
        out[:n] = self._chunks[int(self.doc_chunk[d])][b:b + n]

    def doc_last_tokens(self) -> np.ndarray:
        self._ensure()
        out = np.empty(len(self.doc_len), dtype=np.int64)
        for c, chunk in enumerate(self._chunks):
            sel = self.doc_chunk == c
            out[sel] = chunk[self.doc_begin[sel] + self.doc_len[sel] - 1]
        return out
