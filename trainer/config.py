"""Run configuration: a TOML file → typed dataclasses, one section per component.

    cfg = load_run_config("trainer/configs/tiny.toml", ["--optim.lr=3e-4", "--train.phase1_tokens=1e6"])
    cfg.optim.lr, cfg.data.corpus, cfg.model_config_path()

Read with `jetmoe_core.config` (the loader the corpus builder uses too): precedence is override > file >
default; an unknown section or key, a value of the wrong type, a choice outside its `Literal`, or a value
outside its range is a `ConfigError` naming the file (or the override as typed) and the key, raised when
the config is read, before anything runs. Integral floats are taken for ints (`phase1_tokens = 1e12`).

The MoE auxiliary-loss weights are not run settings: they are the model config's `load_balance_coef` and
`z_loss_coef` (exported to Hugging Face with the model); a run config that still sets `train.aux_coef` or
`train.z_coef` is refused with a message saying where they live.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from jetmoe_core.config import CliValue, ConfigError, apply_overrides, from_table, load_toml

__all__ = ["ConfigError", "RunConfig", "load_run_config", "from_dict", "resolve_model_config", "CONFIG_DIR",
           "MODEL_CONFIG_DIR"]

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
MODEL_CONFIG_DIR = CONFIG_DIR / "model"
AutoBool = Literal["auto", "true", "false"]

# Keys that moved out of the run config: (section, key) → where they live now.
MOVED = {
    ("train", "aux_coef"): "the model config's load_balance_coef (trainer/configs/model/<name>.toml, exported to "
                           "Hugging Face as aux_loss_coef)",
    ("train", "z_coef"): "the model config's z_loss_coef (trainer/configs/model/<name>.toml)",
}


def _need(ok: bool, key: str, value, rule: str) -> None:
    """A range check that names its key; from_table adds the file and section."""
    if not ok:
        raise ValueError(f"{key} = {value!r} {rule}")


def _positive(section: object, prefix: str, *names: str) -> None:
    for n in names:
        v = getattr(section, n)
        _need(v > 0, f"{prefix}.{n}", v, "must be > 0")


@dataclass
class ModelSection:
    config: str = "tiny"
    """Model config: a name in trainer/configs/model/ (e.g. "tiny", "jetmoe-8b") or a path to a TOML."""
    backend: Literal["", "auto", "torch", "grouped_mm", "megablocks"] = ""
    """Expert-layer backend override ("" keeps the model config's choice; "torch" forces the reference)."""


@dataclass
class DataSection:
    corpus: str = "shards/sample"
    """Corpus folder (manifest.json + tokenizer.json + <source>/{train,val}/part-*.arrow)."""
    phase1_mixture: str = "mixtures/phase1.toml"
    """Mixture drawn in phase 1 (warmup + stable)."""
    phase2_mixture: str = "mixtures/phase2.toml"
    """Mixture drawn in phase 2 (decay); the loader is told to switch when phase 2 starts."""
    renormalise: bool = False
    """Both mixtures: drop the sources the corpus lacks (or that have no train tokens) and renormalise the
    rest, instead of stopping with an error (a mixture file's own `renormalise = true` does the same for it)."""
    seq_len: int = 128
    """Tokens per training sequence (each sample is seq_len + 1 tokens: inputs and shifted labels)."""
    micro_batch: int = 8
    """Sequences per rank per forward/backward; gradient accumulation fills up train.batch_tokens."""
    seed: int = 1234
    """Data-order seed (the order is a function of seed, mixture, manifest and seq_len only)."""
    num_workers: int = 0
    """Loader worker processes (0 = read in the training process)."""
    prefetch: int = 2
    """Batches read ahead per worker."""
    verify: Literal["sha256", "size", "off"] = "sha256"
    """What the trainer checks, before the first step, of the parts this phase reads against the manifest.
    "sha256" hashes them: any changed byte is caught. It costs one read of those parts, split over the ranks,
    8 threads each: measured here (bench/bench_verify.py) 0.9 s/GB on one core from the page cache and
    1.2 s/GB cold from disk, i.e. 15-20 min for 1 TB on a single rank and thread; on a node of 8 ranks the
    filesystem's read rate is the bound (1 TB at 2 GB/s ≈ 8 min; spread over 12 nodes ≈ 1-2 min).
    "size" compares file sizes only (truncated or swapped parts; free); "off" trusts the files. Token ids
    are checked against the vocabulary as batches are read, whatever this says."""

    def __post_init__(self):
        _positive(self, "data", "seq_len", "micro_batch")
        for n in ("seed", "num_workers", "prefetch"):
            _need(getattr(self, n) >= 0, f"data.{n}", getattr(self, n), "must be >= 0")


@dataclass
class TrainSection:
    batch_tokens: int = 16384
    """Global batch in tokens per optimizer step (paper: 4M = 1024 × 4096)."""
    phase1_tokens: int = 2_000_000
    """Tokens trained in phase 1 (warmup + stable). Paper: 1T."""
    phase2_tokens: int = 500_000
    """Tokens trained in phase 2 (the decay). Paper: 250B."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """"auto" = bf16 autocast on CUDA and fp32 on CPU; "fp32" or "bf16" to force."""
    seed: int = 0
    """Model-init seed, and the seed of torch's, Python's and numpy's global RNGs at a fresh start."""
    threads: int = 0
    """torch CPU threads (0 = torch's default). Fix it to get the same bytes across machines."""
    compile: AutoBool = "auto"
    """torch.compile of each block (trainer.perf.compile_blocks): "auto" = on for CUDA, off on CPU;
    "true"/"false" to force. The blocks compile at their first forward (once per shape: a minute or two at
    the 8B's width); if compiling fails the run prints one warning line and goes on eagerly. Validation
    always runs eagerly (its shapes differ and it is a small share of the time)."""
    compile_backend: Literal["inductor", "aot_eager"] = "inductor"
    """The compiler behind train.compile: "inductor" generates fused kernels (the speed-up); "aot_eager"
    traces the same graphs and runs them with the eager kernels: no speed-up, but no C++/Triton build, so
    it tells a compiler problem from a model problem (and keeps CPU tests fast)."""
    weight_casts: Literal["auto", "per-step", "per-forward"] = "auto"
    """When the bf16 copies of the matmul weights (experts, K/V projection, output head) are made under
    bf16 autocast: "per-step" = once per optimizer step: a cast cache on one process, FSDP2 units that
    gather those weights in bf16 (reducing gradients in fp32) when sharded; "per-forward" = autocast casts
    them in every forward (the plain FSDP2 units). Both give the matmuls the same bf16 weights; the
    master weights, gradients and AdamW stay fp32. "auto" = "per-step" under bf16; nothing to cast in fp32
    ("per-step" with fp32 training is refused)."""

    def __post_init__(self):
        _positive(self, "train", "batch_tokens", "phase1_tokens")
        _need(self.phase2_tokens >= 0, "train.phase2_tokens", self.phase2_tokens, "must be >= 0")
        _need(0 <= self.seed < 2 ** 32, "train.seed", self.seed, "must be in [0, 2**32) (numpy's seed range)")
        _need(self.threads >= 0, "train.threads", self.threads,
              "must be >= 0: the number of CPU threads, or 0 for torch's default")


@dataclass
class OptimSection:
    lr: float = 5e-4
    """Peak learning rate (paper: 5e-4)."""
    weight_decay: float = 0.1
    """AdamW decoupled weight decay; not applied to norms, biases and embeddings."""
    beta1: float = 0.9
    """AdamW beta1 (the paper does not state betas; 0.9/0.95 is the common LLM choice)."""
    beta2: float = 0.95
    """AdamW beta2."""
    eps: float = 1e-8
    """AdamW epsilon."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this value (0 disables)."""
    fused: AutoBool = "auto"
    """"auto" = fused AdamW on CUDA, foreach elsewhere; "true"/"false" to force."""

    def __post_init__(self):
        _need(0 < self.lr < math.inf, "optim.lr", self.lr, "must be a finite number > 0")
        _need(0 < self.eps < math.inf, "optim.eps", self.eps, "must be a finite number > 0, e.g. 1e-8")
        for n in ("weight_decay", "grad_clip"):
            v = getattr(self, n)
            _need(0 <= v < math.inf, f"optim.{n}", v, "must be a finite number >= 0")
        for n in ("beta1", "beta2"):
            _need(0 <= getattr(self, n) < 1, f"optim.{n}", getattr(self, n), "must be in [0, 1)")


@dataclass
class ScheduleSection:
    warmup_tokens: int = 200_000
    """Linear warmup length in tokens (paper: 10B)."""
    init_frac: float = 0.1
    """Warmup starts at init_frac × lr."""
    final_frac: float = 0.1
    """The decay ends at final_frac × lr (paper: 5e-5 = 0.1 × 5e-4)."""
    decay: Literal["exponential", "linear", "cosine"] = "exponential"
    """Decay shape over phase 2: "exponential" (the model card), "linear" or "cosine"."""

    def __post_init__(self):
        _need(self.warmup_tokens >= 0, "schedule.warmup_tokens", self.warmup_tokens, "must be >= 0")
        for n in ("init_frac", "final_frac"):
            _need(0 < getattr(self, n) <= 1, f"schedule.{n}", getattr(self, n), "must be in (0, 1]")


@dataclass
class CheckpointSection:
    every_steps: int = 50
    """Write a checkpoint every N optimizer steps (and always at the end of a phase)."""
    keep_last: int = 3
    """Keep the newest K checkpoints (a phase's final checkpoint is kept as well)."""

    def __post_init__(self):
        _positive(self, "checkpoint", "every_steps", "keep_last")


@dataclass
class LogSection:
    every_steps: int = 1
    """Write a JSONL metrics line every N steps."""
    val_every_steps: int = 50
    """Evaluate the val loss per source every N steps (and at the start and end of each phase)."""
    val_batches: int = 4
    """Batches per source per evaluation (the val split is read from its start each time)."""
    val_batch_size: int = 8
    """Sequences per val batch."""
    tensorboard: AutoBool = "auto"
    """"auto" = write TensorBoard events when tensorboard is installed; "true"/"false" to force."""
    progress: bool = True
    """Show the tqdm progress bar (on rank 0)."""

    def __post_init__(self):
        _positive(self, "log", "every_steps", "val_every_steps", "val_batches", "val_batch_size")


@dataclass
class CostSection:
    gpus: int = 1
    """Accelerators the plan assumes (the measured world size is used when running on GPUs)."""
    gpu: str = "H100-SXM"
    """Accelerator name, for the plan table."""
    peak_tflops: float = 989.0
    """Dense bf16 peak per accelerator in TFLOP/s (H100 SXM: 989, not the sparse 1979)."""
    mfu: float = 0.14
    """Assumed model-FLOPs utilisation (paper: ~14%), used until a run measures its own."""
    usd_per_gpu_hour: float = 3.0
    """Price per accelerator-hour (the paper's < $0.1M for ~30k GPU-hours implies ≈ $3)."""
    flops_basis: Literal["6n", "model"] = "6n"
    """FLOPs per token for cost and MFU: "6n" = 6 × active params (the paper's convention, which its
    14% MFU uses) or "model" = the model's count including attention."""

    def __post_init__(self):
        _positive(self, "cost", "gpus")
        _need(0 < self.peak_tflops < math.inf, "cost.peak_tflops", self.peak_tflops, "must be a finite number > 0")
        _need(0 < self.mfu <= 1, "cost.mfu", self.mfu, "must be in (0, 1]")
        _need(0 <= self.usd_per_gpu_hour < math.inf, "cost.usd_per_gpu_hour", self.usd_per_gpu_hour,
              "must be a finite number >= 0")


@dataclass
class ParallelSection:
    fsdp: AutoBool = "auto"
    """"auto" = FSDP2 (fully_shard per block, then the root) when WORLD_SIZE > 1; "true"/"false" to force."""
    reshard_after_forward: bool = True
    """FSDP2: free gathered parameters after forward (saves memory, costs an all-gather in backward)."""
    activation_checkpoint: bool = False
    """Recompute each block's activations in backward (≈ 1/3 more compute, far less memory; see the memory
    plan in bench/gpu_train.py)."""


@dataclass
class RunConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    optim: OptimSection = field(default_factory=OptimSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)
    log: LogSection = field(default_factory=LogSection)
    cost: CostSection = field(default_factory=CostSection)
    parallel: ParallelSection = field(default_factory=ParallelSection)
    source: str = field(default="", init=False, compare=False)
    """Where the config came from (not a TOML key)."""

    def validate(self) -> None:
        """Checks across sections (from_table runs it after building the sections)."""
        d, t, s = self.data, self.train, self.schedule
        if t.batch_tokens % d.seq_len:
            raise ValueError(f"train.batch_tokens = {t.batch_tokens} is not a multiple of data.seq_len = {d.seq_len}; "
                             f"use e.g. {max(1, t.batch_tokens // d.seq_len) * d.seq_len}")
        if t.weight_casts == "per-step" and t.precision == "fp32":
            raise ValueError('train.weight_casts = "per-step" needs bf16 training, but train.precision = "fp32" '
                             '(nothing is cast); set train.weight_casts = "auto" or train.precision = "bf16"')
        if s.warmup_tokens > t.phase1_tokens:
            raise ValueError(f"schedule.warmup_tokens = {s.warmup_tokens} exceeds train.phase1_tokens = "
                             f"{t.phase1_tokens}; warmup happens inside phase 1")
        resolve_model_config(self.model.config)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("source", None)
        return d

    def model_config_path(self) -> Path:
        return resolve_model_config(self.model.config)

    def mixture_for(self, phase: int) -> str:
        return self.data.phase1_mixture if phase == 1 else self.data.phase2_mixture


def resolve_model_config(name_or_path: str) -> Path:
    """A model config name ("tiny") → trainer/configs/model/tiny.toml; a path is used as given."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        return p
    candidate = MODEL_CONFIG_DIR / f"{name_or_path}.toml"
    if not candidate.exists():
        known = sorted(q.stem for q in MODEL_CONFIG_DIR.glob("*.toml"))
        raise ConfigError(f"model.config = {name_or_path!r}: no {candidate}; known model configs: {known} "
                          f"(or give a path to a model TOML)")
    return candidate


def _refuse_moved(raw: dict, source: str) -> None:
    for (section, key), where in MOVED.items():
        table = raw.get(section)
        if isinstance(table, dict) and key in table:
            value = table[key]
            origin = f"override {value.arg}" if isinstance(value, CliValue) else source
            raise ConfigError(f"{origin}: {section}.{key} is no longer a run setting: the weight lives in {where}, "
                              f"which both the model's loss and the export read; delete {section}.{key} here and "
                              f"set it there")


def _build(raw: dict, source: str) -> RunConfig:
    _refuse_moved(raw, source)
    return from_table(RunConfig, raw, source=source)


def load_run_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Defaults ← the TOML file ← `--section.key=value` overrides, every value checked."""
    raw: dict = {}
    source = "run config"
    if path is not None:
        known = ", ".join(sorted(str(p) for p in CONFIG_DIR.glob("*.toml")))
        raw, _ = load_toml(path, what="run config", missing_hint=f"shipped run configs: {known}")
        source = str(path)
    cfg = _build(apply_overrides(raw, overrides or []), source)
    cfg.source = str(path) if path is not None else ""
    return cfg


def from_dict(d: dict) -> RunConfig:
    """The inverse of RunConfig.to_dict (a checkpoint's saved config)."""
    return _build(d, "saved run config")
