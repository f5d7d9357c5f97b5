"""The per-source validation loader: one deterministic pass over a source's val split.

    from trainer.data import Corpus, ValLoader
    for batch in ValLoader(Corpus.open("shards/sample"), "refinedweb", seq_len=128, batch_size=8):
        batch.tokens, batch.mask        # [b, 129] (EOS-padded past the split's end), [b, 128] real labels

Every token of the split after the first is a label exactly once; the order never depends on the training
run, so val losses are comparable across steps, phases and runs. An id outside the vocabulary is a
CorpusError naming the part and the document.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .corpus import Corpus


@dataclass
class ValBatch:
    tokens: torch.Tensor  # LongTensor [b, seq_len + 1], padded with EOS past the end of the split
    mask: torch.Tensor  # BoolTensor [b, seq_len]: True where labels tokens[:, 1:] are real tokens
    source: str


class ValLoader:
    """One pass over a source's val split, deterministic: documents in stored order, packed, cut into
    sequences of seq_len+1 tokens with stride seq_len (the last one padded with EOS, masked). Every token of the
    split after the first is a label exactly once. Optional rank/world_size take every world_size-th sequence."""

    def __init__(self, corpus: Corpus, source: str, seq_len: int, batch_size: int, rank: int = 0, world_size: int = 1):
        if seq_len < 1 or batch_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"ValLoader: need seq_len ≥ 1, batch_size ≥ 1, 0 ≤ rank < world_size; got {seq_len}, "
                             f"{batch_size}, {rank}, {world_size}")
        self.source, self.seq_len, self.batch_size = source, seq_len, batch_size
        self.rank, self.world_size = rank, world_size
        self.eos_id, self.vocab_size = corpus.eos_id, corpus.vocab_size
        self.stream = corpus.open_stream(source, "val")
        total = self.stream.n_tokens
        self.n_tokens = total
        self.n_sequences = max(0, -(-(total - 1) // seq_len))
        self._mine = list(range(rank, self.n_sequences, world_size))

    def __len__(self) -> int:
        return -(-len(self._mine) // self.batch_size)

    def __iter__(self):
        L, total = self.seq_len, self.n_tokens
        lengths = self.stream.lengths()
        cum = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=cum[1:])
        for b in range(0, len(self._mine), self.batch_size):
            ks = self._mine[b:b + self.batch_size]
            out = np.full((len(ks), L + 1), self.eos_id, dtype=np.int64)
            mask = np.zeros((len(ks), L), dtype=bool)
            for row, k in enumerate(ks):
                pos, end = k * L, min(k * L + L + 1, total)
                mask[row, :end - pos - 1] = True
                i = int(np.searchsorted(cum, pos, side="right")) - 1
                filled = 0
                while pos < end:
                    n = min(end - pos, int(cum[i + 1]) - pos)
                    self.stream.copy_doc_range(i, pos - int(cum[i]), n, out[row, filled:filled + n])
                    if int(out[row, filled:filled + n].max()) >= self.vocab_size:
                        raise self.stream.bad_id_error(i, self.vocab_size)
                    filled += n
                    pos += n
                    i += 1
            yield ValBatch(torch.from_numpy(out), torch.from_numpy(mask), self.source)
