"""Loader state: resume == no resume (also twice, and onto another world size), fingerprint checks,
the phase-2 mixture switch."""
import json
import logging

import pytest
import torch

from tests.trainer_kit.corpus import make_corpus
from trainer.data import BlendedLoader, Corpus, LoaderStateError, parse_mixture

SEQ = 12


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return Corpus.open(make_corpus(tmp_path_factory.mktemp("c"), {"web": 3000, "code": 1200, "math": 200},
                                   vocab=700, mean_doc=25, seed=9))


@pytest.fixture(scope="module")
def mix(corpus):
    return parse_mixture({"name": "p1", "sources": {"web": 6, "code": 3, "math": 1}}, corpus)


def run(loader, steps):
    out = [next(loader) for _ in range(steps)]
    return torch.cat([b.tokens for b in out]), torch.cat([b.source_ids for b in out])


def make(corpus, mix, **kw):
    args = dict(seq_len=SEQ, seed=3, micro_batch=4)
    args.update(kw)
    return BlendedLoader(corpus, mix, **args)


def test_resume_equals_no_resume(corpus, mix):
    ref = make(corpus, mix)
    ref_t, ref_s = run(ref, 30)
    ref.close()

    a = make(corpus, mix, prefetch=3)
    t1, s1 = run(a, 10)
    state = json.loads(json.dumps(a.state_dict()))  # survives a JSON checkpoint
    assert state["sequences_consumed"] == 40
    a.close()
    b = make(corpus, mix)
    b.load_state_dict(state)
    t2, s2 = run(b, 8)
    state2 = json.loads(json.dumps(b.state_dict()))
    b.close()
    c = make(corpus, mix, prefetch=0)
    c.load_state_dict(state2)  # the second resume (torchtitan #3907 is the bug this catches)
    t3, s3 = run(c, 12)
    c.close()
    assert torch.equal(torch.cat([t1, t2, t3]), ref_t)
    assert torch.equal(torch.cat([s1, s2, s3]), ref_s)


def test_resume_onto_two_ranks(corpus, mix):
    ref = make(corpus, mix)
    ref_t, _ = run(ref, 12)
    a = make(corpus, mix)
    t1, _ = run(a, 5)
    state = a.state_dict()
    ranks = [make(corpus, mix, micro_batch=2, rank=r, world_size=2) for r in (0, 1)]
    for r in ranks:
        r.load_state_dict(state)
    rest = []
    for _ in range(7):
        rest += [next(r).tokens for r in ranks]
    assert torch.equal(torch.cat([t1] + rest), ref_t)
    for ld in (ref, a, *ranks):
        ld.close()


def test_load_state_mid_iteration_restarts_prefetch(corpus, mix):
    ref = make(corpus, mix)
    ref_t, _ = run(ref, 10)
    a = make(corpus, mix, prefetch=4)
    run(a, 6)  # prefetch thread is ahead now
    b = make(corpus, mix)
    run(b, 3)
    a.load_state_dict(b.state_dict())
    t, _ = run(a, 7)
    assert torch.equal(t, ref_t[3 * 4:])
    for ld in (ref, a, b):
        ld.close()


@pytest.mark.parametrize("change", ["seed", "seq_len", "mixture", "corpus"])
def test_fingerprint_mismatch_refused(tmp_path, corpus, mix, change):
    a = make(corpus, mix)
    run(a, 2)
    state = a.state_dict()
    a.close()
    if change == "seed":
        b = make(corpus, mix, seed=4)
    elif change == "seq_len":
        b = make(corpus, mix, seq_len=SEQ + 1)
    elif change == "mixture":
        b = make(corpus, parse_mixture({"sources": {"web": 1, "code": 1}}, corpus))
    else:
        other = Corpus.open(make_corpus(tmp_path / "o", {"web": 3000, "code": 1200, "math": 200}, vocab=700,
                                        mean_doc=25, seed=10))
        b = make(other, parse_mixture({"name": "p1", "sources": {"web": 6, "code": 3, "math": 1}}, other))
    with pytest.raises(LoaderStateError, match=change if change != "corpus" else "manifest"):
        b.load_state_dict(state)
    if change != "mixture":  # the switch is for mixtures only
        with pytest.raises(LoaderStateError):
            b.load_state_dict(state, allow_mixture_change=True)
    b.close()


def test_malformed_state(corpus, mix):
    a = make(corpus, mix)
    with pytest.raises(LoaderStateError, match="malformed"):
        a.load_state_dict({"sequences_consumed": 3})
    st = a.state_dict()
    st["source_counts"]["web"] += 1
    with pytest.raises(LoaderStateError, match="do not match"):
        a.load_state_dict(st)


def test_mixture_switch_continues_each_source(corpus, mix, caplog):
    from trainer.data.loader import SourceSequences

    a = make(corpus, mix)
    run(a, 10)
    state = a.state_dict()
    a.close()
    mix2 = parse_mixture({"name": "p2", "sources": {"web": 1, "math": 1}}, corpus)
    b = make(corpus, mix2)
    with caplog.at_level(logging.WARNING, logger="trainer.data.loader"):
        b.load_state_dict(state, allow_mixture_change=True)
    assert "mixture changed from 'p1' to 'p2'" in caplog.text
    assert b.sequences_consumed == 0
    fresh = make(corpus, mix2)
    bb, fb = next(b), next(fresh)
    assert torch.equal(bb.source_ids, fb.source_ids)  # the new mixture's schedule from its beginning
    # ...but each source continues its own stream after what phase 1 read.
    used = state["source_counts"]
    names = b.source_names
    for row in range(4):
        name = names[int(bb.source_ids[row])]
        k = sum(1 for r in range(row) if int(bb.source_ids[r]) == int(bb.source_ids[row]))
        ss = SourceSequences(corpus.open_stream(name), name, 3, SEQ)
        import numpy as np
        want = np.empty(SEQ + 1, dtype=np.int64)
        ss.fill(used[name] + k, want)
        assert (bb.tokens[row].numpy() == want).all()
    # and a phase-2 checkpoint resumes phase 2 exactly
    st2 = b.state_dict()
    nxt = next(b)
    c = make(corpus, mix2)
    c.load_state_dict(st2)
    assert torch.equal(next(c).tokens, nxt.tokens)
    for ld in (b, fresh, c):
        ld.close()


def test_state_without_its_counts_is_refused(corpus, mix):
    a = make(corpus, mix)
    run(a, 7)
    state = a.state_dict()
    a.close()
    slim = {k: v for k, v in state.items() if k not in ("source_counts", "source_offsets")}
    b = make(corpus, mix)
    with pytest.raises(LoaderStateError, match="malformed.*source_counts"):
        b.load_state_dict(slim)
    b.close()
