"""Which rows each optimizer step trains on, and the padded micro-batches they become.

    plan = StepPlan(n_rows=200, batch=16, epochs=3, seed=1234)
    plan.total_steps                                   # ceil(epochs × rows / batch)
    plan.step_rows(s)                                  # the step's `batch` row ids, in stream order
    groups = plan.micro_groups(s, lengths, micro_batch=4, rank=0, world_size=2)   # this rank's micro-batches
    mb = collate_sft(conversations, groups[0], pad_id=2)      # SFTBatch: inputs, labels, counts
    mb = collate_dpo(pairs, groups[0], pad_id=2)              # DPOBatch: chosen rows then rejected rows

The stream: epoch e is the permutation of all train rows drawn from numpy's generator seeded (seed, e);
epochs follow each other, and step s takes stream positions [s·batch, (s+1)·batch). The data order is a
function of (rows, seed, batch) and the step only, so resuming needs no loader state beyond the step.

Micro-batches: a step's rows are sorted by length (longest first, ties in stream order) and dealt in groups
of `micro_batch`; group g runs on rank g mod W as that rank's micro-batch g div W. Rows of similar length
share a micro-batch (little padding), every rank gets groups of similar length, and the groups do not depend
on the number of ranks, so 1 process accumulating W·k micro-batches and W ranks of k each train on the same
padded batches. Each row is padded on the right to the longest row of its micro-batch (rounded up to
`pad_multiple`): attention is causal, so a real token never sees padding, and the MoE routes each token
alone (dropless), so padding never changes a real token's logits; pad positions carry no loss. Conversations
are not packed together: each row is its own sequence, with positions from 0 (see docs/alignment.md).
"""
from __future__ import annotations

import collections
import math
from dataclasses import dataclass

import numpy as np
import torch

from trainer.align.data import Conversations, Pairs
from trainer.data.corpus import CorpusError

__all__ = ["StepPlan", "SFTBatch", "DPOBatch", "collate_sft", "collate_dpo", "IGNORE"]

IGNORE = -100
"""The label of a position that carries no loss (cross-entropy's ignore_index, as in transformers and TRL)."""


class StepPlan:
    def __init__(self, n_rows: int, batch: int, epochs: float, seed: int):
        if n_rows < 1:
            raise ValueError("no rows to train on")
        self.n_rows, self.batch, self.epochs, self.seed = n_rows, batch, epochs, seed
        self.total_steps = max(1, math.ceil(epochs * n_rows / batch))
        self._perms: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()

    def permutation(self, epoch: int) -> np.ndarray:
        hit = self._perms.get(epoch)
        if hit is None:
            hit = np.random.default_rng([self.seed, epoch]).permutation(self.n_rows)
            self._perms[epoch] = hit
            while len(self._perms) > 2:
                self._perms.popitem(last=False)
        return hit

    def step_rows(self, step: int) -> np.ndarray:
        pos = np.arange(step * self.batch, (step + 1) * self.batch, dtype=np.int64)
        out = np.empty(len(pos), dtype=np.int64)
        for epoch in np.unique(pos // self.n_rows):
            sel = pos // self.n_rows == epoch
            out[sel] = self.permutation(int(epoch))[pos[sel] % self.n_rows]
        return out

    def epoch_at(self, step: int) -> float:
        """Passes over the train rows done after `step` steps."""
        return step * self.batch / self.n_rows

    def micro_groups(self, step: int, lengths: np.ndarray, micro_batch: int, rank: int = 0,
                     world_size: int = 1) -> list[np.ndarray]:
        rows = self.step_rows(step)
        order = rows[np.argsort(-lengths[rows], kind="stable")]
        groups = [order[g:g + micro_batch] for g in range(0, len(order), micro_batch)]
        return groups[rank::world_size]


def check_split(batch: int, micro_batch: int, world_size: int, what: str) -> int:
    """Micro-batches per rank per step; a ValueError naming the keys when the batch does not split evenly."""
    per_forward = micro_batch * world_size
    if batch % per_forward:
        raise ValueError(f"train.batch = {batch} {what} is not a multiple of data.micro_batch × ranks = "
                         f"{micro_batch} × {world_size}; use e.g. --train.batch={max(1, round(batch / per_forward)) * per_forward}"
                         f" or a data.micro_batch that divides {batch // world_size if batch % world_size == 0 else batch}")
    return batch // per_forward


@dataclass
class SFTBatch:
    inputs: torch.Tensor
    """[m, T] token ids (each row's tokens but its last, then padding)."""
    labels: torch.Tensor
    """[m, T] the next token where it is trained, IGNORE elsewhere (untrained tokens and padding)."""
    n_tokens: int
    """Real tokens (rows' lengths summed)."""
    n_trained: int
    """Trained tokens (labels != IGNORE)."""


@dataclass
class DPOBatch:
    inputs: torch.Tensor
    """[2m, T] prompt + chosen for the m pairs, then prompt + rejected for the same pairs."""
    labels: torch.Tensor
    """[2m, T] the next token where it belongs to the completion, IGNORE on the prompt and padding."""
    n_tokens: int
    n_pairs: int


def _width(longest: int, pad_multiple: int) -> int:
    return -(-(longest - 1) // pad_multiple) * pad_multiple


def _check_ids(rows, i: int, ids: np.ndarray, vocab_size: int | None) -> None:
    if vocab_size is not None and len(ids) and int(ids.max()) >= vocab_size:
        path, row = rows.locate(i)
        raise CorpusError(f"{path}: row {row} holds token id {int(ids.max())}, but the vocabulary has {vocab_size} "
                          f"ids; the part does not match the corpus tokenizer: check it with `python -m pipeline "
                          f"verify {path.parents[2]}` and rebuild it")


def collate_sft(conv: Conversations, rows: np.ndarray, pad_id: int, pad_multiple: int = 1,
                vocab_size: int | None = None) -> SFTBatch:
    longest = int(conv.lengths[rows].max())
    t = _width(longest, pad_multiple)
    inputs = np.full((len(rows), t), pad_id, dtype=np.int64)
    labels = np.full((len(rows), t), IGNORE, dtype=np.int64)
    for r, i in enumerate(rows):
        ids, mask = conv.conversation(int(i))
        _check_ids(conv, int(i), ids, vocab_size)
        ids = ids.astype(np.int64)
        n = len(ids) - 1
        inputs[r, :n] = ids[:-1]
        labels[r, :n] = np.where(mask[1:] == 1, ids[1:], IGNORE)
    return SFTBatch(torch.from_numpy(inputs), torch.from_numpy(labels), n_tokens=int(conv.lengths[rows].sum()),
                    n_trained=int(conv.trained[rows].sum()))


def collate_dpo(pairs: Pairs, rows: np.ndarray, pad_id: int, pad_multiple: int = 1,
                vocab_size: int | None = None) -> DPOBatch:
    m = len(rows)
    t = _width(int(pairs.lengths[rows].max()), pad_multiple)
    inputs = np.full((2 * m, t), pad_id, dtype=np.int64)
    labels = np.full((2 * m, t), IGNORE, dtype=np.int64)
    n_tokens = 0
    for r, i in enumerate(rows):
        prompt, chosen, rejected = pairs.pair(int(i))
        for row, completion in ((r, chosen), (m + r, rejected)):
            seq = np.concatenate([prompt, completion]).astype(np.int64)
            _check_ids(pairs, int(i), seq, vocab_size)
            n = len(seq) - 1
            inputs[row, :n] = seq[:-1]
            labels[row, len(prompt) - 1:n] = seq[len(prompt):]
            n_tokens += len(seq)
    return DPOBatch(torch.from_numpy(inputs), torch.from_numpy(labels), n_tokens=n_tokens, n_pairs=m)
