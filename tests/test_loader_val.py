"""Val loader: one deterministic pass that covers the val split exactly once."""
import numpy as np
import pytest
import torch

from tests.trainer_kit.corpus import make_corpus, read_all_tokens
from trainer.data import Corpus, ValLoader


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return Corpus.open(make_corpus(tmp_path_factory.mktemp("c"), {"web": 800, "code": 300},
                                   val_tokens={"web": 517, "code": 1}, vocab=400, mean_doc=20, seed=2))


def labels_of(batches):
    return np.concatenate([b.tokens[:, 1:][b.mask].numpy() for b in batches])


@pytest.mark.parametrize("seq_len,batch", [(16, 3), (7, 1), (516, 2), (600, 4)])
def test_val_covers_split_exactly_once(corpus, seq_len, batch):
    stream = np.concatenate(read_all_tokens(corpus.root, "web", "val"))
    assert len(stream) == 517
    val = ValLoader(corpus, "web", seq_len=seq_len, batch_size=batch)
    batches = list(val)
    assert len(batches) == len(val)
    assert (labels_of(batches) == stream[1:]).all()  # every token after the first is a label exactly once
    inputs = np.concatenate([b.tokens[:, :-1][b.mask].numpy() for b in batches])
    assert (inputs == stream[:-1]).all()
    again = list(ValLoader(corpus, "web", seq_len=seq_len, batch_size=batch))
    assert all(torch.equal(a.tokens, b.tokens) for a, b in zip(batches, again))


def test_val_sharded_over_ranks_covers_once(corpus):
    full = list(ValLoader(corpus, "web", seq_len=10, batch_size=1))
    shards = [list(ValLoader(corpus, "web", seq_len=10, batch_size=2, rank=r, world_size=3)) for r in range(3)]
    rows = sorted((tuple(row.tolist()) for s in shards for b in s for row in b.tokens))
    assert rows == sorted(tuple(b.tokens[0].tolist()) for b in full)


def test_val_too_small_is_empty(corpus):
    val = ValLoader(corpus, "code", seq_len=8, batch_size=2)
    assert len(val) == 0 and list(val) == []
