"""Alignment run configs: a TOML file → typed dataclasses, one class per stage (SFT, DPO).

    cfg = load_align_config("sft", "trainer/configs/align/sft-tiny.toml", ["--optim.lr=1e-5"])
    cfg.init.checkpoint, cfg.train.batch, cfg.optim.lr, cfg.schedule.warmup_ratio
    cfg = load_align_config("dpo", "trainer/configs/align/dpo-tiny.toml");  cfg.dpo.beta

Read by `jetmoe_core.config` like every config (an unknown key, a wrong type or a value out of range is a
`ConfigError` naming the file or the override and the key). The defaults are the paper's (RECIPE.md,
"Alignment": JetMoE-8B-Chat follows Zephyr): SFT lr 2e-5, 128 conversations a step, 3 epochs; DPO lr 5e-7,
128 pairs a step, 1 epoch, β = 0.01 (alignment-handbook's recipes/zephyr-7b-beta/dpo/config_full.yaml; the
paper does not state β); both Adam (0.9, 0.999, 1e-8) without weight decay (transformers' TrainingArguments
defaults, which the recipe keeps), cosine decay to 0 after a linear warmup over the first 10% of the steps.
The sections the pretraining run config also has (`optim`, `log`, `checkpoint`, `parallel`) are its classes,
with these defaults where the recipe differs.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from jetmoe_core.config import ConfigError, apply_overrides, from_table, load_toml
from trainer.config import CONFIG_DIR, CheckpointSection, LogSection, OptimSection, ParallelSection, _need

__all__ = ["ALIGN_CONFIG_DIR", "AlignConfig", "SFTConfig", "DPOConfig", "ConfigError", "load_align_config",
           "align_from_dict", "FROZEN"]

ALIGN_CONFIG_DIR = CONFIG_DIR / "align"
STAGES = ("sft", "dpo")

# Keys that define the arithmetic of a run: changing one between restarts would silently start another run
# in the same folder (the resume refuses it, naming the saved value).
FROZEN = [("init", "checkpoint"), ("data", "corpus"), ("data", "max_len"), ("data", "seed"), ("train", "batch"),
          ("train", "epochs"), ("train", "seed"), ("train", "router_aux_loss"), ("optim", "lr"),
          ("schedule", "warmup_ratio"), ("dpo", "beta")]


@dataclass
class InitSection:
    checkpoint: str = "runs/tiny"
    """Where the stage starts: a run folder (its final checkpoint of the previous stage: phase 2 for SFT,
    SFT for DPO) or one checkpoint folder (step-*, or an `import-hf` folder) taken as it is."""


@dataclass
class AlignDataSection:
    corpus: str = "shards/chat_sample"
    """Chat corpus folder (built from an alignment config: SFT and DPO sources); the stage reads its kind."""
    max_len: int = 256
    """Longest row in tokens (SFT: a conversation; DPO: prompt + the longer completion), at most the model's
    max_seq_len. A longer SFT conversation is cut to its first max_len tokens (TRL's keep_start); a longer DPO
    pair is dropped (a cut answer would be judged on part of it). Both are counted and printed at the start."""
    micro_batch: int = 8
    """Conversations (SFT) or pairs (DPO: 2 rows each) per rank per forward; accumulation fills train.batch."""
    seed: int = 1234
    """Data-order seed: epoch e is a permutation of the train rows drawn from (seed, e)."""
    pad_multiple: int = 1
    """Pad each micro-batch to a multiple of this many tokens (e.g. 64 on GPUs: fewer distinct shapes)."""
    verify: Literal["sha256", "size", "off"] = "sha256"
    """What is checked of the parts this stage reads against the manifest before the first step (see the
    pretraining run config's data.verify)."""

    def __post_init__(self):
        _need(self.max_len >= 2, "data.max_len", self.max_len, "must be >= 2 (a token and its successor)")
        for n in ("micro_batch", "pad_multiple"):
            _need(getattr(self, n) >= 1, f"data.{n}", getattr(self, n), "must be >= 1")
        _need(self.seed >= 0, "data.seed", self.seed, "must be >= 0")


@dataclass
class AlignTrainSection:
    batch: int = 128
    """Conversations (SFT) or preference pairs (DPO) per optimizer step, over all ranks (paper: 128)."""
    epochs: float = 3.0
    """Passes over the train rows; steps = ceil(epochs × rows / batch), so the last step may take a few rows of
    the next pass (a fraction, e.g. 0.25, runs part of one)."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """"auto" = bf16 autocast on CUDA and fp32 on CPU."""
    seed: int = 0
    """Seed of torch's, Python's and numpy's global RNGs at a fresh start (the weights come from init)."""
    threads: int = 0
    """torch CPU threads (0 = torch's default); fix it for the same bytes across machines."""
    router_aux_loss: bool = False
    """Add the model's router losses (load balance and z-loss, weighted by the model config) to the stage's
    loss. Off as in the recipe: transformers' JetMoE adds its router loss only with output_router_logits,
    which its config leaves off, so TRL's SFT and DPO on the exported model train without it. They are logged
    either way."""

    def __post_init__(self):
        _need(self.batch >= 1, "train.batch", self.batch, "must be >= 1")
        _need(0 < self.epochs < math.inf, "train.epochs", self.epochs, "must be a finite number > 0")
        _need(0 <= self.seed < 2 ** 32, "train.seed", self.seed, "must be in [0, 2**32) (numpy's seed range)")
        _need(self.threads >= 0, "train.threads", self.threads, "must be >= 0")


@dataclass
class SFTTrainSection(AlignTrainSection):
    epochs: float = 3.0


@dataclass
class DPOTrainSection(AlignTrainSection):
    epochs: float = 1.0


@dataclass
class SFTOptimSection(OptimSection):
    lr: float = 2e-5
    """Peak learning rate (paper: 2e-5)."""
    weight_decay: float = 0.0
    """AdamW decoupled weight decay (the recipe: 0)."""
    beta2: float = 0.999
    """Adam beta2 (paper: 0.999)."""


@dataclass
class DPOOptimSection(SFTOptimSection):
    lr: float = 5e-7
    """Peak learning rate (paper: 5e-7)."""


@dataclass
class AlignScheduleSection:
    warmup_ratio: float = 0.1
    """Linear warmup from 0 over ceil(warmup_ratio × steps) steps, then cosine decay to 0 at the last step:
    transformers' get_cosine_schedule_with_warmup, which the recipe (lr_scheduler_type = cosine) uses."""

    def __post_init__(self):
        _need(0 <= self.warmup_ratio < 1, "schedule.warmup_ratio", self.warmup_ratio, "must be in [0, 1)")


@dataclass
class DPOSection:
    beta: float = 0.01
    """β of the DPO sigmoid loss -log σ(β·((log π_c − log ref_c) − (log π_r − log ref_r))): the Zephyr recipe's
    0.01 (alignment-handbook recipes/zephyr-7b-beta/dpo/config_full.yaml); the paper does not state it."""

    def __post_init__(self):
        _need(0 < self.beta < math.inf, "dpo.beta", self.beta, "must be a finite number > 0")


@dataclass
class AlignLogSection(LogSection):
    val_every_steps: int = 20
    """Evaluate on the val split every N steps (and at the start and the end)."""
    val_batches: int = 2
    """Micro-batches of val rows per source (SFT) or in all (DPO) per evaluation, read from the split's start."""
    val_batch_size: int = 8
    """Conversations or pairs per val micro-batch."""


@dataclass
class AlignConfig:
    """What SFT and DPO share; `stage` says which one a config is."""

    stage: ClassVar[str] = ""
    init: InitSection = field(default_factory=InitSection)
    data: AlignDataSection = field(default_factory=AlignDataSection)
    train: AlignTrainSection = field(default_factory=AlignTrainSection)
    optim: SFTOptimSection = field(default_factory=SFTOptimSection)
    schedule: AlignScheduleSection = field(default_factory=AlignScheduleSection)
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)
    log: AlignLogSection = field(default_factory=AlignLogSection)
    parallel: ParallelSection = field(default_factory=ParallelSection)
    source: str = field(default="", init=False, compare=False)
    """Where the config came from (not a TOML key)."""

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("source", None)
        return d


@dataclass
class SFTConfig(AlignConfig):
    stage: ClassVar[str] = "sft"
    train: SFTTrainSection = field(default_factory=SFTTrainSection)


@dataclass
class DPOConfig(AlignConfig):
    stage: ClassVar[str] = "dpo"
    init: InitSection = field(default_factory=lambda: InitSection("runs/tiny-sft"))
    train: DPOTrainSection = field(default_factory=DPOTrainSection)
    optim: DPOOptimSection = field(default_factory=DPOOptimSection)
    dpo: DPOSection = field(default_factory=DPOSection)


CLASSES = {"sft": SFTConfig, "dpo": DPOConfig}


def load_align_config(stage: str, path: str | Path | None = None, overrides: list[str] | None = None) -> AlignConfig:
    """Defaults of the stage ← the TOML file ← `--section.key=value` overrides, every value checked."""
    if stage not in CLASSES:
        raise ConfigError(f"stage {stage!r} is not one of {', '.join(STAGES)}")
    raw: dict = {}
    source = f"{stage} config"
    if path is not None:
        known = ", ".join(sorted(str(p) for p in ALIGN_CONFIG_DIR.glob(f"{stage}-*.toml")))
        raw, _ = load_toml(path, what=f"{stage} config", missing_hint=f"shipped {stage} configs: {known}")
        source = str(path)
    cfg = from_table(CLASSES[stage], apply_overrides(raw, overrides or []), source=source)
    cfg.source = str(path) if path is not None else ""
    return cfg


def align_from_dict(stage: str, d: dict) -> AlignConfig:
    """The inverse of AlignConfig.to_dict (a checkpoint's saved config)."""
    return from_table(CLASSES[stage], d, source="saved run config")
