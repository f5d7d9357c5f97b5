"""An ablation grid: model variants trained on one run config, each sized to the control's active parameters.

    grid = load_grid("trainer/configs/ablations/cpu.toml", ["--train.phase1_tokens=1e6", "--model.d_model=256"])
    grid.variants["dense"].model        # its ModelConfig, widths sized so active params match the control
    grid.run_table(variant, seed, model_toml)   # the run config (a TOML table) of one (variant, seed)

The grid TOML has these tables:

    [grid]      name, run_config (a run TOML, e.g. trainer/configs/tiny.toml), seeds (>= 1; >= 3 for intervals),
                control (a variant name), active_tolerance (largest relative gap in active parameters to the
                control, default 0.01), confidence (of the intervals over seeds, default 0.95), jobs (runs at
                once, default 0 = the cores ÷ train.threads on CPU, 1 on CUDA)
    [run.<section>]   run-config keys over run_config's (the same for every variant and seed)
    [model]     model-config keys over the run config's model (every variant), e.g. d_model
    [variants.<name>] label, against (variant names compared with; default [control]) and the expert keys
                n_experts, top_k, attn_n_experts, attn_top_k, mlp_n_experts, mlp_top_k: a variant is the
                control (the model with the control's keys) with its own keys changed
    [quick]     the same tables (grid, run, model) applied over the rest when `--quick` is given

Sizing: a variant's widths are derived from the control, never typed: attention active parameters per token are
(2 + 2k)·n_kv_heads·head_dim·d_model for top-k attention experts (shared K/V plus k W_q/W_o), so a variant with
attention top-k' gets n_kv_heads·(1 + k)/(1 + k') heads; the MLP's are 3·k·ffn_hidden·d_model, so top-k' gets
ffn_hidden·k/k'. Only the routers (n_experts·d_model per layer) remain unequal; a variant whose active parameters
differ from the control's by more than active_tolerance, or whose widths do not come out whole, is an error.
Because widths follow the control, the same grid runs at any size: override `--model.d_model=...`.

Command-line overrides are `--section.key=value`: run-config sections (`--train.phase1_tokens=1e9`,
`--data.corpus=shards/big`), `--model.<model key>` (every variant), `--grid.<key>`, `--variants.<name>.<key>`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from jetmoe_core.config import (ConfigError, apply_overrides, did_you_mean, from_table, load_toml, merge_tables,
                                parse_override)
from trainer.config import RunConfig, resolve_model_config
from trainer.model import ModelConfig, count_params, flops_per_token, load_model_config

__all__ = ["Grid", "GridSection", "Variant", "VariantSpec", "load_grid", "EXPERT_KEYS"]

EXPERT_KEYS = ("n_experts", "top_k", "attn_n_experts", "attn_top_k", "mlp_n_experts", "mlp_top_k")
TABLES = ("grid", "run", "model", "variants", "quick")
RUN_SECTIONS = tuple(f.name for f in dataclasses.fields(RunConfig) if f.init and f.name != "source")
RUN_MODEL_KEYS = ("config", "backend")  # `--model.config` / `--model.backend` belong to the run config


@dataclass
class GridSection:
    name: str = ""
    """Names the output folder (runs/ablation/<name>) and the summary."""
    run_config: str = "trainer/configs/tiny.toml"
    """The run TOML every variant starts from (corpus, mixtures, tokens, optimizer, schedule)."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """Each seed sets train.seed (init) and data.seed (data order); every variant runs every seed."""
    control: str = ""
    """The variant every other one is sized against and, by default, compared with."""
    active_tolerance: float = 0.01
    """Largest relative difference of a variant's active parameters from the control's."""
    confidence: float = 0.95
    """Two-sided confidence of the Student-t interval over seeds."""
    jobs: int = 0
    """Runs trained at once, each in its own process; 0 = auto: on a CPU machine the usable cores divided by the
    run's train.threads, on a CUDA machine 1 (the runs would share one GPU). Results do not depend on it."""

    def __post_init__(self):
        if not self.name:
            raise ValueError("name is required (it names runs/ablation/<name>)")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ValueError(f"seeds = {self.seeds} must be distinct non-negative integers (>= 3 for intervals)")
        if not 0 <= self.active_tolerance < 1:
            raise ValueError(f"active_tolerance = {self.active_tolerance} must be in [0, 1)")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence = {self.confidence} must be in (0, 1)")
        if self.jobs < 0:
            raise ValueError(f"jobs = {self.jobs} must be >= 0 (0 = as many as the cores allow)")


@dataclass
class VariantSpec:
    label: str = ""
    """A human name for tables and plots (default: the variant's key)."""
    against: list[str] = field(default_factory=list)
    """Variants this one is compared with (default: the control)."""
    n_experts: int | None = None
    top_k: int | None = None
    attn_n_experts: int | None = None
    attn_top_k: int | None = None
    mlp_n_experts: int | None = None
    mlp_top_k: int | None = None


@dataclass(frozen=True)
class Variant:
    name: str
    label: str
    against: tuple[str, ...]
    model: ModelConfig
    total_params: int
    active_params: int
    flops_per_token: float

    @property
    def sparse_kinds(self) -> tuple[str, ...]:
        """The kinds ("attn", "mlp") that route over more than one expert."""
        return tuple(k for k in ("attn", "mlp") if self.model.experts(k)[0] > 1)


@dataclass
class Grid:
    path: Path
    section: GridSection
    run_raw: dict
    variants: dict[str, Variant]
    quick: bool = False
    run_threads: int = 0
    """train.threads of every run (0 = torch's default, all cores)."""

    @property
    def jobs(self) -> int:
        """[grid] jobs, or with 0 what this machine allows (see GridSection.jobs)."""
        if self.section.jobs:
            return self.section.jobs
        import os

        import torch

        if torch.cuda.is_available():
            return 1
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return max(1, cores // self.run_threads) if self.run_threads else 1

    @property
    def name(self) -> str:
        return self.section.name

    @property
    def control(self) -> Variant:
        return self.variants[self.section.control]

    def run_table(self, variant: Variant, seed: int, model_toml: Path) -> dict:
        """The run config of one (variant, seed) as a TOML table: the grid's, its model file and the seed."""
        raw = apply_overrides(self.run_raw, [])
        raw.setdefault("model", {})["config"] = str(model_toml)
        raw.setdefault("train", {})["seed"] = seed
        raw.setdefault("data", {})["seed"] = seed
        return raw


def _route(overrides: list[str]) -> list[str]:
    """Command-line overrides as grid-TOML paths: run-config sections go under run., model keys stay."""
    routed = []
    for arg in overrides:
        keys, _ = parse_override(arg)
        head = keys[0]
        if head in ("grid", "variants") or (head == "model" and keys[1] not in RUN_MODEL_KEYS):
            routed.append(arg)
        elif head in RUN_SECTIONS:
            routed.append("--run." + arg[2:])
        else:
            raise ConfigError(f"override {arg}: unknown section {head!r}{did_you_mean(head, TABLES + RUN_SECTIONS)}; "
                              f"use a run-config section ({', '.join(RUN_SECTIONS)}), model, grid or variants "
                              "(--quick applies the grid's [quick] tables)")
    return routed


def load_grid(path: str | Path, overrides: list[str] | None = None, quick: bool = False) -> Grid:
    """Read and check a grid TOML (see the module docstring); every error names the file or override and key."""
    path = Path(path)
    raw, _ = load_toml(path, what="ablation grid", missing_hint="shipped grids: trainer/configs/ablations/*.toml")
    unknown = sorted(set(raw) - set(TABLES))
    if unknown:
        raise ConfigError(f"{path}: unknown table [{unknown[0]}]{did_you_mean(unknown[0], TABLES)}; "
                          f"a grid has [{'], ['.join(TABLES)}]")
    quick_raw = raw.pop("quick", {})
    if quick:
        bad = sorted(set(quick_raw) - {"grid", "run", "model"})
        if bad:
            raise ConfigError(f"{path}: [quick.{bad[0]}] is not allowed; [quick] holds grid, run and model tables")
        raw = merge_tables(raw, quick_raw)
    raw = apply_overrides(raw, _route(list(overrides or [])))  # the command line wins over [quick] too
    section = from_table(GridSection, raw.get("grid", {}), source=path, where="grid")

    run_path = Path(section.run_config)
    run_file, _ = load_toml(run_path, what="run config", missing_hint=f"[grid] run_config in {path}")
    run_raw = merge_tables(run_file, raw.get("run", {}))
    run_cfg = from_table(RunConfig, run_raw, source=f"{path} ([run] over {run_path})")
    # the same keys, each value as the run config typed it (a command-line "4" becomes 4 in run.toml)
    run_raw = {sec: {k: getattr(getattr(run_cfg, sec), k) for k in tbl} if isinstance(tbl, dict) else tbl
               for sec, tbl in run_raw.items()}
    model_over = raw.get("model", {})
    base = load_model_config(resolve_model_config(run_cfg.model.config))
    try:
        base = from_table(ModelConfig, {**base.to_dict(), **model_over}, source=path, where="model")
    except ConfigError as e:
        raise ConfigError(f"{e} (the [model] table holds model-config keys; run keys go under [run.model])") from None

    specs = {name: from_table(VariantSpec, t, source=path, where=f"variants.{name}")
             for name, t in raw.get("variants", {}).items()}
    if section.control not in specs:
        raise ConfigError(f"{path}: [grid] control = {section.control!r} is not a variant; variants: {sorted(specs)}")
    for name, spec in specs.items():
        for other in spec.against:
            if other not in specs or other == name:
                raise ConfigError(f"{path}: [variants.{name}] against = {spec.against}: {other!r} is not another "
                                  f"variant{did_you_mean(other, specs)}; variants: {sorted(specs)}")
    control_model = _apply_experts(base, specs[section.control], path, section.control)
    variants = {name: _variant(name, spec, control_model, section, run_cfg.data.seq_len, path)
                for name, spec in specs.items()}
    return Grid(path, section, run_raw, variants, quick, run_cfg.train.threads)


def _apply_experts(base: ModelConfig, spec: VariantSpec, path: Path, name: str) -> ModelConfig:
    keys = {k: getattr(spec, k) for k in EXPERT_KEYS if getattr(spec, k) is not None}
    try:
        return base.replace(**keys)
    except ValueError as e:
        raise ConfigError(f"{path}: [variants.{name}]: {e}") from None


def _scaled(value: int, ratio: Fraction, what: str, path: Path, name: str) -> int:
    scaled = value * ratio
    if scaled.denominator != 1:
        raise ConfigError(f"{path}: [variants.{name}] needs {what} = {value} × {ratio} = {float(scaled):g} to match "
                          f"the control's active parameters, which is not whole; choose a control {what} divisible "
                          f"by {ratio.denominator} (e.g. --model.{what}={value * ratio.denominator})")
    return int(scaled)


def _variant(name: str, spec: VariantSpec, control: ModelConfig, section: GridSection,
             seq_len: int, path: Path) -> Variant:
    model = _apply_experts(control, spec, path, name)
    (_, ka_c), (_, km_c) = control.experts("attn"), control.experts("mlp")
    (_, ka), (_, km) = model.experts("attn"), model.experts("mlp")
    model = model.replace(n_kv_heads=_scaled(control.n_kv_heads, Fraction(1 + ka_c, 1 + ka), "n_kv_heads", path, name),
                          ffn_hidden=_scaled(control.ffn_hidden, Fraction(km_c, km), "ffn_hidden", path, name),
                          name=name)
    total, active = count_params(model)
    ref = count_params(control)[1]
    gap = abs(active - ref) / ref
    if gap > section.active_tolerance:
        raise ConfigError(f"{path}: [variants.{name}] has {active:,} active parameters, {gap:.2%} away from the "
                          f"control's {ref:,} (active_tolerance = {section.active_tolerance}); the routers "
                          f"(n_experts × d_model per layer) are the only part sizing cannot match: use fewer experts "
                          f"or raise active_tolerance")
    return Variant(name, spec.label or name, tuple(spec.against) or ((section.control,) if name != section.control
                                                                     else ()),
                   model, total, active, flops_per_token(model, seq_len))
