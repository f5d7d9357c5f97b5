"""The pieces of a training run, each built by one function; `trainer.train` calls them in this order.

    info = build_dist(cfg)                                  # process group, device, CPU threads
    mcfg = build_model_config(cfg)                          # the model TOML (+ backend override), checked
    data = build_data(cfg, phase, mcfg)                     # corpus (tokenizer checked), this phase's mixture
    steps = plan_steps(cfg, phase, info)                    # WSD schedule, the phase's steps, accumulation
    levers = plan_levers(cfg, info)                         # precision, FSDP2, weight casts, compile
    start = build_resume(cfg, phase, run_dir, steps, info, warn)  # checkpoint or step 0 (never silently)
    verify_data(cfg, data, info, log)                       # the parts it reads against the manifest
    check_run_dir(run_dir, info)                            # the run folder takes writes (IOFault if not)
    save_run_config(saved, run_dir, cfg, info)              # <run>/run_config.toml (trainer.run_folder)
    built = build_model(cfg, mcfg, info, levers, warn)      # model + AdamW with those levers applied
    restore(start, built.model, built.optimizer, info, run_dir)  # weights, AdamW and RNG state; stale temps
    loader = build_loader(cfg, data, info, start)           # blended stream, positioned at start.step

Each raises a ConfigError / CorpusError / CheckpointError / IOFault whose message names the file or key
and the fix. `levers.describe()` is the line a run prints about its speed levers (bf16 weight casts once per
step, FSDP2 bf16 units, compiled blocks; trainer.perf does the work).
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
from trainer.optim import WSDSchedule, build_optimizer
from trainer.run_folder import DEFINING, PHASE2_KEYS, SAVED
from trainer.writers import check_writable

# A run-config key that changes the arithmetic of the run may not change on resume (it would silently
# start another run in the same folder); phase-2 mixture and logging/checkpoint cadence may. The lists live
# with the run folder's saved config, which applies the same rule to the command line.
FROZEN_KEYS = DEFINING
FROZEN_IN_PHASE2 = PHASE2_KEYS


@dataclass
class Data:
    corpus: object  # trainer.data.Corpus
    mixture: object  # trainer.data.Mixture
    next_mixture: object = None  # phase 1: phase 2's mixture, read against the corpus before the first step


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
    """The corpus and this phase's mixture. Phase 1 also reads phase 2's mixture against the corpus, so a typo
    in it stops the run before its first step rather than after all of phase 1."""
    from trainer.data import Corpus, MixtureError, check_tokenizer, load_mixture

    corpus = Corpus.open(cfg.data.corpus)
    check_tokenizer(corpus, vocab_size=mcfg.vocab_size, tokenizer_sha256=mcfg.tokenizer_sha256 or None)
    mixture = load_mixture(cfg.mixture_for(phase), corpus, renormalise=cfg.data.renormalise)
    nxt = None
    if phase == 1 and cfg.train.phase2_tokens > 0:
        try:
            nxt = load_mixture(cfg.mixture_for(2), corpus, renormalise=cfg.data.renormalise)
        except MixtureError as e:
            raise MixtureError(f"phase 2's mixture (data.phase2_mixture, checked before phase 1 starts): {e}; "
                               f"nothing was trained") from None
    return Data(corpus, mixture, nxt)


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
    now, default = cfg.to_dict(), RunConfig().to_dict()
    for sec, key in FROZEN_KEYS + (FROZEN_IN_PHASE2 if phase2 else []):
        # a key newer than the checkpoint had its default value then
        a, b = saved.get(sec, {}).get(key, default[sec][key]), now[sec][key]
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


def save_run_config(saved, run_dir: Path, cfg: RunConfig, info: D.DistInfo) -> None:
    """Rank 0 saves the run's config (`trainer.run_folder`) once the checks passed; a failed write stops every
    rank with the IOFault."""
    fault = None
    if info.is_main:
        try:
            saved.write(run_dir, cfg)
        except IOFault as e:
            fault = e
    fault = D.broadcast_object(fault, info)
    if fault is not None:
        raise fault


def set_aside(run_dir: Path) -> Path:
    """Move a run's checkpoints/, metrics.jsonl, tb/ and saved config into <run>/previous-N/ (nothing is
    deleted)."""
    n = 1
    while (run_dir / f"previous-{n}").exists():
        n += 1
    dest = run_dir / f"previous-{n}"
    dest.mkdir(parents=True)
    for name in ("checkpoints", "metrics.jsonl", "tb", SAVED):
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


@dataclass
class Levers:
    """The speed levers build_model applied, from train.precision, train.weight_casts, train.compile and
    parallel.*; `describe()` is the line the run prints about them before its first step."""

    precision: str
    """"bf16" (autocast over fp32 master weights) or "fp32"."""
    fsdp: bool
    weights: str
    """trainer.perf.weight_precision_plan's answer: "cast-cache", "fsdp-mixed" or "none"."""
    compile: str
    """The torch.compile backend of the blocks ("inductor", "aot_eager"), or "off"."""
    compile_why: str
    """Why compile is on or off (the key's value and what "auto" chose)."""
    activation_checkpoint: bool

    def describe(self) -> str:
        casts = {"cast-cache": "matmul weights cast to bf16 once per optimizer step (cast cache)",
                 "fsdp-mixed": "matmul weights gathered in bf16 once per step (FSDP2 bf16 units, fp32 reduce)",
                 "none": ("matmul weights cast by autocast in every forward (train.weight_casts = per-forward)"
                          if self.precision == "bf16" else "no weight casts")}[self.weights]
        blocks = (f"blocks compiled with {self.compile} at their first forward" if self.compile != "off"
                  else "blocks eager") + f" ({self.compile_why})"
        ac = "activation checkpointing on" if self.activation_checkpoint else "no activation checkpointing"
        return (f"speed: {self.precision}{' autocast' if self.precision == 'bf16' else ''}; {casts}; {blocks}; "
                f"chunked cross-entropy (no [batch, seq, vocab] logits); {ac}")


@dataclass
class Trainable:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    levers: Levers


def plan_levers(cfg: RunConfig, info: D.DistInfo) -> Levers:
    """Which speed levers this run gets on this device (before any work: a choice that cannot apply, such
    as train.weight_casts = "per-step" in fp32, is a ConfigError here)."""
    from trainer.perf import weight_precision_plan

    precision = precision_of(cfg, info)
    fsdp = D.use_fsdp(cfg.parallel.fsdp, info)
    if precision == "fp32" and cfg.train.weight_casts == "per-step":
        how = ' is fp32 on CPU' if cfg.train.precision == "auto" else ''
        raise ConfigError(f'train.weight_casts = "per-step" needs bf16 training, but this run trains in fp32 '
                          f'(train.precision = "{cfg.train.precision}"{how}); set train.weight_casts = "auto" or '
                          f'train.precision = "bf16"')
    weights = weight_precision_plan(precision, fsdp, cfg.train.weight_casts)
    mode = cfg.train.compile
    if mode == "auto":
        on = info.device.type == "cuda"
        why = f"train.compile = auto: {'on for' if on else 'off on'} {info.device.type.upper()}"
    else:
        on, why = mode == "true", f"train.compile = {mode}"
    return Levers(precision, fsdp, weights, cfg.train.compile_backend if on else "off", why,
                  cfg.parallel.activation_checkpoint)


def build_model(cfg: RunConfig, mcfg, info: D.DistInfo, levers: Levers | None = None, warn=None) -> Trainable:
    """The model, initialised from train.seed, on the device with its optimizer and the speed levers of
    `levers` (plan_levers' by default):

    1. built on the meta device and initialised where it lives when that is a single GPU, or when it is
       sharded and too big for one rank's memory in fp32 (each rank initialises only its shards); else on
       the CPU and moved (the same weights on every rank, so N ranks start as one process does);
    2. activation checkpointing of each block (parallel.activation_checkpoint);
    3. FSDP2 (parallel.fsdp): bf16 matmul-weight units under the "fsdp-mixed" weight plan, else one fp32
       unit per block, then the root;
    4. trainer.optim's AdamW; the bf16 weight cast cache watching it under the "cast-cache" plan;
    5. torch.compile of each block (train.compile); `warn(line)` gets the one line printed if it fails.
    """
    from trainer.model import JetMoE, count_params
    from trainer.perf import apply_weight_precision, compile_blocks, shard_mixed_precision

    levers = levers or plan_levers(cfg, info)
    seed_everything(cfg.train.seed)
    total, _ = count_params(mcfg)
    on_meta = (info.device.type == "cuda" and not info.distributed) or (info.distributed and total * 4 > 4 * 2 ** 30)
    with torch.device("meta") if on_meta else contextlib.nullcontext():
        model = JetMoE(mcfg)
    if levers.activation_checkpoint:
        D.checkpoint_activations(model)
    if not on_meta:
        model.to(info.device)
    if levers.weights == "fsdp-mixed":
        shard_mixed_precision(model, cfg.parallel.reshard_after_forward)
    elif levers.fsdp:
        D.shard_model(model, cfg.parallel.reshard_after_forward)
    if on_meta:  # materialise (the shards) and init them; a checkpoint (if any) overwrites them
        model.to_empty(device=info.device)
        model.init_weights()
    optimizer = build_optimizer(model, cfg, info.device)
    if levers.weights == "cast-cache":
        apply_weight_precision(model, levers.weights, optimizer)
    if levers.compile != "off":
        compile_blocks(model, backend=levers.compile, warn=warn)
    return Trainable(model, optimizer, levers)


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
