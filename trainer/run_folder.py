"""A run folder keeps its config: `<run>/run_config.toml`, the resolved run config from the run's first start on.

    cfg, saved = resolve_run_config("trainer/configs/tiny.toml", ["--optim.lr=1e-3"], Path("runs/x"), phase=1)
    for note in saved.notes: print(note)
    ...checks pass, the run folder takes writes...
    saved.write(run_dir, cfg)        # rank 0: atomic; a no-op when nothing new is to be saved
    read_saved_config(run_dir)       # (the run's config as a dict, the [run] table) or None: export, report

The file holds every section (model, data, train, optim, schedule, checkpoint, log, cost, parallel), fully
resolved, and a `[run]` table naming the config file the run started from and the command-line overrides it
was given. It is written atomically (`jetmoe_core.io`) when a run first starts, and read by every later
command on the folder: phase 2, a resume, `trainer export` and `trainer report`. Rules:

* No saved config yet (a new run, or a folder from before this file existed): the config is the file named on
  the command line with its overrides, as always; it is saved once the run's checks pass. `--restart` (phase 1
  starts over) takes the file named on the command line, or without one the saved config, with the overrides
  on top, and saves the result.
* A saved config: it is the run's config. The config file on the command line may be left out; if one is
  named, it must agree with the saved config on the keys that define the run (`DEFINING`, `PHASE2_KEYS`),
  except those the run's start overrode. An override must agree on the keys that define the run; the phase-2
  keys (`PHASE2_KEYS`) may change until phase 2 has started (the change is saved; the checkpoints refuse it
  afterwards). Any other key (logging, checkpoint cadence, loader workers, verification, ...) given on the
  command line applies to that command only. A disagreement is a ConfigError naming the key, both values and
  the ways to go on.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from jetmoe_core.config import ConfigError, apply_overrides, dump_toml, parse_override
from jetmoe_core.io import IOFault, write_text_atomic
from trainer.config import RunConfig, from_dict, load_run_config

SAVED = "run_config.toml"
#: keys that define a run: changing one in the middle would silently make it another run
DEFINING = [("model", "config"), ("data", "corpus"), ("data", "seq_len"), ("data", "seed"),
            ("data", "phase1_mixture"), ("data", "renormalise"), ("train", "batch_tokens"),
            ("train", "phase1_tokens"), ("train", "seed"), ("schedule", "warmup_tokens"), ("schedule", "init_frac"),
            ("optim", "lr")]
#: keys that define phase 2 only: free until phase 2 starts, fixed from then on
PHASE2_KEYS = [("train", "phase2_tokens"), ("data", "phase2_mixture"), ("schedule", "decay"),
               ("schedule", "final_frac")]


@dataclass
class Saved:
    """What `resolve_run_config` found in the run folder and what is left to save."""

    table: dict | None = None
    """The run's saved config (sections only), or None when the folder has none yet."""
    origin: dict = field(default_factory=dict)
    """The saved [run] table: config (the file the run started from) and overrides (as typed)."""
    pending: dict | None = None
    """The [run] table to write with the config, or None when the saved file is up to date."""
    notes: list[str] = field(default_factory=list)

    def write(self, run_dir: Path, cfg: RunConfig) -> Path | None:
        """Save `cfg` as the run's config (atomically) if anything is new; returns the path written."""
        if self.pending is None:
            return None
        path = Path(run_dir) / SAVED
        header = (f"The run config of {run_dir}, saved at its first start (trainer/run_folder.py). Phase 2, a resume,\n"
                  f"`trainer export` and `trainer report` read it; a command-line value that differs from it on a key\n"
                  f"that defines the run is refused. Written by the trainer: do not edit.")
        try:
            write_text_atomic(path, dump_toml({"run": self.pending, **cfg.to_dict()}, header))
        except OSError as e:
            raise IOFault.from_os_error(e, "saving the run config", e.filename or path) from None
        self.pending = None
        return path


def read_saved_config(run_dir: str | Path) -> tuple[dict, dict] | None:
    """`(sections, [run] table)` of `<run_dir>/run_config.toml`, or None when there is none."""
    path = Path(run_dir) / SAVED
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise IOFault.from_os_error(e, "reading the saved run config", path) from None
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e}); the trainer writes this file at the run's first start: "
                          f"restore it, or delete it to take the config from the command line again") from None
    origin = table.pop("run", {})
    return table, origin if isinstance(origin, dict) else {}


def _keys_of(overrides: list[str]) -> dict[tuple[str, ...], str]:
    return {tuple(parse_override(o)[0]): o for o in overrides}


def resolve_run_config(config: str | Path | None, overrides: list[str], run_dir: Path, phase: int,
                       restart: bool = False) -> tuple[RunConfig, Saved]:
    """The config this command runs with, and what to save (see the module docstring for the rules)."""
    run_dir = Path(run_dir)
    found = read_saved_config(run_dir)
    if found is None or (restart and config is not None):
        if config is None:
            raise ConfigError(f"{run_dir} has no saved run config ({SAVED}): it is not a run started yet; name a "
                              f"run config to start one, e.g. python -m trainer train trainer/configs/tiny.toml "
                              f"--phase 1 --run-dir {run_dir}")
        cfg = load_run_config(config, overrides)
        return cfg, Saved(pending={"config": str(config), "overrides": list(overrides)})
    if restart:  # start over from the saved config, this command's overrides on top
        table, origin = found
        cfg = from_dict(apply_overrides(table, overrides))
        cfg.source = str(origin.get("config", run_dir / SAVED))
        return cfg, Saved(pending={"config": cfg.source,
                                   "overrides": [*origin.get("overrides", []), *overrides]})

    table, origin = found
    where = run_dir / SAVED
    try:
        saved = from_dict(table)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    started = _keys_of([str(o) for o in origin.get("overrides", [])])
    first = origin.get("config", "the run's first start")
    cfg = from_dict(apply_overrides(table, overrides))  # the saved config + this command's overrides
    cfg.source = str(first)
    now, before = cfg.to_dict(), saved.to_dict()

    def came_from(sec: str, key: str) -> str:
        return started.get((sec, key), first)

    def conflict(what: str, sec: str, key: str, value, how: str) -> ConfigError:
        return ConfigError(
            f"{what} conflicts with the run's saved config: {sec}.{key} = {before[sec][key]!r} in {where} (from "
            f"{came_from(sec, key)} at the run's start), {value!r} asked now. {sec}.{key} defines the run and "
            f"cannot change in its middle: {how}, start this run over with the new value (--phase 1 --restart: "
            f"its checkpoints and logs move to {run_dir}/previous-N/), or train a new run with another --run-dir")

    given = _keys_of(overrides)
    for sec, key in DEFINING:
        arg = given.get((sec, key))
        if arg is not None and now[sec][key] != before[sec][key]:
            raise conflict(f"override {arg}", sec, key, now[sec][key],
                           f"leave the override out to continue with {before[sec][key]!r}")
    pending = None
    changed = [(s, k) for s, k in PHASE2_KEYS if now[s][k] != before[s][k]]
    if changed:  # until phase 2 starts; build_resume refuses it against a phase-2 checkpoint
        pending = {"config": first, "overrides": [*origin.get("overrides", []),
                                                  *(given[sk] for sk in changed if sk in given)]}
    notes = []
    if config is not None:
        file_cfg = load_run_config(config).to_dict()
        for sec, key in DEFINING + PHASE2_KEYS:
            if (sec, key) in started or (sec, key) in given:
                continue
            if file_cfg[sec][key] != before[sec][key]:
                raise conflict(f"the config file {config}", sec, key, file_cfg[sec][key],
                               f"leave the config file out to continue the run as saved (python -m trainer train "
                               f"--phase {phase} --run-dir {run_dir}; `make phase{phase} RUN_DIR={run_dir}` without "
                               f"MODEL=)")
        ignored = [f"{s}.{k} ({file_cfg[s][k]!r} there, {before[s][k]!r} saved)" for s in file_cfg
                   for k in file_cfg[s] if (s, k) not in given and file_cfg[s][k] != before[s][k]
                   and (s, k) not in started]
        if ignored:
            notes.append(f"note: {config} differs from the run's saved config {where} in {', '.join(ignored)}: the "
                         f"saved values are used; an override (--section.key=value) changes one for this command")
    return cfg, Saved(table=table, origin=origin, pending=pending, notes=notes)
