"""Corpus config: the TOML file that declares one corpus build (sources, DAG, executor, stage options).

    from pipeline.config import load_config
    cfg = load_config("pipeline/configs/sample.toml")
    cfg = load_config("pipeline/configs/sample.toml", overrides=["--executor.workers=8"])

Layout of the file (every table is optional except ``[corpus]``; unknown tables and keys are errors that
name the key and list the known ones)::

    [corpus]        name, work_dir, shards_dir, sources ("all": every pretraining source; or a list), stages
                    (the DAG, by stage name), seed. A corpus holds pretraining sources or alignment (sft/dpo)
                    sources, not both.
    [executor]      kind = "local" | "slurm" | "ray", workers; [executor.slurm], [executor.ray]
    [download]      mirror_root (a local folder laid out like the hub) or the hub; retries, max_workers
    [format]        tasks per source
    [sources.<name>]  per-source overrides: tasks, stream, revision, allow_patterns, repo_id; or, under a new
                    name, a source of your own: path or repo_id, format, text_field or chat_field, family, ...
                    (``pipeline.sources.user``)
    [chat_template] how chat records become text (``pipeline.sources.chat.ChatTemplate``)
    [<section>]     the table of any registered stage (``Stage.section``), parsed into its ``Options``

Every table is typed by ``jetmoe_core.config`` (the loader the trainer uses too), so the rules are the same
everywhere: wrong types, unknown keys and failed checks are a ``ConfigError`` naming the key when the file is
read. Stage tables are parsed generically from the stage's ``Options`` dataclass, so a new stage gets a
validated config table by declaring ``section`` and ``Options``; nothing here needs to change.

``--section.key=value`` overrides (``python -m pipeline build <config> --executor.kind=slurm``) are applied
to the file's table before it is typed, so they obey the same rules. Whether finished work still holds is
decided by each unit's fingerprint of the *typed* values it depends on: an override that changes outputs
(``--dedup.minhash=false``) reruns what depends on it, one that does not (``--executor.workers=8``) reruns
nothing. ``CorpusConfig.sha256`` (the manifest's ``config_sha256``) is the file's sha256 (with ``extends``, of
the chain of files: ``jetmoe_core.config.load_toml_extending``); the manifest lists
the overrides beside it (``config_overrides``), so it tells which exact settings made the corpus.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

from jetmoe_core.config import (ConfigError, apply_overrides, did_you_mean, fingerprint, from_table,
                                load_toml_extending)

__all__ = ["ConfigError", "CorpusConfig", "CorpusOptions", "ExecutorOptions", "SlurmOptions", "RayOptions",
           "SourceOverride", "load_config", "parse_config", "from_table", "fingerprint"]

#: tables this module parses itself; stage sections come from the stage registry
CORE_TABLES = ("corpus", "executor", "sources", "chat_template")


# ---------------------------------------------------------------------------------------------- schema
@dataclass
class SlurmOptions:
    partition: str | None = None
    """Slurm partition the array jobs go to; None: the cluster's default partition (sbatch without
    --partition). Set it in the file or on the command line: --executor.slurm.partition=<name> (`sinfo -s`)."""
    time: str = "12:00:00"
    """Wall-clock limit per array task (sbatch --time)."""
    cpus_per_task: int = 1
    mem_per_cpu_gb: float = 2
    qos: str | None = None
    """Slurm QOS; None: the account's default (no --qos)."""
    venv_path: str | None = ".venv/bin/activate"
    """Sourced at the start of every job so the nodes run this project's environment."""
    env_command: str | None = None
    """Replaces the venv activation, e.g. "module load python; source env/bin/activate"."""
    max_array_size: int = 1001
    """The cluster's MaxArraySize; larger jobs are split into several arrays."""
    sbatch_args: dict[str, str] = field(default_factory=dict)
    """Extra #SBATCH directives, e.g. {account = "myproj"}."""
    logs_dir: str | None = None
    """Where Slurm writes its .out files; default: <work_dir>/_slurm_logs/<job>."""

    def validate(self) -> None:
        for key in ("partition", "qos"):
            if getattr(self, key) == "":
                raise ValueError(f"{key} is empty: name one (`sinfo -s` lists the partitions), or leave the key out "
                                 f"for the cluster's default")
        if not re.fullmatch(r"\d+(-\d{1,2}(:\d{2}){0,2}|(:\d{2}){0,2})", self.time):
            raise ValueError(f"time = {self.time!r} is not a Slurm time limit: write minutes, \"HH:MM:SS\" or "
                             f"\"D-HH:MM:SS\", e.g. \"12:00:00\"")
        _at_least("cpus_per_task", self.cpus_per_task, 1)
        _at_least("max_array_size", self.max_array_size, 1)
        _positive("mem_per_cpu_gb", self.mem_per_cpu_gb)


@dataclass
class RayOptions:
    address: str | None = None
    """None: start a local Ray instance with ``num_cpus``; "auto" or "ray://host:port": join a cluster."""
    num_cpus: int | None = None
    """CPUs of the local instance (ignored when joining a cluster)."""
    cpus_per_task: int = 1
    mem_per_cpu_gb: float = 1

    def validate(self) -> None:
        if self.num_cpus is not None:
            _at_least("num_cpus", self.num_cpus, 1)
        _at_least("cpus_per_task", self.cpus_per_task, 1)
        _positive("mem_per_cpu_gb", self.mem_per_cpu_gb)


@dataclass
class ExecutorOptions:
    kind: Literal["local", "slurm", "ray"] = "local"
    """"local" (datatrove's LocalPipelineExecutor), "slurm" or "ray"."""
    workers: int = 2
    """Tasks run at the same time per job (local: processes; Slurm: array throttle %N; Ray: concurrent tasks)."""
    start_method: Literal["fork", "forkserver", "spawn"] = "fork" if sys.platform == "linux" else "spawn"
    """Local executor's process start method. datatrove defaults to "forkserver", which re-imports the
    stack in every pool (about 2 s per job, most of a small build); "fork" starts in a tenth of that."""
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    ray: RayOptions = field(default_factory=RayOptions)

    def validate(self) -> None:
        _at_least("workers", self.workers, 1)


@dataclass
class SourceOverride:
    tasks: int | None = None
    """Tasks (ranks) of the source's format and later per-source jobs; default [format] tasks."""
    stream: bool = False
    """Read straight from hf://datasets/<repo>@<rev>/ through HfFileSystem instead of downloading."""
    revision: str | None = None
    """Hub branch, tag or commit; default the source's pinned revision."""
    allow_patterns: list[str] | None = None
    """Which files of the repo to take (fnmatch patterns); default the source's own."""
    repo_id: str | None = None
    """Read another repo laid out the same way (e.g. a mirror of The Pile)."""

    def validate(self) -> None:
        if self.tasks is not None:
            _at_least("tasks", self.tasks, 1)
        if self.allow_patterns is not None and (not self.allow_patterns or not all(self.allow_patterns)):
            raise ValueError(f"allow_patterns = {self.allow_patterns!r}: give at least one non-empty pattern, "
                             f"e.g. [\"data/*.parquet\"], or leave the key out for the source's own")
        for key in ("revision", "repo_id"):
            if getattr(self, key) == "":
                raise ValueError(f"{key} is empty: give one, or leave the key out for the source's own")


@dataclass
class CorpusOptions:
    name: str = ""
    work_dir: str | None = None
    """Intermediate outputs; default work/<name>."""
    shards_dir: str | None = None
    """Final shards + manifest; default shards/<name>."""
    sources: list[str] | str = "all"
    stages: list[str] = field(default_factory=lambda: ["download", "format"])
    """The DAG, by registered stage name; order among independent stages follows this list."""
    seed: int = 0

    def validate(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"name must be a non-empty word (letters, digits, _ or -), got {self.name!r}")


@dataclass
class CorpusConfig:
    path: Path
    sha256: str
    corpus: CorpusOptions
    executor: ExecutorOptions
    sources: list[str]
    overrides: dict[str, SourceOverride]
    """[sources.<name>] tables."""
    chat_template: dict[str, Any]
    options: dict[str, Any]
    """section name → the stage's parsed Options (includes "download" and "format")."""
    raw: dict[str, Any]
    cli_overrides: list[str] = field(default_factory=list)
    """The ``--section.key=value`` overrides applied to the file, as typed."""
    user_specs: dict[str, Any] = field(default_factory=dict)
    """Sources of your own (``[sources.<name>]`` with a path or repo_id and a format): name → SourceSpec."""

    @property
    def name(self) -> str:
        return self.corpus.name

    @property
    def work_dir(self) -> Path:
        return Path(self.corpus.work_dir or f"work/{self.corpus.name}")

    @property
    def shards_dir(self) -> Path:
        return Path(self.corpus.shards_dir or f"shards/{self.corpus.name}")

    def override(self, source: str) -> SourceOverride:
        return self.overrides.get(source) or SourceOverride()


def _at_least(key: str, value: int, low: int) -> None:
    if value < low:
        raise ValueError(f"{key} must be >= {low}, got {value}")


def _positive(key: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{key} must be > 0, got {value}")


# ---------------------------------------------------------------------------------------------- parsing
def load_config(path: str | Path, *, registry: dict[str, Any] | None = None,
                overrides: Iterable[str] = ()) -> CorpusConfig:
    """Read and validate a corpus config, with ``--section.key=value`` overrides applied first.

    ``registry`` (name → SourceSpec) replaces ``pipeline.sources`` (tests use tiny fake sources).
    """
    overrides = list(overrides)
    raw, sha = load_toml_extending(path, what="corpus config",
                                   missing_hint="the shipped ones are in pipeline/configs/")
    raw = apply_overrides(raw, overrides)
    return parse_config(raw, path=path, sha256=sha, registry=registry, cli_overrides=overrides)


def parse_config(raw: dict[str, Any], *, path: Path | str = "<config>", sha256: str = "",
                 registry: dict[str, Any] | None = None, cli_overrides: list[str] | None = None) -> CorpusConfig:
    import pipeline.stages  # noqa: F401  (registers every stage, so their sections are known)
    from pipeline.stages.base import STAGES

    path = Path(path)
    sections = {cls.section: cls for cls in STAGES.values() if cls.section}
    known_tables = list(CORE_TABLES) + sorted(sections)
    for key in raw:
        if key not in known_tables:
            arg = next((o for o in cli_overrides or [] if o.startswith(f"--{key}.")), None)
            raise ConfigError(f"{f'override {arg}: ' if arg else ''}{path}: unknown table {key!r}"
                              f"{did_you_mean(key, known_tables)} (known: {', '.join(known_tables)})")

    if "corpus" not in raw:
        raise ConfigError(f"{path}: missing [corpus] table (at least: name = \"...\")")
    corpus = from_table(CorpusOptions, raw["corpus"], source=path, where="corpus")
    executor = from_table(ExecutorOptions, raw.get("executor", {}), source=path, where="executor")

    # stages: every name registered, each one's dependencies listed too
    for name in corpus.stages:
        if name not in STAGES:
            raise ConfigError(f"{path}: [corpus] stages names {name!r}, which is not a registered stage; "
                              f"registered: {', '.join(sorted(STAGES))}")
    if len(set(corpus.stages)) != len(corpus.stages):
        raise ConfigError(f"{path}: [corpus] stages lists a stage twice: {corpus.stages}")
    for name in corpus.stages:
        for dep in STAGES[name].after:
            if dep not in corpus.stages:
                raise ConfigError(f"{path}: stage {name!r} runs after {dep!r}, which [corpus] stages does not "
                                  f"list; add {dep!r} to stages")

    recipe = list(registry) if registry is not None else _catalog()
    src_table = raw.get("sources", {})
    if not isinstance(src_table, dict):
        raise ConfigError(f"{path}: [sources] must be a table of [sources.<name>] tables")
    user_specs = _user_sources(src_table, recipe, path)
    known = _pretrain_sources(registry) + list(user_specs)
    if corpus.sources == "all":
        sources = list(known)
    elif isinstance(corpus.sources, list):
        sources = list(corpus.sources)
        for name in sources:
            _check_source(name, path, registry, user=user_specs)
        if len(set(sources)) != len(sources):
            raise ConfigError(f"{path}: [corpus] sources lists a source twice")
    else:
        raise ConfigError(f"{path}: [corpus] sources must be \"all\" or a list of source names")
    if not sources:
        raise ConfigError(f"{path}: [corpus] sources is empty")
    _check_kinds(sources, path, registry, user_specs)

    # a table of a source this build does not select is checked and left unused, so one config (jetmoe.toml)
    # builds any subset of its sources: --corpus.sources='["refinedweb", "starcoder"]'
    overrides: dict[str, Any] = {}
    for name, table in src_table.items():
        _check_source(name, path, registry, where=f"[sources.{name}]", user=user_specs)
        overrides[name] = user_specs[name].options if name in user_specs else \
            from_table(SourceOverride, table, source=path, where=f"sources.{name}")

    chat_template = _chat_template(raw.get("chat_template", {}), path)

    options: dict[str, Any] = {}
    for section, cls in sections.items():
        if cls.Options is not None:
            options[section] = from_table(cls.Options, raw.get(section, {}), source=path, where=section)
    _check_source_keyed(options, path, [*_catalog(), *(registry or ()), *user_specs])
    # a stage that reads another stage's documents (input_stage) needs that stage in the DAG
    for section, opts in options.items():
        stage = getattr(opts, "input_stage", None)
        users = [n for n in corpus.stages if STAGES[n].section == section]
        if stage is not None and users and stage not in corpus.stages:
            raise ConfigError(f"{path}: [{section}] input_stage = {stage!r} is not one of [corpus] stages "
                              f"({', '.join(corpus.stages)}){did_you_mean(stage, corpus.stages)}")

    return CorpusConfig(path=path, sha256=sha256, corpus=corpus, executor=executor, sources=sources,
                        overrides=overrides, chat_template=chat_template, options=options, raw=raw,
                        cli_overrides=list(cli_overrides or []), user_specs=user_specs)


def _user_sources(src_table: dict, recipe: list[str], path: Path) -> dict[str, Any]:
    """The ``[sources.<name>]`` tables that declare data of your own (``pipeline.sources.user``), as specs."""
    from pipeline.sources.user import USER_KEYS, UserSource, user_spec

    out: dict[str, Any] = {}
    for name, table in src_table.items():
        if not isinstance(table, dict) or not any(k in table for k in USER_KEYS):
            continue
        if name in recipe:
            raise ConfigError(f"{path}: [sources.{name}] names a recipe source, whose table only overrides tasks, "
                              f"stream, revision, allow_patterns and repo_id; for data of your own "
                              f"({', '.join(k for k in USER_KEYS if k in table)}) pick a new name, e.g. "
                              f"[sources.my_{name}]")
        opts = from_table(UserSource, table, source=path, where=f"sources.{name}")
        try:
            out[name] = user_spec(name, opts)
        except ValueError as e:
            raise ConfigError(f"{path}: [sources.{name}] {e}") from None
    return out


def _check_source_keyed(options: dict[str, Any], path: Path, known: list[str]) -> None:
    """The tables of stage options keyed by source (``Options.SOURCE_KEYED``: [filters.policy],
    [dedup.policy], ...) name sources of the catalog or of this config's own ``[sources.<name>]``."""
    known = list(dict.fromkeys(known))
    for section, opts in options.items():
        for attr in getattr(opts, "SOURCE_KEYED", ()):
            unknown = sorted(set(getattr(opts, attr)) - set(known))
            if unknown:
                raise ConfigError(f"{path}: [{section}.{attr}] names unknown source(s) {unknown}"
                                  f"{did_you_mean(unknown[0], known)}; known: {', '.join(known)}{OWN_DATA_HINT}")


def _chat_template(table: Any, path: Path) -> dict[str, Any]:
    """The [chat_template] table as given (its keys only, so the fingerprint of a config without one stays
    that of an empty table), each value typed and checked against ``ChatTemplate``."""
    from pipeline.sources.chat import ChatTemplate

    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [chat_template] must be a table")
    typed = from_table(ChatTemplate, table, source=path, where="chat_template")
    return {k: getattr(typed, k) for k in table}


def _kind(name: str, registry: dict[str, Any] | None) -> str:
    if registry is None:
        from pipeline.sources import get_source

        return get_source(name).kind
    return getattr(registry[name], "kind", "pretrain")


def _pretrain_sources(registry: dict[str, Any] | None) -> list[str]:
    """What ``sources = "all"`` selects: every pretraining source (the alignment sets are listed by name)."""
    if registry is None:
        from pipeline.sources import sources_of_kind

        return sources_of_kind("pretrain")
    return [n for n in registry if _kind(n, registry) == "pretrain"]


def _check_kinds(sources: list[str], path: Path, registry: dict[str, Any] | None,
                 user: dict[str, Any] | None = None) -> None:
    """A corpus is pretraining text or alignment data (SFT and DPO sets), never both: the two are read by
    different loaders, and the pretraining loader refuses a corpus holding any other kind."""
    user = user or {}
    kinds = {n: user[n].kind if n in user else _kind(n, registry) for n in sources}
    pre = [n for n, k in kinds.items() if k == "pretrain"]
    other = [n for n, k in kinds.items() if k != "pretrain"]
    if pre and other:
        raise ConfigError(f"{path}: [corpus] sources mixes pretraining sources ({', '.join(pre[:3])}"
                          f"{', ...' if len(pre) > 3 else ''}) with alignment sources "
                          f"({', '.join(f'{n} ({kinds[n]})' for n in other)}); build them as two corpora, as "
                          f"pipeline/configs/sample.toml and pipeline/configs/chat_sample.toml do")


#: how to add a source of your own, appended to an unknown source's error
OWN_DATA_HINT = ("; for data of your own, declare it: [sources.<name>] with path (a local folder) or repo_id, "
                 "format and text_field (docs/sources.md, \"Your own data\")")


def _catalog() -> list[str]:
    from pipeline.sources import SOURCES

    return list(SOURCES)


def _check_source(name: str, path: Path, registry: dict[str, Any] | None, where: str = "[corpus] sources",
                  user: dict[str, Any] | None = None) -> None:
    recipe = list(registry) if registry is not None else _catalog()
    user = user or {}
    if name in recipe or name in user:
        return
    raise ConfigError(f"{path}: {where}: unknown source {name!r}{did_you_mean(name, [*recipe, *user])}; known "
                      f"sources: {', '.join(recipe)}" + (f"; yours: {', '.join(user)}" if user else "")
                      + OWN_DATA_HINT)
