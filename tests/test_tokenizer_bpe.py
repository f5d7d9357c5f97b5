"""The corpus tokenizer: exact vocab size, Llama special ids, lossless round trip, deterministic training,
a clear error when the text is too small, and batched encoding equal to one-at-a-time encoding."""
import random

import numpy as np
import pytest

from pipeline.stages.shard import encode_batch
from pipeline.stages.tokenizer import SPECIALS, TokenizerOptions, train_bpe


def texts(n=400, seed=0):
    rng = random.Random(seed)
    syll = ["ka", "to", "ri", "mu", "sen", "lo", "pa", "dre", "qui", "bo", "zel", "an", "the", " of", "ing"]
    return [" ".join("".join(rng.choice(syll) for _ in range(rng.randint(1, 4))) for _ in range(60)) + "."
            for _ in range(n)]


@pytest.fixture(scope="module")
def tok():
    return train_bpe(iter(texts()), 300)


def test_exact_vocab_and_special_ids(tok):
    assert tok.get_vocab_size(with_added_tokens=True) == 300
    assert [tok.token_to_id(s) for s in SPECIALS] == [0, 1, 2]


@pytest.mark.parametrize("text", ["Hello, world!", "  two  spaces\tand tab\n\nnewlines ",
                                  "unicode: naïve café — 日本語 🙂 \u0000 \ufffd", "def f(x):\n    return x**2\n"])
def test_round_trip_loses_nothing(tok, text):
    ids = tok.encode(text, add_special_tokens=False).ids
    assert tok.token_to_id("<unk>") not in ids  # byte-level: every byte has a token
    assert tok.decode(ids, skip_special_tokens=False) == text


def test_training_is_deterministic():
    assert train_bpe(iter(texts()), 300).to_str() == train_bpe(iter(texts()), 300).to_str()


def test_too_small_corpus_is_a_clear_error():
    with pytest.raises(ValueError, match="too small"):
        train_bpe(iter(["tiny text"]), 8192)


def test_options_are_checked():
    with pytest.raises(ValueError, match="path"):
        TokenizerOptions(kind="file")
    with pytest.raises(ValueError, match="kind"):
        TokenizerOptions(kind="sentencepiece")


def test_batched_encoding_matches_single(tok):
    docs = texts(20, seed=1)
    offsets, values = encode_batch(tok, docs, 2, np.uint16)
    for i, d in enumerate(docs):
        want = tok.encode(d, add_special_tokens=False).ids + [2]
        assert values[offsets[i]:offsets[i + 1]].tolist() == want
