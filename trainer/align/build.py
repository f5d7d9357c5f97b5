"""The pieces of an SFT or DPO run, each built by one function; `trainer.align.run` calls them in this order.

    info = B.build_dist(cfg)                                   # process group, device, threads (pretraining's)
    init = resolve_init(cfg, info, warn)                       # the checkpoint the stage starts from, checked
    data = build_data(cfg, init)                               # the chat corpus's rows of this stage's kind
    steps = plan_steps(cfg, data, info)                        # epochs → steps, micro-batches per rank, schedule
    found = build_resume(cfg, run_dir, steps, info, warn)      # this run's newest checkpoint, or None
    model, opt, ref, fsdp = build_models(cfg, init, found, info, run_dir)   # policy, AdamW, DPO's frozen ref

Each raises a ConfigError / CorpusError / CheckpointError naming the file or key and the fix. Checkpoints are
pretraining's (`trainer.checkpoint`): the same files, atomic writes, SHA256SUMS, keep-last pruning; a stage's
train_state.json says `"stage": "sft"` or `"dpo"`, and its last one `"phase_end": true`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from jetmoe_core.io import sha256_file
from trainer import build as B
from trainer import checkpoint as ckpt
from trainer import dist as D
from trainer.align.batches import StepPlan, check_split
from trainer.align.config import FROZEN, AlignConfig, ConfigError
from trainer.align.data import ChatCorpus, Conversations, Pairs
from trainer.align.schedule import CosineSchedule
from trainer.model import ModelConfig, read_model_config

# What each stage starts from, when init.checkpoint is a run folder: its final checkpoint of this stage.
PREVIOUS = {"sft": ("pretraining phase 2", "make phase2"), "dpo": ("SFT", "make sft")}


@dataclass
class Init:
    path: Path
    """The checkpoint folder the weights come from."""
    mcfg: ModelConfig
    weights_sha256: str
    tokenizer: Path


@dataclass
class Data:
    chat: ChatCorpus
    train: Conversations | Pairs
    val: Conversations | Pairs | None


@dataclass
class Steps:
    plan: StepPlan
    sched: CosineSchedule
    accum: int
    """Micro-batches per rank per step."""

    @property
    def total(self) -> int:
        return self.plan.total_steps


def _is_final_of(state: dict, stage: str) -> bool:
    if stage == "sft":  # a pretraining run: phase 2 done
        return state.get("phase") == 2 and bool(state.get("phase_end")) and "stage" not in state
    return state.get("stage") == "sft" and bool(state.get("phase_end"))


def resolve_init(cfg: AlignConfig, info: D.DistInfo, warn) -> Init:
    """init.checkpoint → the checkpoint folder and its model: a checkpoint folder is taken as it is (checked
    against its SHA256SUMS when it has one); a run folder gives its newest valid checkpoint, which must be the
    previous stage's final one."""
    path = Path(cfg.init.checkpoint)
    what, make = PREVIOUS[cfg.stage]
    key = f"init.checkpoint = {str(path)!r}"
    if (path / "model.safetensors").is_file():
        bad = D.broadcast_object(ckpt.verify(path) if info.is_main and (path / ckpt.SUMS).is_file() else None, info)
        if bad:
            raise ckpt.CheckpointError(f"{key}: the checkpoint is unusable ({bad}); restore it or start from "
                                       f"another one")
        folder = path
    elif (path / "checkpoints").is_dir():
        found = ckpt.decide_latest(path, info, warn=warn)
        if found is None:
            raise ckpt.CheckpointError(f"{key}: no valid checkpoint in {path / 'checkpoints'}; run the "
                                       f"{what} first ({make})")
        if not _is_final_of(found.state, cfg.stage):
            st = found.state
            now = f"stage {st['stage']}" if "stage" in st else f"phase {st.get('phase')}"
            raise ckpt.CheckpointError(
                f"{key}: its newest checkpoint {found.path} is step {found.step} of {now}, not the final checkpoint "
                f"of {what}; finish that first ({make}), or name a checkpoint folder to start from on purpose")
        folder = found.path
    else:
        raise ckpt.CheckpointError(f"{key}: neither a checkpoint folder (model.safetensors) nor a run folder "
                                   f"(checkpoints/); run the {what} first ({make}) or set init.checkpoint")
    mcfg = read_model_config(folder)
    tok = folder / "tokenizer.json"
    if not tok.is_file():
        raise ckpt.CheckpointError(f"{folder}: no tokenizer.json beside the weights; the stage needs the base model's "
                                   f"tokenizer to check the chat corpus against: copy the base corpus's there")
    digest = D.broadcast_object(sha256_file(folder / "model.safetensors") if info.is_main else None, info)
    return Init(folder, mcfg, digest, tok)


def build_data(cfg: AlignConfig, init: Init) -> Data:
    chat = ChatCorpus.open(cfg.data.corpus, cfg.stage if cfg.stage == "sft" else "dpo")
    chat.check_tokenizer(init.mcfg.vocab_size, sha256_file(init.tokenizer), str(init.path))
    if cfg.data.max_len > init.mcfg.max_seq_len:
        raise ConfigError(f"data.max_len = {cfg.data.max_len} exceeds the model's max_seq_len = "
                          f"{init.mcfg.max_seq_len} ({init.path / 'model_config.json'}); lower it")
    train = chat.rows("train", cfg.data.max_len)
    if train.n == 0:
        raise ConfigError(f"{chat.root}: no {chat.kind} train row fits data.max_len = {cfg.data.max_len} "
                          f"({train.dropped} dropped); raise data.max_len")
    val = chat.rows("val", cfg.data.max_len) if chat.parts("val") else None
    return Data(chat, train, val if val is not None and val.n else None)


def plan_steps(cfg: AlignConfig, data: Data, info: D.DistInfo) -> Steps:
    what = "conversations" if cfg.stage == "sft" else "pairs"
    try:
        accum = check_split(cfg.train.batch, cfg.data.micro_batch, info.world_size, what)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    plan = StepPlan(data.train.n, cfg.train.batch, cfg.train.epochs, cfg.data.seed)
    return Steps(plan, CosineSchedule(cfg.optim.lr, plan.total_steps, cfg.schedule.warmup_ratio), accum)


def data_fingerprint(cfg: AlignConfig, data: Data) -> dict:
    """What the data order depends on: a resume must find the same (checked with the frozen keys)."""
    return {"manifest": data.chat.corpus.fingerprint, "rows": data.train.n, "max_len": cfg.data.max_len,
            "seed": cfg.data.seed, "batch": cfg.train.batch}


def build_resume(cfg: AlignConfig, run_dir: Path, data: Data, info: D.DistInfo, warn) -> ckpt.Found | None:
    """This run's newest valid checkpoint (None: a fresh start). Checkpoints that exist but none verifies stop
    the run, as in pretraining; a changed frozen key or corpus is refused with the saved value."""
    found = ckpt.decide_latest(run_dir, info, warn=warn)
    if found is None:
        present = D.broadcast_object([p.name for _, p in ckpt.list_checkpoints(run_dir)] if info.is_main else None,
                                     info)
        if present:
            raise ckpt.CheckpointError(
                f"none of the checkpoints in {run_dir / 'checkpoints'} is usable ({', '.join(present)}; the "
                f"warnings above say why) and nothing was changed: restore a good copy of one, or move them away "
                f"to start the {cfg.stage} stage over")
        return None
    st = found.state
    if st.get("stage") != cfg.stage:
        raise ckpt.CheckpointError(f"{found.path} is not a {cfg.stage} checkpoint (stage {st.get('stage')!r}, "
                                   f"phase {st.get('phase')!r}); use a new --run-dir for the {cfg.stage} stage")
    saved, now = st.get("run_config", {}), cfg.to_dict()
    for sec, key in FROZEN:
        if sec in now and saved.get(sec, {}).get(key) != now[sec][key]:
            a = saved.get(sec, {}).get(key)
            raise ConfigError(f"{sec}.{key} = {now[sec][key]!r} but the run in {found.path} was trained with {a!r}; "
                              f"pass --{sec}.{key}={a!r} to continue it, or use a new --run-dir")
    if st.get("data") != data_fingerprint(cfg, data):
        raise ConfigError(f"the chat corpus {cfg.data.corpus} is not the one {found.path} was trained on (its "
                          f"manifest or rows changed); resume with that corpus, or use a new --run-dir")
    return found


def align_levers(cfg: AlignConfig, info: D.DistInfo) -> B.Levers:
    """The alignment stages run without pretraining's speed levers (bf16 weight cast cache, bf16 FSDP2 units,
    torch.compile): fp32 master weights under autocast as configured, FSDP2 in fp32 units, eager blocks, so the
    arithmetic is the one checked against TRL and across ranks."""
    return B.Levers(B.precision_of(cfg, info), D.use_fsdp(cfg.parallel.fsdp, info), "none", "off",
                    "the alignment stages run eagerly", cfg.parallel.activation_checkpoint)


def build_models(cfg: AlignConfig, init: Init, found: ckpt.Found | None, info: D.DistInfo, run_dir: Path):
    """(policy, optimizer, frozen reference or None, fsdp). The policy starts from init's weights, or from this
    run's checkpoint (weights, AdamW state and RNG) when resuming; DPO's reference is init's weights, frozen.
    Both models are built before any state is loaded, so the RNGs end where the checkpoint (or the seed) says."""
    if info.distributed and cfg.parallel.fsdp == "false":
        raise ConfigError("parallel.fsdp = false on more than one rank would train unsynchronised copies; use "
                          "\"auto\" (FSDP2 over the ranks)")
    levers = align_levers(cfg, info)
    built = B.build_model(cfg, init.mcfg, info, levers)
    model, optimizer, fsdp = built.model, built.optimizer, levers.fsdp
    ref = None
    if cfg.stage == "dpo":
        ref = B.build_model(cfg, init.mcfg, info, levers).model
        ckpt.load_into(ckpt.Found(init.path, 0, {}), model=ref, optimizer=None, info=info, restore_rng=False)
        ref.requires_grad_(False)
        ref.eval()
    if found is None:
        ckpt.load_into(ckpt.Found(init.path, 0, {}), model=model, optimizer=None, info=info, restore_rng=False)
        B.seed_everything(cfg.train.seed)
    else:
        ckpt.load_into(found, model=model, optimizer=optimizer, info=info)
    if info.is_main:
        ckpt.clean_stale(run_dir)
    return model, optimizer, ref, fsdp
