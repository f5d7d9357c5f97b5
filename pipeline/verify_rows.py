"""The row checks of ``pipeline verify``, per kind of source (the shard contract in ``jetmoe_core.shards``).

    problems, counts = check_rows("sft", table, eos_id=2, vocab_size=8192, deep=True)
    counts     # {"n_tokens": ..., "n_trained": ...}: what the manifest's part entry must say

The list columns are read as the trainer reads them: offsets and values straight from the memory-mapped buffers
(``jetmoe_core.shards.list_chunks``), one record batch at a time, each check vectorized over the batch.

* ``pretrain``: every document non-empty and ending with EOS.
* ``sft``: ``input_ids`` and ``loss_mask`` of equal length in every row; mask values only 0 and 1; every
  conversation ending with EOS; at least one trained token per conversation; every run of trained tokens (an assistant turn) ends with EOS and holds no
  other EOS; ``n_trained`` equals the mask's sum.
* ``dpo``: ``prompt_ids``, ``chosen_ids`` and ``rejected_ids`` non-empty in every row; each answer ends with EOS
  and holds no other.
* every kind: ``n_tokens`` equals the row's tokens (its token columns together); with ``deep``, every token id
  below the vocabulary size.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa

from jetmoe_core import shards as contract

PROBLEMS = {
    "empty_doc": "{n} empty documents (each needs at least its EOS)",
    "doc_no_eos": "{n} documents do not end with EOS {eos}",
    "mask_length": "{n} rows whose loss_mask length differs from input_ids'",
    "empty_conversation": "{n} empty conversations",
    "mask_values": "{n} loss_mask values other than 0 and 1",
    "conversation_no_eos": "{n} conversations that do not end with EOS {eos}",
    "nothing_trained": "{n} conversations without a trained token",
    "turn_no_eos": "{n} assistant turns (runs of trained tokens) not closed by EOS {eos}",
    "eos_in_turn": "{n} EOS tokens inside an assistant turn",
    "n_trained": "{n} rows whose n_trained differs from their loss_mask sum",
    "empty_prompt": "{n} rows with an empty prompt_ids",
    "empty_chosen_ids": "{n} rows with an empty chosen_ids",
    "empty_rejected_ids": "{n} rows with an empty rejected_ids",
    "chosen_ids_no_eos": "{n} chosen answers that do not end with EOS {eos}",
    "rejected_ids_no_eos": "{n} rejected answers that do not end with EOS {eos}",
    "eos_in_chosen_ids": "{n} EOS tokens inside a chosen answer (only its last token may be one)",
    "eos_in_rejected_ids": "{n} EOS tokens inside a rejected answer (only its last token may be one)",
    "n_tokens": "{n} rows whose n_tokens differs from their token count",
}


def _one(batch: pa.RecordBatch, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(lengths, values) of one list column of a record batch (zero-copy views)."""
    (offsets, values), = contract.list_chunks(batch, name)
    return np.diff(offsets), values


def _pretrain(batch: pa.RecordBatch, eos: int, bad: Counter, counts: Counter) -> np.ndarray:
    lengths, values = _one(batch, contract.INPUT_IDS)
    if (lengths < 1).any():
        bad["empty_doc"] += int((lengths < 1).sum())
    else:
        bad["doc_no_eos"] += int((values[np.cumsum(lengths) - 1] != eos).sum())
    return lengths


def _sft(batch: pa.RecordBatch, eos: int, bad: Counter, counts: Counter) -> np.ndarray:
    lengths, v = _one(batch, contract.INPUT_IDS)
    mask_lengths, m = _one(batch, contract.LOSS_MASK)
    if not np.array_equal(lengths, mask_lengths):
        bad["mask_length"] += int((lengths != mask_lengths).sum())
        return lengths
    if (lengths < 1).any():
        bad["empty_conversation"] += int((lengths < 1).sum())
        return lengths
    if ((m != 0) & (m != 1)).any():
        bad["mask_values"] += int(((m != 0) & (m != 1)).sum())
        return lengths
    ends = np.cumsum(lengths) - 1
    bad["conversation_no_eos"] += int((v[ends] != eos).sum())
    trained = np.add.reduceat(m.astype(np.int64), ends - lengths + 1)
    bad["nothing_trained"] += int((trained == 0).sum())
    on = m.astype(bool)
    next_on = np.append(on[1:], False)
    next_on[ends] = False  # a run never continues into the next conversation
    bad["turn_no_eos"] += int((v[on & ~next_on] != eos).sum())  # the last token of each trained run
    bad["eos_in_turn"] += int((v[on & next_on] == eos).sum())
    if contract.N_TRAINED in batch.schema.names:
        bad["n_trained"] += int((batch.column(contract.N_TRAINED).to_numpy() != trained).sum())
    counts["n_trained"] += int(trained.sum())
    return lengths


def _dpo(batch: pa.RecordBatch, eos: int, bad: Counter, counts: Counter) -> np.ndarray:
    lengths, _ = _one(batch, contract.PROMPT_IDS)
    bad["empty_prompt"] += int((lengths < 1).sum())
    row_tokens = lengths.copy()
    for col in (contract.CHOSEN_IDS, contract.REJECTED_IDS):
        n, values = _one(batch, col)
        row_tokens += n
        if (n < 1).any():
            bad[f"empty_{col}"] += int((n < 1).sum())
            continue
        ends = np.cumsum(n) - 1
        bad[f"{col}_no_eos"] += int((values[ends] != eos).sum())
        inner = np.ones(len(values), dtype=bool)
        inner[ends] = False
        bad[f"eos_in_{col}"] += int((values[inner] == eos).sum())
    return row_tokens


CHECKS = {"pretrain": _pretrain, "sft": _sft, "dpo": _dpo}


def check_rows(kind: str, table: pa.Table, *, eos_id: int, vocab_size: int, deep: bool) -> tuple[list[str], dict]:
    """(problems, counts) of a part's rows; ``counts`` holds ``n_tokens`` (and ``n_trained`` for SFT)."""
    bad: Counter = Counter()
    counts: Counter = Counter({"n_tokens": 0, **({"n_trained": 0} if kind == "sft" else {})})
    too_big = 0
    for batch in table.to_batches():
        row_tokens = CHECKS[kind](batch, eos_id, bad, counts)
        counts["n_tokens"] += int(row_tokens.sum())
        if contract.N_TOKENS in batch.schema.names:
            bad["n_tokens"] += int((batch.column(contract.N_TOKENS).to_numpy() != row_tokens).sum())
        if deep:
            for col in contract.TOKEN_COLUMNS[kind]:
                _, values = _one(batch, col)
                if len(values):
                    too_big = max(too_big, int(values.max()))
    problems = [PROBLEMS[k].format(n=n, eos=eos_id) for k, n in bad.items() if n]
    if deep and too_big >= vocab_size:
        problems.append(f"token id {too_big} >= vocab size {vocab_size}")
    return problems, dict(counts)
