"""The pieces of a training run, each built by one function; `trainer.train` calls them in this order.

    info = build_dist(cfg)                                  # process group, device, CPU threads
    mcfg = build_model_config(cfg)                          # the model TOML (+ backend override), checked
    data = build_data(cfg, phase, mcfg)                     # corpus (tokenizer checked), this phase's mixture
    steps = plan_steps(cfg, phase, info)                    # WSD schedule, the phase's steps, accumulation
    start = build_resume(cfg, phase, run_dir, steps, info, warn)  # checkpoint or step 0 (never silently)
    verify_data(cfg, data, info, log)                       # the parts it reads against the manifest
    check_run_dir(run_dir, info)                            # the run folder takes writes (IOFault if not)
    model, fsdp = build_model(cfg, mcfg, info)              # seeded init (meta device when big), FSDP2
    optimizer = build_optimizer(model, cfg, info.device)    # trainer.optim
    restore(start, model, optimizer, info, run_dir)         # weights, AdamW and RNG state; stale temp folders
    loader = build_loader(cfg, data, info, start)           # blended stream, positioned at start.step

Each raises a ConfigError / CorpusError / CheckpointError / IOFault whose message names the file or key
and the fix.
"""
from __future__ import annotations

import contextlib
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from jetmoe_core.io import IOFault
from trainer import checkpoint as ckpt
from trainer import dist as D
from trainer.config import ConfigError, RunConfig
from trainer.optim import WSDSchedule
from trainer.writers import check_writable

# A run-config key that changes the arithmetic of the run may not change on resume (it would silently
# start another run in the same folder); phase-2 mixture and logging/checkpoint cadence may.
FROZEN_KEYS = [("model", "config"), ("data", "corpus"), ("data", "seq_len"), ("data", "seed"),
               ("data", "phase1_mixture"), ("train", "batch_tokens"), ("train", "phase1_tokens"),
               ("train", "seed"), ("schedule", "warmup_tokens"), ("schedule", "init_frac"), ("optim", "lr")]
FROZEN_IN_PHASE2 = [("train", "phase2_tokens"), ("data", "phase2_mixture"), ("schedule", "decay"),
                    ("schedule", "final_frac")]


@dataclass
class Data:
    corpus: object  # trainer.data.Corpus
    mixture: object  # trainer.data.Mixture


@dataclass
class Steps:
    sched: WSDSchedule
    start_of_phase: int
    end_step: int
    accum: int
    """Micro-batches per optimizer step on each rank."""


@dataclass
class Start:
    """Where this phase starts: a verified checkpoint, or step 0 of a fresh run."""

    step: int
    found: ckpt.Found | None
    starting_phase2: bool
    """The checkpoint is phase 1's last: phase 2 switches the mixture."""
    done: bool
    """The phase is already complete: nothing to build."""


def build_dist(cfg: RunConfig) -> D.DistInfo:
    info = D.init()
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    # CPU kernels are deterministic at a fixed thread count (train.threads), which is what makes resume
    # bit-exact. torch.use_deterministic_algorithms is not switched on: on CPU it only reroutes
    # index_add (the MoE's scatter of expert outputs) through a slower scatter_add, and on GPU
    # bit-exactness would cost the fast kernels.
    return info


def build_model_config(cfg: RunConfig):
    from trainer.model import load_model_config

    mcfg = load_model_config(cfg.model_config_path())
    if cfg.model.backend:
        mcfg = mcfg.replace(backend=cfg.model.backend)
    if cfg.data.seq_len > mcfg.max_seq_len:
        raise ConfigError(f"data.seq_len = {cfg.data.seq_len} exceeds the model's max_seq_len = "
                          f"{mcfg.max_seq_len} ({cfg.model_config_path()})")
    return mcfg


def build_data(cfg: RunConfig, phase: int, mcfg) -> Data:
    from trainer.data import Corpus, check_tokenizer, load_mixture

    corpus = Corpus.open(cfg.data.corpus)
    check_tokenizer(corpus, vocab_size=mcfg.vocab_size, tokenizer_sha256=mcfg.tokenizer_sha256 or None)
    return Data(corpus, load_mixture(cfg.mixture_for(phase), corpus))


def verify_data(cfg: RunConfig, data: Data, info: D.DistInfo, log) -> None:
    """Check the parts this phase reads (its mixture's train parts, every val part) against the manifest, as
    data.verify says; the ranks share the parts. A CorpusError lists what is wrong on any rank."""
    from trainer.data import CorpusError

    mode = cfg.data.verify
    if mode == "off":
        return
    corpus = data.corpus
    parts = [p for src in sorted(data.mixture.shares) for p in corpus.parts(src, "train")]
    parts += [p for src in corpus.sources for p in corpus.parts(src, "val")]
    t0 = time.perf_counter()
    problems = corpus.check_parts(parts[info.rank::info.world_size], mode)
    problems = [m for rank_problems in D.all_gather_object(problems, info) for m in rank_problems]
    if problems:
        more = f" (and {len(problems) - 1} more part(s))" if len(problems) > 1 else ""
        raise CorpusError(f"data.verify = {mode!r} found a part that does not match its manifest{more}: "
                          f"{problems[0]}")
    size = sum(p.bytes or 0 for p in parts)
    log(f"data.verify = {mode!r}: {len(parts)} parts ({size / 1e9:.3f} GB) match the manifest "
        f"({time.perf_counter() - t0:.1f} s on {info.world_size} rank(s))")


def batch_hint(seqs: int, micro_batch: int, ranks: int, seq_len: int) -> str:
    """What to change when a batch of ``seqs`` sequences does not split into ``micro_batch`` × ``ranks``:
    the micro-batch (a memory setting; the recipe's batch stays), else the number of ranks, and the batch
    itself only when neither can (it changes the recipe)."""
    if seqs % ranks == 0:
        per_rank = seqs // ranks
        fits = [m for m in range(min(micro_batch, per_rank), 0, -1) if per_rank % m == 0]
        verbs = "divides them and uses" if len(fits) == 2 else "divide them and use"
        others = f"; {', '.join(map(str, fits[1:4]))} also {verbs} less memory" if fits[1:] else ""
        return (f"keep the recipe's batch and use --data.micro_batch={fits[0]} (each rank gets {per_rank} "
                f"sequences per step{others})")
    ranks_ok = [r for r in range(1, min(seqs, 4 * ranks) + 1) if seqs % r == 0]
    batch = max(1, round(seqs / (micro_batch * ranks))) * micro_batch * ranks * seq_len
    return (f"{seqs} sequences do not split over {ranks} ranks: run on {', '.join(map(str, ranks_ok))} ranks, "
            f"or, changing the recipe, --train.batch_tokens={batch}")


def plan_steps(cfg: RunConfig, phase: int, info: D.DistInfo) -> Steps:
    sched = WSDSchedule.from_config(cfg)
    per_forward = cfg.data.seq_len * cfg.data.micro_batch * info.world_size
    if cfg.train.batch_tokens % per_forward:
        seqs = cfg.train.batch_tokens // cfg.data.seq_len
        raise ConfigError(
            f"train.batch_tokens = {cfg.train.batch_tokens} ({seqs} sequences of {cfg.data.seq_len}) is not a "
            f"multiple of data.micro_batch × ranks = {cfg.data.micro_batch} × {info.world_size}; "
            + batch_hint(seqs, cfg.data.micro_batch, info.world_size, cfg.data.seq_len))
    return Steps(sched, start_of_phase=0 if phase == 1 else sched.phase1_steps,
                 end_step=sched.phase1_steps if phase == 1 else sched.total_steps,
                 accum=cfg.train.batch_tokens // per_forward)


def check_frozen(saved: dict, cfg: RunConfig, phase2: bool, where: Path) -> None:
    now = cfg.to_dict()
    for sec, key in FROZEN_KEYS + (FROZEN_IN_PHASE2 if phase2 else []):
        a, b = saved.get(sec, {}).get(key), now[sec][key]
        if a != b:
            raise ConfigError(f"{sec}.{key} = {b!r} but the run in {where} was trained with {a!r}; "
                              f"pass --{sec}.{key}={a!r} to continue it, or use a new --run-dir")


def check_run_dir(run_dir: Path, info: D.DistInfo) -> None:
    """Rank 0 writes a probe into <run>/checkpoints/ before any work: a read-only or full run folder is an
    IOFault (exit 2) now, on every rank, not after the first hours of training."""
    fault = None
    if info.is_main:
        try:
            check_writable(run_dir / "checkpoints", "the run folder")
        except IOFault as e:
            fault = e
    fault = D.broadcast_object(fault, info)
    if fault is not None:
        raise fault


def set_aside(run_dir: Path) -> Path:
    """Move a run's checkpoints/, metrics.jsonl and tb/ into <run>/previous-N/ (nothing is deleted)."""
    n = 1
    while (run_dir / f"previous-{n}").exists():
        n += 1
    dest = run_dir / f"previous-{n}"
    dest.mkdir(parents=True)
    for name in ("checkpoints", "metrics.jsonl", "tb"):
        if (run_dir / name).exists():
            os.replace(run_dir / name, dest / name)
    return dest


def build_resume(cfg: RunConfig, phase: int, run_dir: Path, steps: Steps, info: D.DistInfo, warn,
                 restart: bool = False) -> Start:
    """`warn(message)` is told about each unusable checkpoint that was passed over. With `restart`, phase 1
    starts over at step 0 after moving the run's checkpoints and logs aside (see set_aside)."""
    if restart:
        if phase != 1:
            raise ConfigError("--restart starts phase 1 over (phase 2 always starts from phase 1's final "
                              "checkpoint): run --phase 1 --restart, then --phase 2")
        moved = None
        if info.is_main and ckpt.list_checkpoints(run_dir):
            try:
                moved = set_aside(run_dir)
            except OSError as e:
                raise IOFault.from_os_error(e, "moving the old checkpoints aside in", e.filename or run_dir) from None
        moved = D.broadcast_object(moved, info)
        if moved is not None:
            warn(f"--restart: the run's checkpoints and logs were moved to {moved}; phase 1 starts at step 0")
    found = ckpt.decide_latest(run_dir, info, warn=warn)
    if found is None:
        present = D.broadcast_object([p.name for _, p in ckpt.list_checkpoints(run_dir)] if info.is_main else None,
                                     info)
        if present:
            # Checkpoints exist but none verifies: starting over here would overwrite them and throw the run
            # away; the user decides.
            again = ("start phase 1 over on purpose with --phase 1 --restart (it moves them to "
                     f"{run_dir}/previous-N/, deleting nothing)")
            raise ckpt.CheckpointError(
                f"none of the checkpoints in {run_dir / 'checkpoints'} is usable ({', '.join(present)}; the "
                f"warnings above say why) and nothing was changed: restore a good copy of one, or {again}")
        if phase == 2:
            raise ckpt.CheckpointError(
                f"no valid checkpoint in {run_dir / 'checkpoints'}: phase 2 starts from phase 1's final "
                f"checkpoint; run phase 1 first (make phase1 RUN_DIR={run_dir})")
        return Start(0, None, starting_phase2=False, done=False)
    st = found.state
    step = st["step"]
    check_frozen(st["run_config"], cfg, phase2=(phase == 2 and st["phase"] == 2), where=found.path)
    if phase == 1:
        if st["phase"] == 2:
            raise ckpt.CheckpointError(f"{found.path} is a phase-2 checkpoint: phase 1 of {run_dir} is "
                                       "over; run --phase 2, or use a new --run-dir")
        return Start(step, found, starting_phase2=False, done=step >= steps.end_step)
    if st["phase"] == 1 and step < steps.sched.phase1_steps:
        raise ckpt.CheckpointError(
            f"phase 1 of {run_dir} stopped at step {step} of {steps.sched.phase1_steps} "
            f"({found.path}); finish it with --phase 1 before starting phase 2")
    return Start(step, found, starting_phase2=st["phase"] == 1, done=step >= steps.end_step)


def seed_everything(seed: int) -> None:
    """torch's, Python's and numpy's global RNGs from train.seed: a fresh run starts from the same state
    whatever ran before it in the process; a resumed one gets them back from the checkpoint's rng.pt."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def build_model(cfg: RunConfig, mcfg, info: D.DistInfo) -> tuple[torch.nn.Module, bool]:
    """The model, initialised from train.seed (the same on every rank, so the same as one process), on the
    device; sharded with FSDP2 when it applies. A model too big for one rank's memory in fp32 is built on
    the meta device and each rank materialises only its shards."""
    from trainer.model import JetMoE, count_params

    seed_everything(cfg.train.seed)
    total, _ = count_params(mcfg)
    big = info.distributed and total * 4 > 4 * 2 ** 30
    with torch.device("meta") if big else contextlib.nullcontext():
        model = JetMoE(mcfg)
    fsdp = D.use_fsdp(cfg.parallel.fsdp, info)
    if cfg.parallel.activation_checkpoint:
        D.checkpoint_activations(model)
    if not big:
        model.to(info.device)
    if fsdp:
        D.shard_model(model, cfg.parallel.reshard_after_forward)
    if big:  # materialise the shards and init them; a checkpoint (if any) overwrites them
        model.to_empty(device=info.device)
        model.init_weights()
    return model, fsdp


def restore(start: Start, model: torch.nn.Module, optimizer: torch.optim.Optimizer, info: D.DistInfo,
            run_dir: Path) -> None:
    if start.found is not None:
        ckpt.load_into(start.found, model=model, optimizer=optimizer, info=info)
    if info.is_main:
        ckpt.clean_stale(run_dir)


def build_loader(cfg: RunConfig, data: Data, info: D.DistInfo, start: Start):
    from trainer.data import BlendedLoader

    loader = BlendedLoader(data.corpus, data.mixture, seq_len=cfg.data.seq_len, seed=cfg.data.seed,
                           micro_batch=cfg.data.micro_batch, rank=info.rank, world_size=info.world_size,
                           num_workers=cfg.data.num_workers, prefetch=cfg.data.prefetch)
    if start.found is not None:
        loader.load_state_dict(start.found.state["loader"], allow_mixture_change=start.starting_phase2)
    return loader


def precision_of(cfg: RunConfig, info: D.DistInfo) -> str:
    if cfg.train.precision == "auto":
        return "bf16" if info.device.type == "cuda" else "fp32"
    return cfg.train.precision
