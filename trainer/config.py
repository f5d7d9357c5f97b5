"""Run configuration: TOML file → typed dataclasses, one section per component.

Precedence is CLI > file > defaults: `load_run_config(path, overrides=["--optim.lr=3e-4"])`.
Every key is checked: an unknown section or key, or a value of the wrong type, is an error that names the
file, the key and what is allowed, so a typo never silently falls back to a default.
"""
from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
MODEL_CONFIG_DIR = CONFIG_DIR / "model"
DECAY_SHAPES = ("exponential", "linear", "cosine")


class ConfigError(ValueError):
    """A run config that cannot be used; the message names the file/key and the fix."""


@dataclass
class ModelSection:
    config: str = "tiny"
    """Model config: a name in trainer/configs/model/ (e.g. "tiny", "jetmoe-8b") or a path to a TOML."""
    backend: str = ""
    """Expert-layer backend override ("" keeps the model config's choice; "torch" forces the reference)."""


@dataclass
class DataSection:
    corpus: str = "shards/sample"
    """Corpus folder (manifest.json + tokenizer.json + <source>/{train,val}/part-*.arrow)."""
    phase1_mixture: str = "mixtures/phase1.toml"
    """Mixture drawn in phase 1 (warmup + stable)."""
    phase2_mixture: str = "mixtures/phase2.toml"
    """Mixture drawn in phase 2 (decay); the loader is told to switch when phase 2 starts."""
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


@dataclass
class TrainSection:
    batch_tokens: int = 16384
    """Global batch in tokens per optimizer step (paper: 4M = 1024 × 4096)."""
    phase1_tokens: int = 2_000_000
    """Tokens trained in phase 1 (warmup + stable). Paper: 1T."""
    phase2_tokens: int = 500_000
    """Tokens trained in phase 2 (the decay). Paper: 250B."""
    aux_coef: float = 0.01
    """Weight of the load-balance loss (summed over all MoA and MoE routers). Paper: 0.01."""
    z_coef: float = 0.001
    """Weight of the router z-loss. Paper: 0.001."""
    precision: str = "auto"
    """"auto" = bf16 autocast on CUDA and fp32 on CPU; "fp32" or "bf16" to force."""
    seed: int = 0
    """Model-init and RNG seed."""
    threads: int = 0
    """torch CPU threads (0 = torch's default). Fix it to get the same bytes across machines."""


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
    fused: str = "auto"
    """"auto" = fused AdamW on CUDA, foreach elsewhere; "true"/"false" to force."""


@dataclass
class ScheduleSection:
    warmup_tokens: int = 200_000
    """Linear warmup length in tokens (paper: 10B)."""
    init_frac: float = 0.1
    """Warmup starts at init_frac × lr."""
    final_frac: float = 0.1
    """The decay ends at final_frac × lr (paper: 5e-5 = 0.1 × 5e-4)."""
    decay: str = "exponential"
    """Decay shape over phase 2: "exponential" (the model card), "linear" or "cosine"."""


@dataclass
class CheckpointSection:
    every_steps: int = 50
    """Write a checkpoint every N optimizer steps (and always at the end of a phase)."""
    keep_last: int = 3
    """Keep the newest K checkpoints (a phase's final checkpoint is kept as well)."""


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
    tensorboard: str = "auto"
    """"auto" = write TensorBoard events when tensorboard is installed; "true"/"false" to force."""
    progress: bool = True
    """Show the tqdm progress bar (on rank 0)."""


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
    flops_basis: str = "6n"
    """FLOPs per token for cost and MFU: "6n" = 6 × active params (the paper's convention, which its
    14% MFU uses) or "model" = the model's count including attention."""


@dataclass
class ParallelSection:
    fsdp: str = "auto"
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
    source: str = ""
    """Where the config came from (not a TOML key)."""

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("source", None)
        return d

    def model_config_path(self) -> Path:
        return resolve_model_config(self.model.config)

    def mixture_for(self, phase: int) -> str:
        return self.data.phase1_mixture if phase == 1 else self.data.phase2_mixture


SECTIONS = {f.name: f.type for f in dataclasses.fields(RunConfig) if f.name != "source"}


def _section_types() -> dict[str, type]:
    hints = typing.get_type_hints(RunConfig)
    return {name: hints[name] for name in SECTIONS}


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


def _coerce(value, typ, where: str):
    """Check a TOML value against a dataclass field type; ints are accepted for floats, and integral
    floats (1e12) for ints because token budgets read best in exponent form."""
    origin = typing.get_origin(typ)
    if typ is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if typ is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and math.isfinite(value) and value == int(value):
            return int(value)
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if typ is str:
        if isinstance(value, bool):  # --x.y=true parsed by TOML: keep the user's word for string fields
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return str(value)
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if origin in (list, types.GenericAlias):
        (item,) = typing.get_args(typ)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    raise ConfigError(f"{where}: unsupported field type {typ}")


def _apply(cfg: RunConfig, data: dict, origin: str) -> None:
    types_ = _section_types()
    for section, body in data.items():
        if section not in types_:
            raise ConfigError(f"{origin}: unknown section [{section}]; known sections: {sorted(types_)}")
        if not isinstance(body, dict):
            raise ConfigError(f"{origin}: [{section}] must be a table of key = value, got {body!r}")
        sec_obj = getattr(cfg, section)
        hints = typing.get_type_hints(type(sec_obj))
        for key, value in body.items():
            if key not in hints:
                raise ConfigError(f"{origin}: unknown key {section}.{key}; known keys of [{section}]: "
                                  f"{sorted(hints)}")
            setattr(sec_obj, key, _coerce(value, hints[key], f"{origin}: {section}.{key}"))


def parse_override(arg: str) -> tuple[str, str, object]:
    """`--section.key=value` → (section, key, value); the value is read as TOML (numbers, true/false,
    lists, quoted strings) and as a bare string when it is not valid TOML (paths, names)."""
    if not arg.startswith("--") or "=" not in arg or "." not in arg.split("=", 1)[0]:
        raise ConfigError(f"override {arg!r}: expected --section.key=value, e.g. --optim.lr=3e-4")
    lhs, raw = arg[2:].split("=", 1)
    section, key = lhs.split(".", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return section, key, value


def validate(cfg: RunConfig) -> None:
    """Cross-field checks that types alone cannot express."""
    where = cfg.source or "run config"
    d, t, o, s, c = cfg.data, cfg.train, cfg.optim, cfg.schedule, cfg.checkpoint
    for name, v in [("data.seq_len", d.seq_len), ("data.micro_batch", d.micro_batch),
                    ("train.batch_tokens", t.batch_tokens), ("train.phase1_tokens", t.phase1_tokens),
                    ("checkpoint.every_steps", c.every_steps), ("checkpoint.keep_last", c.keep_last),
                    ("log.every_steps", cfg.log.every_steps), ("log.val_every_steps", cfg.log.val_every_steps),
                    ("cost.gpus", cfg.cost.gpus)]:
        if v <= 0:
            raise ConfigError(f"{where}: {name} = {v} must be > 0")
    if t.phase2_tokens < 0 or s.warmup_tokens < 0:
        raise ConfigError(f"{where}: train.phase2_tokens and schedule.warmup_tokens must be >= 0")
    if t.batch_tokens % d.seq_len:
        raise ConfigError(f"{where}: train.batch_tokens = {t.batch_tokens} is not a multiple of data.seq_len = "
                          f"{d.seq_len}; use e.g. {max(1, t.batch_tokens // d.seq_len) * d.seq_len}")
    if s.warmup_tokens > t.phase1_tokens:
        raise ConfigError(f"{where}: schedule.warmup_tokens = {s.warmup_tokens} exceeds train.phase1_tokens = "
                          f"{t.phase1_tokens}; warmup happens inside phase 1")
    if s.decay not in DECAY_SHAPES:
        raise ConfigError(f"{where}: schedule.decay = {s.decay!r}; choose one of {list(DECAY_SHAPES)}")
    for name, v in [("schedule.init_frac", s.init_frac), ("schedule.final_frac", s.final_frac)]:
        if not 0 < v <= 1:
            raise ConfigError(f"{where}: {name} = {v} must be in (0, 1]")
    if o.lr <= 0 or o.weight_decay < 0 or o.grad_clip < 0 or not (0 <= o.beta1 < 1 and 0 <= o.beta2 < 1):
        raise ConfigError(f"{where}: optim needs lr > 0, weight_decay >= 0, grad_clip >= 0, 0 <= betas < 1")
    for name, v, allowed in [("optim.fused", o.fused, ("auto", "true", "false")),
                             ("train.precision", t.precision, ("auto", "fp32", "bf16")),
                             ("log.tensorboard", cfg.log.tensorboard, ("auto", "true", "false")),
                             ("parallel.fsdp", cfg.parallel.fsdp, ("auto", "true", "false")),
                             ("cost.flops_basis", cfg.cost.flops_basis, ("6n", "model"))]:
        if v not in allowed:
            raise ConfigError(f"{where}: {name} = {v!r}; choose one of {list(allowed)}")
    if not 0 < cfg.cost.mfu <= 1 or cfg.cost.peak_tflops <= 0 or cfg.cost.usd_per_gpu_hour < 0:
        raise ConfigError(f"{where}: cost needs 0 < mfu <= 1, peak_tflops > 0, usd_per_gpu_hour >= 0")


def load_run_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Defaults ← the TOML file ← `--section.key=value` overrides, then validated."""
    cfg = RunConfig()
    if path is not None:
        path = Path(path)
        if not path.exists():
            known = sorted(str(p) for p in CONFIG_DIR.glob("*.toml"))
            raise ConfigError(f"run config {path} not found; shipped run configs: {known}")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from None
        _apply(cfg, data, str(path))
        cfg.source = str(path)
    for arg in overrides or []:
        section, key, value = parse_override(arg)
        _apply(cfg, {section: {key: value}}, f"override {arg}")
    validate(cfg)
    return cfg


def from_dict(d: dict) -> RunConfig:
    """The inverse of RunConfig.to_dict (a checkpoint's saved config)."""
    cfg = RunConfig()
    _apply(cfg, d, "saved run config")
    validate(cfg)
    return cfg
