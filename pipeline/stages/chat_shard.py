"""The shard stage's writer for alignment sources: SFT conversations and DPO pairs as Arrow parts.

    ChatShardWriter("sft", tokenizer_path, source, shards_dir, parts_dir, ShardOptions(max_tokens=2048))

Reads the documents of ``pipeline.sources.alignment`` (their text is the conversation rendered with ``</s>``),
parses each back into messages, renders it with ``jetmoe_core.chat`` and the tokenizer's EOS text, tokenizes
the whole text once (with character offsets) and derives the loss mask from the offsets. Parts follow the
shard contract (``jetmoe_core.shards``, kinds ``sft`` and ``dpo``), written by the pretraining stage's
``PartWriter``: same layout, same atomic renames, same part lists for the manifest.

Every document is written, or dropped under a counted reason (``dropped_<reason>`` in the stage's account):

* ``too_long``: an SFT conversation whose first exchange (system message, first user turn, first assistant
  turn) is longer than ``[shards] max_tokens``; a DPO pair whose prompt and longer answer are. A longer SFT
  conversation whose first exchange fits is **cut** to its longest prefix of whole turns that fits and ends
  with an assistant turn (counted under ``normalised: {truncated: n}``): no turn is ever cut in the middle, so
  every assistant turn in the shards keeps its EOS.
* ``empty_turn``: a turn left empty once the format stage removed its control characters.
* ``eos_in_text``: the tokens hold another number of EOS than the conversation has turns (a content whose
  text the tokenizer reads as its EOS token).
* ``token_boundary``: a token crosses the border between trained and untrained text (the tokenizer merged
  an answer's first or last character with the template around it), so no exact mask exists.

Which split a document goes to is decided by a hash of its text, as for pretraining documents.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.batching import batched
from tokenizers import Tokenizer

from jetmoe_core import chat, shards as contract
from jetmoe_core.io import sha256_file, write_json_atomic

from pipeline.sources.alignment import parse_dpo, parse_sft
from pipeline.stages.shard import PartWriter, ShardOptions, is_val


class _Drop(Exception):
    def __init__(self, reason: str):
        self.reason = reason


def _strip(msgs: list[dict]) -> list[dict]:
    out = [{"role": m["role"], "content": m["content"].strip()} for m in msgs]
    if any(not m["content"] for m in out):
        raise _Drop("empty_turn")
    return out


def _list_array(rows: list[np.ndarray], pa_t: pa.DataType) -> pa.ListArray:
    offsets = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    np_t = pa_t.to_pandas_dtype()
    values = np.concatenate(rows).astype(np_t, copy=False) if rows else np.zeros(0, dtype=np_t)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, type=pa_t))


class ChatShardWriter(PipelineStep):
    """Tokenizes SFT conversations or DPO pairs in batches; writes train/val parts; counts every document."""

    type = "💽 - WRITER"
    name = "🏹 chat shards"

    def __init__(self, kind: str, tokenizer_path: str, source: str, shards_dir: str, parts_dir: str,
                 opts: ShardOptions, eos_token: str = "</s>", bos_token: str = "<s>"):
        super().__init__()
        if kind not in ("sft", "dpo"):
            raise ValueError(f"ChatShardWriter writes sft or dpo sources, not {kind!r}")
        self.kind, self.tokenizer_path, self.source = kind, tokenizer_path, source
        self.shards_dir, self.parts_dir, self.opts = Path(shards_dir), Path(parts_dir), opts
        self.eos_token, self.bos_token = eos_token, bos_token

    # -- one batch -----------------------------------------------------------------------------------------
    def _encode(self, segment_lists: list[list[chat.Segment]]) -> list[tuple[np.ndarray, np.ndarray] | str]:
        """(ids, mask) per rendered conversation, or the reason it cannot be encoded."""
        texts = ["".join(s.text for s in segs) for segs in segment_lists]
        out: list = []
        for segs, enc in zip(segment_lists, self.tok.encode_batch(texts, add_special_tokens=False)):
            try:
                mask = chat.mask_from_offsets(enc.offsets, segs)
            except chat.TokenBoundaryError:
                out.append("token_boundary")
                continue
            out.append((np.asarray(enc.ids, dtype=self.np_t), mask))
        return out

    def _eos_ok(self, ids: np.ndarray, turns: int) -> bool:
        return int((ids == self.eos_id).sum()) == turns

    def _sft_rows(self, docs) -> list[dict | str]:
        convs: list[list[dict] | str] = []
        for doc in docs:
            try:
                convs.append(_strip(parse_sft(doc.text)))
            except _Drop as d:
                convs.append(d.reason)
        todo = [c for c in convs if not isinstance(c, str)]
        encoded = iter(self._encode([chat.render(c, eos_token=self.eos_token) for c in todo]))
        rows: list[dict | str] = []
        for conv in convs:
            if isinstance(conv, str):
                rows.append(conv)
                continue
            got = next(encoded)
            if isinstance(got, str):
                rows.append(got)
                continue
            ids, mask = got
            if not self._eos_ok(ids, len(conv)):
                rows.append("eos_in_text")
                continue
            ids, mask = self._row(ids, mask)
            truncated = False
            if len(ids) > self.opts.max_tokens:
                got, truncated = self._truncate(conv), True
                if isinstance(got, str):
                    rows.append(got)
                    continue
                ids, mask = got
            rows.append({"cols": [ids, mask], "n_tokens": len(ids), "n_trained": int(mask.sum()),
                         "truncated": truncated})
        return rows

    def _truncate(self, conv: list[dict]) -> tuple[np.ndarray, np.ndarray] | str:
        """The longest prefix of whole turns that fits and ends with an assistant turn, or "too_long"."""
        ends = [i for i, m in enumerate(conv) if m["role"] == "assistant" and i < len(conv) - 1]
        for i in reversed(ends):
            got = self._encode([chat.render(conv[: i + 1], eos_token=self.eos_token)])[0]
            if isinstance(got, str):
                return got
            ids, mask = self._row(*got)
            if len(ids) <= self.opts.max_tokens:
                return ids, mask
        return "too_long"

    def _row(self, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """An SFT row ends at the conversation's last EOS (the template's final newline is not stored)."""
        ids, mask = chat.end_at_last_eos(ids, mask, self.eos_id)
        return np.asarray(ids, dtype=self.np_t), mask

    def _dpo_rows(self, docs) -> list[dict | str]:
        pairs: list = []
        for doc in docs:
            try:
                prompt, chosen, rejected = parse_dpo(doc.text)
                prompt = _strip(prompt)
                pairs.append((prompt, *(m["content"] for m in _strip([{"role": "assistant", "content": chosen},
                                                                      {"role": "assistant", "content": rejected}]))))
            except _Drop as d:
                pairs.append(d.reason)
        todo = [p for p in pairs if not isinstance(p, str)]
        segs = [chat.completion_segments(p, answer, eos_token=self.eos_token) for p, c, r in todo for answer in (c, r)]
        encoded = iter(self._encode(segs))
        rows: list[dict | str] = []
        for pair in pairs:
            if isinstance(pair, str):
                rows.append(pair)
                continue
            got = [next(encoded), next(encoded)]
            bad = next((g for g in got if isinstance(g, str)), None)
            if bad:
                rows.append(bad)
                continue
            if not all(self._eos_ok(ids, len(pair[0]) + 1) for ids, _ in got):
                rows.append("eos_in_text")
                continue
            (p1, c), (p2, r) = (chat.split_completion(ids, mask) for ids, mask in got)
            if not np.array_equal(p1, p2):  # a tokenizer that lets the answer change the prompt's tokens
                rows.append("token_boundary")
                continue
            if len(p1) + max(len(c), len(r)) > self.opts.max_tokens:
                rows.append("too_long")
                continue
            rows.append({"cols": [np.asarray(x, dtype=self.np_t) for x in (p1, c, r)],
                         "n_tokens": len(p1) + len(c) + len(r), "truncated": False})
        return rows

    # -- the step ------------------------------------------------------------------------------------------
    def run(self, data, rank: int = 0, world_size: int = 1):
        tok_path = Path(self.tokenizer_path)
        if not tok_path.is_file():
            raise FileNotFoundError(f"{tok_path}: no tokenizer; run the tokenizer stage first")
        self.tok = Tokenizer.from_file(str(tok_path))
        vocab, self.eos_id = self.tok.get_vocab_size(with_added_tokens=True), self.tok.token_to_id(self.eos_token)
        if self.eos_id is None:
            raise ValueError(f"{tok_path}: has no eos token {self.eos_token!r}")
        self.np_t, pa_t = contract.token_dtype(vocab)
        tok_sha, bos = sha256_file(tok_path), self.tok.token_to_id(self.bos_token)
        types = [pa_t] * len(contract.TOKEN_COLUMNS[self.kind]) + ([pa.uint8()] if self.kind == "sft" else [])
        token_bytes = np.dtype(self.np_t).itemsize + (1 if self.kind == "sft" else 0)
        writers = {}
        for split in contract.SPLITS:
            meta = contract.part_metadata(tokenizer_sha256=tok_sha, vocab_size=vocab, eos_id=self.eos_id, bos_id=bos,
                                          source=self.source, split=split, kind=self.kind)
            writers[split] = PartWriter(contract.split_dir(self.shards_dir, self.source, split), rank,
                                        contract.shard_schema(vocab, meta, self.kind),
                                        int(self.opts.max_part_mib * (1 << 20)), self.shards_dir, token_bytes)
        for batch in batched(data, self.opts.batch_size):
            with self.track_time(unit="batch"):
                rows = self._sft_rows(batch) if self.kind == "sft" else self._dpo_rows(batch)
                by_split: dict[str, list[tuple]] = {"train": [], "val": []}
                for doc, row in zip(batch, rows):
                    if isinstance(row, str):
                        self.stat_update(f"dropped_{row}")
                        continue
                    if row["truncated"]:
                        self.stat_update("normalised_truncated")
                    by_split["val" if is_val(doc.text, self.opts.val_fraction) else "train"].append((doc, row))
                    self.stat_update("total")
                for split, items in by_split.items():
                    if items:
                        self._write(writers[split], items, types)
                        self.stat_update(f"docs_{split}", value=len(items))
        for w in writers.values():
            w.close_part()
        write_json_atomic(self.parts_dir / f"{rank:05d}.json", {s: w.parts for s, w in writers.items()})
        return
        yield

    def _write(self, writer: PartWriter, items: list[tuple], types: list) -> None:
        """One record batch: the token columns (and the mask) in schema order, then doc_id, n_tokens (n_trained)."""
        arrays = [_list_array([row["cols"][i] for _, row in items], t) for i, t in enumerate(types)]
        arrays += [pa.array([doc.id for doc, _ in items], pa.string()),
                   pa.array([row["n_tokens"] for _, row in items], pa.uint32())]
        counts = {}
        if self.kind == "sft":
            trained = [row["n_trained"] for _, row in items]
            arrays.append(pa.array(trained, pa.uint32()))
            counts[contract.N_TRAINED] = sum(trained)
        writer.write(pa.RecordBatch.from_arrays(arrays, schema=writer.schema),
                     sum(row["n_tokens"] for _, row in items), **counts)
