"""The blended streaming loader: the training data order, read from the memory-mapped shards.

    from trainer.data import Corpus, load_mixture, BlendedLoader
    corpus = Corpus.open("shards/sample")
    mix = load_mixture("mixtures/phase1.toml", corpus)
    loader = BlendedLoader(corpus, mix, seq_len=256, seed=1234, micro_batch=8, rank=0, world_size=1)
    batch = next(loader)                 # batch.tokens [8, 257]: inputs [:, :-1], labels [:, 1:]
    state = loader.state_dict()          # into the checkpoint; later: loader.load_state_dict(state)

Data order, a pure function of (seed, mixture, manifest, seq_len):
- Source stream. Each source's train documents are laid end to end in a seeded permutation per epoch
  (epoch 0's order, then epoch 1's, ...), giving one endless packed stream per source. Sequence j of a source
  is tokens [j·L, j·L + L + 1) of that stream (L = seq_len): consecutive sequences share one token, so every
  token is a label exactly once per epoch and none are dropped at epoch ends; a sequence may span two
  documents or two epochs. Shuffling whole documents and cutting from their concatenation (rather than
  shuffling fixed windows) keeps documents contiguous, and it needs only the per-document offsets to
  find a position: the tokens are read straight from the memory map into the batch, the only copy.
- Blend. Global sequence k comes from the source that `schedule.BlendSchedule` picks at step k (an exact,
  low-discrepancy schedule: realised shares within 1/n of the weights after any n sequences).
- Ranks. Global batch g is sequences [g·W·B, (g+1)·W·B) for W ranks of micro-batch B; rank r takes
  [g·W·B + r·B, g·W·B + (r+1)·B). Every rank computes the same schedule (cheap: integer arithmetic) and reads
  only its own slice, so sequence k is the same tokens whatever W, B or the number of workers.

Workers: num_workers=0 reads in a background thread (prefetch batches ahead); num_workers>0 uses torch
DataLoader worker processes that reopen the memory maps themselves; the schedule stays in the main process,
so the order does not depend on the worker count.

State: sequences consumed (global), the schedule's per-source counts, and per-source offsets carried over a
mixture switch, with a fingerprint of (manifest, mixture, seq_len, seed). Restoring another fingerprint is
refused unless allow_mixture_change=True and only the mixture differs (phase 2): then the new mixture's
schedule starts from its beginning, and each source continues its stream where the old run left it, so
phase 2 does not re-read phase 1's documents before their turn.
"""
from __future__ import annotations

import collections
import hashlib
import json
import logging
import queue
import threading
from dataclasses import dataclass

import numpy as np
import torch

from .corpus import Corpus, CorpusError, PackedStream
from .mixture import Mixture
from .schedule import BlendSchedule

log = logging.getLogger(__name__)
STATE_VERSION = 1


class LoaderStateError(ValueError):
    """A loader state that cannot be restored into this loader (other corpus, mixture, seq_len or seed)."""


@dataclass
class Batch:
    tokens: torch.Tensor  # LongTensor [micro_batch, seq_len + 1]; inputs [:, :-1], labels [:, 1:]
    source_ids: torch.Tensor  # LongTensor [micro_batch], index into loader.source_names
    positions: torch.Tensor  # LongTensor [micro_batch], global sequence index k of each row


def _source_key(name: str) -> int:
    # A stable per-source seed component (Python's hash() is salted per process).
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


class SourceSequences:
    """Sequence j of one source: tokens [j·L, j·L+L+1) of its endless stream of per-epoch shuffled documents."""

    def __init__(self, stream: PackedStream, name: str, seed: int, seq_len: int, cache_epochs: int = 2):
        self.stream, self.name, self.seed, self.seq_len = stream, name, int(seed), int(seq_len)
        self.cache_epochs = cache_epochs
        self._epochs: collections.OrderedDict[int, tuple[np.ndarray, np.ndarray]] = collections.OrderedDict()

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_epochs"] = collections.OrderedDict()
        return state

    @property
    def n_tokens(self) -> int:
        return self.stream.n_tokens

    def epoch_order(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(document permutation, start of each permuted document in the epoch's stream + total at the end)."""
        hit = self._epochs.get(epoch)
        if hit is not None:
            self._epochs.move_to_end(epoch)
            return hit
        rng = np.random.default_rng([self.seed, _source_key(self.name), epoch])
        perm = rng.permutation(self.stream.n_docs)
        cum = np.zeros(len(perm) + 1, dtype=np.int64)
        np.cumsum(self.stream.lengths()[perm], out=cum[1:])
        self._epochs[epoch] = (perm, cum)
        while len(self._epochs) > self.cache_epochs:
            self._epochs.popitem(last=False)
        return perm, cum

    def epoch_of(self, j: int) -> int:
        return (j * self.seq_len) // self.stream.n_tokens

    def fill(self, j: int, out: np.ndarray, docs: list | None = None) -> None:
        """out[:L+1] = sequence j; the documents it is cut from are appended to `docs` when given."""
        total = self.stream.n_tokens
        need, filled, pos = self.seq_len + 1, 0, j * self.seq_len
        while filled < need:
            epoch, off = divmod(pos, total)
            perm, cum = self.epoch_order(epoch)
            i = int(np.searchsorted(cum, off, side="right")) - 1
            while filled < need and i < len(perm):
                d = int(perm[i])
                start = off - int(cum[i])
                n = min(need - filled, int(cum[i + 1]) - off)
                self.stream.copy_doc_range(d, start, n, out[filled:filled + n])
                if docs is not None:
                    docs.append(d)
                filled += n
                off += n
                pos += n
                i += 1


class _Reader(torch.utils.data.Dataset):
    """Reads a list of (source index, sequence index) into a batch; one per process (pickles without maps)."""

    def __init__(self, corpus: Corpus, names: list[str], seed: int, seq_len: int):
        self.seq_len = seq_len
        self.vocab_size = corpus.vocab_size
        self.sources = [SourceSequences(corpus.open_stream(n, "train"), n, seed, seq_len) for n in names]

    def __len__(self):  # an endless stream: DataLoader only needs this for len(), which we never call
        raise TypeError("the blended stream is endless")

    def __getitem__(self, specs):
        # In a DataLoader worker: a bad part is handed back as a value, so the training process raises the
        # CorpusError itself (DataLoader would re-raise it wrapped in the worker's traceback).
        try:
            return self.read(specs)
        except CorpusError as e:
            return _Failed(e)

    def read(self, specs: tuple[tuple[int, int], ...]):
        out = np.empty((len(specs), self.seq_len + 1), dtype=np.int64)
        for row, (s, j) in enumerate(specs):
            self.sources[s].fill(j, out[row])
        # Every id must index the embedding: one comparison per token read, so that a part holding an id past
        # the vocabulary is named here instead of failing as an IndexError inside the model.
        if out.size and int(out.max()) >= self.vocab_size:
            self._raise_bad_id(specs, out)
        return torch.from_numpy(out), torch.tensor([s for s, _ in specs], dtype=torch.long)

    def _raise_bad_id(self, specs, out: np.ndarray) -> None:
        row = int(np.flatnonzero(out.max(axis=1) >= self.vocab_size)[0])
        s, j = specs[row]
        src, docs = self.sources[s], []
        src.fill(j, np.empty(self.seq_len + 1, dtype=np.int64), docs)
        for d in docs:
            if int(src.stream.doc_tokens(d).max()) >= self.vocab_size:
                raise src.stream.bad_id_error(d, self.vocab_size)


class _Specs:
    """The DataLoader's sampler: yields this rank's batch specs, remembering the schedule state after each."""

    def __init__(self, gen, snapshots: collections.deque):
        self.gen, self.snapshots = gen, snapshots

    def __iter__(self):
        for specs, snap in self.gen:
            self.snapshots.append(snap)
            yield specs


class _Failed:
    """An exception raised while reading ahead, handed to the training loop to raise there."""

    def __init__(self, exc: BaseException):
        self.exc = exc


# The three ways of reading batches. Each takes the spec generator (specs, schedule snapshot) and gives
# ((tokens, source ids), snapshot) in schedule order; close() stops whatever runs in the background.
class _SyncPipe:
    """Read in the caller's thread."""

    def __init__(self, reader: _Reader, gen):
        self.reader, self.gen = reader, gen

    def next(self):
        specs, snap = next(self.gen)
        return self.reader.read(specs), snap

    def close(self) -> None:
        pass


class _ThreadPipe:
    """Read `prefetch` batches ahead in a background thread; its errors are raised by next()."""

    def __init__(self, reader: _Reader, gen, prefetch: int):
        self.reader = reader
        self.q: queue.Queue = queue.Queue(maxsize=prefetch)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._produce, args=(gen,), daemon=True, name="blended-prefetch")
        self.thread.start()

    def _produce(self, gen) -> None:
        try:
            for specs, snap in gen:
                item = (self.reader.read(specs), snap)
                while not self.stop.is_set():
                    try:
                        self.q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self.stop.is_set():
                    return
        except BaseException as e:  # surfaced in the training loop by next()
            self.q.put(_Failed(e))

    def next(self):
        item = self.q.get()
        if isinstance(item, _Failed):
            raise item.exc
        return item

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


class _WorkerPipe:
    """torch DataLoader worker processes read; the schedule (the sampler) stays in this process."""

    def __init__(self, reader: _Reader, gen, num_workers: int, prefetch: int):
        self.snaps: collections.deque = collections.deque()
        dl = torch.utils.data.DataLoader(reader, batch_size=None, sampler=_Specs(gen, self.snaps),
                                         num_workers=num_workers, prefetch_factor=max(1, prefetch))
        self.it = iter(dl)

    def next(self):
        item, snap = next(self.it), self.snaps.popleft()
        if isinstance(item, _Failed):
            raise item.exc
        return item, snap

    def close(self) -> None:
        if hasattr(self.it, "_shutdown_workers"):
            self.it._shutdown_workers()


class BlendedLoader:
    """Endless iterator of this rank's micro-batches of the blended stream (see the module docstring)."""

    def __init__(self, corpus: Corpus, mixture: Mixture, seq_len: int, seed: int, micro_batch: int, rank: int = 0,
                 world_size: int = 1, num_workers: int = 0, prefetch: int = 2):
        for name, v, lo in (("seq_len", seq_len, 1), ("micro_batch", micro_batch, 1), ("world_size", world_size, 1),
                            ("num_workers", num_workers, 0), ("prefetch", prefetch, 0), ("seed", seed, 0)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"BlendedLoader: {name} must be an integer ≥ {lo}, got {v!r}")
        if not 0 <= rank < world_size:
            raise ValueError(f"BlendedLoader: rank {rank} is outside [0, world_size={world_size})")
        missing = [s for s in mixture.shares if s not in corpus.sources]
        if missing:
            raise ValueError(f"mixture {mixture.path} names sources {missing} that corpus {corpus.root} lacks; load "
                             f"the mixture against this corpus (load_mixture(path, corpus))")
        self.corpus, self.mixture = corpus, mixture
        self.seq_len, self.seed, self.micro_batch = seq_len, seed, micro_batch
        self.rank, self.world_size = rank, world_size
        self.num_workers, self.prefetch = num_workers, prefetch
        self.source_names: list[str] = sorted(mixture.shares)
        self._shares = [mixture.shares[s] for s in self.source_names]
        self.fingerprint_of = {"manifest": corpus.fingerprint, "mixture": mixture.fingerprint,
                               "seq_len": seq_len, "seed": seed}
        self.fingerprint = hashlib.sha256(json.dumps(self.fingerprint_of, sort_keys=True).encode()).hexdigest()
        self._reader = _Reader(corpus, self.source_names, seed, seq_len)
        for src in self._reader.sources:  # open and check the parts now, in this thread, not mid-training
            src.stream.n_docs
        self.sequences_consumed = 0
        self._counts = [0] * len(self.source_names)
        self._offsets = [0] * len(self.source_names)
        self._pipe = None

    # ---------------------------------------------------------------- iteration
    def _spec_gen(self, n: int, counts: list[int]):
        sched = BlendSchedule(self._shares, n, counts)
        offsets = list(self._offsets)
        glob, lo, hi = self.world_size * self.micro_batch, self.rank * self.micro_batch, \
            (self.rank + 1) * self.micro_batch
        while True:
            specs = []
            for i in range(glob):
                s, j = sched.next()
                if lo <= i < hi:
                    specs.append((s, offsets[s] + j))
            yield tuple(specs), (sched.n, tuple(sched.counts))

    def _start(self):
        gen = self._spec_gen(self.sequences_consumed, self._counts)
        if self.num_workers > 0:
            self._pipe = _WorkerPipe(self._reader, gen, self.num_workers, self.prefetch)
        elif self.prefetch > 0:
            self._pipe = _ThreadPipe(self._reader, gen, self.prefetch)
        else:
            self._pipe = _SyncPipe(self._reader, gen)

    def __iter__(self):
        return self

    def __next__(self) -> Batch:
        if self._pipe is None:
            self._start()
        try:
            (tokens, sids), (consumed, counts) = self._pipe.next()
        except BaseException:
            self.close()
            raise
        first = self.sequences_consumed + self.rank * self.micro_batch
        self.sequences_consumed, self._counts = consumed, list(counts)
        return Batch(tokens, sids, torch.arange(first, first + self.micro_batch, dtype=torch.long))

    def close(self) -> None:
        """Stop the prefetch thread or worker processes (the next batch restarts them)."""
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            pipe.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---------------------------------------------------------------- state
    def epochs(self) -> dict[str, float]:
        """Passes over each source's train tokens so far (this run's stream position / tokens)."""
        return {n: (self._offsets[i] + self._counts[i]) * self.seq_len / self._reader.sources[i].n_tokens
                for i, n in enumerate(self.source_names)}

    def state_dict(self) -> dict:
        return {"version": STATE_VERSION, "sequences_consumed": self.sequences_consumed,
                "source_counts": dict(zip(self.source_names, self._counts)),
                "source_offsets": dict(zip(self.source_names, self._offsets)),
                "fingerprint": self.fingerprint, "fingerprint_of": dict(self.fingerprint_of),
                "mixture_name": self.mixture.name}

    def load_state_dict(self, state: dict, allow_mixture_change: bool = False) -> None:
        try:
            version, consumed = state["version"], int(state["sequences_consumed"])
            counts, offsets = dict(state["source_counts"]), dict(state["source_offsets"])
            fp, fp_of = state["fingerprint"], dict(state["fingerprint_of"])
        except (KeyError, TypeError, ValueError) as e:
            raise LoaderStateError(f"loader state is malformed ({e!r}); pass the dict that state_dict() returned")
        if version != STATE_VERSION:
            raise LoaderStateError(f"loader state version {version} is not {STATE_VERSION}; it was written by "
                                   f"another version of the trainer")
        self.close()
        if fp == self.fingerprint:
            if sorted(counts) != self.source_names or sum(counts.values()) != consumed:
                raise LoaderStateError(f"loader state's source_counts {counts} do not match its sources "
                                       f"{self.source_names} / sequences_consumed {consumed}")
            self.sequences_consumed = consumed
            self._counts = [int(counts[s]) for s in self.source_names]
            self._offsets = [int(offsets.get(s, 0)) for s in self.source_names]
            return
        differ = [k for k in ("manifest", "mixture", "seq_len", "seed") if fp_of.get(k) != self.fingerprint_of[k]]
        if differ == ["mixture"] and allow_mixture_change:
            # Each source continues its own stream where the old run stopped; the new schedule starts at 0.
            old = {s: int(offsets.get(s, 0)) + int(counts.get(s, 0)) for s in set(counts) | set(offsets)}
            self._offsets = [old.get(s, 0) for s in self.source_names]
            self._counts = [0] * len(self.source_names)
            self.sequences_consumed = 0
            log.warning("loader: mixture changed from %r to %r (allow_mixture_change=True): the new mixture's "
                        "order starts from its beginning after %d sequences of the old one; each source resumes "
                        "its shuffled stream where the old run left it", state.get("mixture_name"),
                        self.mixture.name, consumed)
            return
        detail = ", ".join(f"{k}: saved {fp_of.get(k)!r} vs now {self.fingerprint_of[k]!r}" for k in differ)
        fix = ("pass allow_mixture_change=True to switch mixtures on purpose (phase 2)" if differ == ["mixture"]
               else "resume with the same corpus, seq_len and seed, or start a fresh run")
        raise LoaderStateError(f"loader state fingerprint differs ({detail or 'fingerprint only'}); refusing to "
                               f"resume a different data order: {fix}")
