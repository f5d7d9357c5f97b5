"""Blended loader data order: exact shares at every prefix, identical sequences for any world size / worker
count, per-epoch reshuffles, tiny sources repeating, tokens equal to the shards'."""
import numpy as np
import pytest
import torch

from tests.trainer_kit.corpus import make_corpus, read_all_tokens
from trainer.data import BlendedLoader, BlendSchedule, Corpus, parse_mixture
from trainer.data.schedule import quantise

SEQ = 16


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    # "tiny" is smaller than one sequence, so its sequences span several epochs.
    return Corpus.open(make_corpus(tmp_path_factory.mktemp("c"), {"web": 6000, "code": 2500, "math": 700, "tiny": 11},
                                   vocab=1000, mean_doc=30, seed=5))


@pytest.fixture(scope="module")
def mix(corpus):
    return parse_mixture({"sources": {"web": 50, "code": 30, "math": 15, "tiny": 5}}, corpus)


def collect(corpus, mix, n_global, world, mb, workers=0, prefetch=2, seed=7):
    """Global sequences 0..n_global-1 (tokens, source id) gathered from all ranks of a world."""
    loaders = [BlendedLoader(corpus, mix, seq_len=SEQ, seed=seed, micro_batch=mb, rank=r, world_size=world,
                             num_workers=workers, prefetch=prefetch) for r in range(world)]
    toks, srcs = {}, {}
    try:
        for _ in range(n_global // (world * mb)):
            for ld in loaders:
                b = next(ld)
                for row, k in enumerate(b.positions.tolist()):
                    toks[k], srcs[k] = b.tokens[row], int(b.source_ids[row])
    finally:
        for ld in loaders:
            ld.close()
    assert sorted(toks) == list(range(n_global))
    return torch.stack([toks[k] for k in range(n_global)]), torch.tensor([srcs[k] for k in range(n_global)])


def check_prefix_bound(shares, src_ids):
    """|count_s(n) - w_s n| ≤ 1 - 1/(2S-2) < 1 for every prefix n (Tijdeman's bound): realised shares are
    within 1/n of the weights."""
    w = np.asarray(shares, dtype=np.float64)
    onehot = np.zeros((len(src_ids), len(w)))
    onehot[np.arange(len(src_ids)), src_ids] = 1
    counts = np.cumsum(onehot, axis=0)
    n = np.arange(1, len(src_ids) + 1)[:, None]
    dev = np.abs(counts - w[None, :] * n)
    bound = 1 - 1 / (2 * len(w) - 2) + 1e-9 if len(w) > 1 else 1e-9
    assert dev.max() <= bound, (dev.max(), bound, np.unravel_index(dev.argmax(), dev.shape))


@pytest.mark.parametrize("seed", range(6))
def test_schedule_prefix_bound_random_weights(seed):
    rng = np.random.default_rng(seed)
    n_src = int(rng.integers(1, 24))
    shares = rng.dirichlet(np.full(n_src, rng.choice([0.1, 0.5, 2.0])))
    sched = BlendSchedule(list(shares))
    ids = [sched.next()[0] for _ in range(2000)]
    q = np.asarray(quantise(list(shares)), dtype=np.float64)
    check_prefix_bound(q / q.sum(), ids)
    check_prefix_bound(shares, ids)  # quantisation (2^-40) is far below the bound's slack at this length


def test_schedule_paper_phase2_weights():
    # Table 2's 22 sources, with the groups split evenly: many small, skewed shares.
    rows = [39.8, 6.7, 4.8, 1.0, 5.1, 1.0, 4.8, 19.6] + [7.3 / 5] * 5 + [3.8 / 5] * 5 + [5.8 / 4] * 4
    shares = [r / sum(rows) for r in rows]
    sched = BlendSchedule(shares)
    check_prefix_bound(shares, [sched.next()[0] for _ in range(4000)])


def test_schedule_restores_mid_run():
    shares = [0.5, 0.3, 0.2]
    a = BlendSchedule(shares)
    full = a.take(100)
    b = BlendSchedule(shares)
    b.take(37)
    c = BlendSchedule(shares, b.n, b.counts)
    assert full[37:] == c.take(63)
    with pytest.raises(ValueError):
        BlendSchedule(shares, 5, [1, 1, 1])


def test_loader_shares_at_every_prefix(corpus, mix):
    _, srcs = collect(corpus, mix, 480, world=1, mb=8)
    names = sorted(mix.shares)
    check_prefix_bound([mix.shares[n] for n in names], srcs.numpy())


def test_same_sequences_for_world_sizes_and_workers(corpus, mix):
    ref_t, ref_s = collect(corpus, mix, 96, world=1, mb=8, prefetch=0)
    for world, mb, workers, prefetch in [(1, 8, 0, 2), (2, 4, 0, 2), (4, 2, 0, 1), (2, 2, 2, 2), (1, 4, 2, 1)]:
        t, s = collect(corpus, mix, 96, world=world, mb=mb, workers=workers, prefetch=prefetch)
        assert torch.equal(t, ref_t), (world, mb, workers)
        assert torch.equal(s, ref_s), (world, mb, workers)


def test_one_rank_mb4_equals_two_ranks_mb2_each_step(corpus, mix):
    one = BlendedLoader(corpus, mix, seq_len=SEQ, seed=7, micro_batch=4)
    two = [BlendedLoader(corpus, mix, seq_len=SEQ, seed=7, micro_batch=2, rank=r, world_size=2) for r in (0, 1)]
    for _ in range(10):
        b = next(one)
        parts = [next(ld) for ld in two]
        assert torch.equal(b.tokens, torch.cat([p.tokens for p in parts]))
        assert torch.equal(b.source_ids, torch.cat([p.source_ids for p in parts]))
        assert one.sequences_consumed == two[0].sequences_consumed == two[1].sequences_consumed
    for ld in (one, *two):
        ld.close()


def test_seed_changes_order(corpus, mix):
    a, _ = collect(corpus, mix, 16, world=1, mb=8, seed=1)
    b, _ = collect(corpus, mix, 16, world=1, mb=8, seed=2)
    assert not torch.equal(a, b)


def source_stream(corpus, mix, source, n_seq, seed=7):
    """The stream of one source as the loader cuts it: sequences overlap by one token."""
    from trainer.data.loader import SourceSequences

    ss = SourceSequences(corpus.open_stream(source), source, seed, SEQ)
    out = np.empty((n_seq, SEQ + 1), dtype=np.int64)
    for j in range(n_seq):
        ss.fill(j, out[j])
    assert (out[1:, 0] == out[:-1, -1]).all()  # stride seq_len: consecutive sequences share one token
    return np.concatenate([out[0]] + [o[1:] for o in out[1:]]), ss


def split_docs(tokens, eos):
    ends = np.flatnonzero(tokens == eos)
    return [tuple(tokens[a + 1:b + 1]) for a, b in zip(np.r_[-1, ends[:-1]], ends)]


@pytest.mark.parametrize("source", ["math", "tiny"])
def test_epochs_are_permutations_of_the_documents_and_reshuffle(corpus, mix, source):
    total = corpus.n_tokens(source)
    docs = sorted(tuple(d) for d in read_all_tokens(corpus.root, source))
    n_seq = -(-3 * total // SEQ) + 1
    stream, ss = source_stream(corpus, mix, source, n_seq)
    epochs = [stream[e * total:(e + 1) * total] for e in range(3)]
    for e, ep in enumerate(epochs):
        assert ep[-1] == corpus.eos_id
        assert sorted(split_docs(ep, corpus.eos_id)) == docs, e  # every document once per epoch
    if len(docs) > 2:
        assert split_docs(epochs[0], 2) != split_docs(epochs[1], 2) != split_docs(epochs[2], 2)  # new shuffle
    assert ss.epoch_of(n_seq - 1) >= 2


def test_tiny_source_repeats_as_planned(corpus, mix):
    ld = BlendedLoader(corpus, mix, seq_len=SEQ, seed=7, micro_batch=8)
    for _ in range(50):
        next(ld)
    ld.close()
    n = ld.sequences_consumed
    ep = ld.epochs()
    # The plan: share · n sequences · seq_len tokens over the source's tokens; the schedule is within one sequence.
    for name, share in mix.shares.items():
        planned = share * n * SEQ / corpus.n_tokens(name)
        assert abs(ep[name] - planned) <= SEQ / corpus.n_tokens(name) + 1e-9, name
    assert ep["tiny"] > 10  # 11 tokens at 5% of 400 sequences of 16 tokens: ~29 passes


def test_reads_are_memory_mapped_views(corpus):
    s = corpus.open_stream("web")
    v = s.doc_tokens(3)
    assert not v.flags.owndata and not v.flags.writeable
    assert v.dtype == np.uint16
    assert (v == read_all_tokens(corpus.root, "web")[3]).all()


def test_bad_arguments(corpus, mix):
    with pytest.raises(ValueError, match="rank 2"):
        BlendedLoader(corpus, mix, seq_len=SEQ, seed=1, micro_batch=2, rank=2, world_size=2)
    with pytest.raises(ValueError, match="seq_len"):
        BlendedLoader(corpus, mix, seq_len=0, seed=1, micro_batch=2)


def test_uint32_corpus_and_pickled_reader(tmp_path):
    """vocab > 65,536 → list<uint32> shards; the reader also survives pickling (spawn/forkserver workers)."""
    import pickle

    from trainer.data.loader import _Reader

    c = Corpus.open(make_corpus(tmp_path / "big", {"a": 900, "b": 400}, vocab=70_000, mean_doc=30, seed=1))
    assert c.dtype == "uint32"
    m = parse_mixture({"sources": {"a": 1, "b": 1}}, c)
    ld = BlendedLoader(c, m, seq_len=SEQ, seed=0, micro_batch=4)
    b = next(ld)
    ld.close()
    assert int(b.tokens.max()) < 70_000 and int(b.tokens.max()) > 65_536
    reader = _Reader(c, ["a", "b"], 0, SEQ)
    specs = ((0, 0), (1, 5), (0, 70))
    before = reader.read(specs)
    clone = pickle.loads(pickle.dumps(reader))
    assert clone.sources[0].stream._chunks is None  # maps are reopened in the new process, not copied
    after = clone.read(specs)
    assert torch.equal(before[0], after[0]) and torch.equal(before[1], after[1])
