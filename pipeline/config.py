"""Corpus config: the TOML file that declares one corpus build (sources, DAG, executor, stage options).

    from pipeline.config import load_config
    cfg = load_config("pipeline/configs/sample.toml")

Layout of the file (every table is optional except ``[corpus]``; unknown tables and keys are errors that
name the key and list the known ones)::

    [corpus]        name, work_dir, shards_dir, sources ("all" or a list), stages (the DAG, by stage name), seed
    [executor]      kind = "local" | "slurm" | "ray", workers; [executor.slurm], [executor.ray]
    [download]      mirror_root (a local folder laid out like the hub) or the hub; retries, max_workers
    [format]        tasks per source
    [sources.<name>]  per-source overrides: tasks, stream, revision, allow_patterns, repo_id
    [chat_template] how chat records become text (read by ``pipeline.sources.chat.ChatTemplate``)
    [<section>]     the table of any registered stage (``Stage.section``), parsed into its ``Options``

Stage tables are parsed generically from the stage's ``Options`` dataclass, so a new stage gets a
validated config table by declaring ``section`` and ``Options``; nothing here needs to change.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import sys
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: tables this module parses itself; stage sections come from the stage registry
CORE_TABLES = ("corpus", "executor", "sources", "chat_template")


class ConfigError(ValueError):
    """The corpus config is wrong; the message names the file, the key and the fix."""


# ---------------------------------------------------------------------------------------------- schema
@dataclass
class SlurmOptions:
    partition: str = "cpu"
    """Slurm partition the array jobs go to."""
    time: str = "12:00:00"
    """Wall-clock limit per array task (sbatch --time)."""
    cpus_per_task: int = 1
    mem_per_cpu_gb: float = 2
    qos: str = "normal"
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


@dataclass
class RayOptions:
    address: str | None = None
    """None: start a local Ray instance with ``num_cpus``; "auto" or "ray://host:port": join a cluster."""
    num_cpus: int | None = None
    """CPUs of the local instance (ignored when joining a cluster)."""
    cpus_per_task: int = 1
    mem_per_cpu_gb: float = 1


@dataclass
class ExecutorOptions:
    kind: str = "local"
    """"local" (datatrove's LocalPipelineExecutor), "slurm" or "ray"."""
    workers: int = 2
    """Tasks run at the same time per job (local: processes; Slurm: array throttle %N; Ray: concurrent tasks)."""
    start_method: str = "fork" if sys.platform == "linux" else "spawn"
    """Local executor's process start method. datatrove defaults to "forkserver", which re-imports the
    stack in every pool (about 2 s per job, most of a small build); "fork" starts in a tenth of that."""
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    ray: RayOptions = field(default_factory=RayOptions)


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


@dataclass
class CorpusConfig:
    path: Path
    sha256: str
    corpus: CorpusOptions
    executor: ExecutorOptions
    sources: list[str]
    overrides: dict[str, SourceOverride]
    chat_template: dict[str, Any]
    options: dict[str, Any]
    """section name → the stage's parsed Options (includes "download" and "format")."""
    raw: dict[str, Any]

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


# ---------------------------------------------------------------------------------------------- parsing
def load_config(path: str | Path, *, registry: dict[str, Any] | None = None) -> CorpusConfig:
    """Read and validate a corpus config.

    ``registry`` (name → SourceSpec) replaces ``pipeline.sources`` (tests use tiny fake sources).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such corpus config; the shipped ones are in pipeline/configs/") from None
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return parse_config(raw, path=path, sha256=hashlib.sha256(data).hexdigest(), registry=registry)


def parse_config(raw: dict[str, Any], *, path: Path | str = "<config>", sha256: str = "",
                 registry: dict[str, Any] | None = None) -> CorpusConfig:
    import pipeline.stages  # noqa: F401  (registers every stage, so their sections are known)
    from pipeline.stages.base import STAGES

    path = Path(path)
    sections = {cls.section: cls for cls in STAGES.values() if cls.section}
    known_tables = list(CORE_TABLES) + sorted(sections)
    for key in raw:
        if key not in known_tables:
            raise ConfigError(_unknown(path, "", key, known_tables, what="table"))

    if "corpus" not in raw:
        raise ConfigError(f"{path}: missing [corpus] table (at least: name = \"...\")")
    corpus = from_table(CorpusOptions, raw["corpus"], path, "corpus")
    if not corpus.name or not corpus.name.replace("_", "").replace("-", "").isalnum():
        raise ConfigError(f"{path}: [corpus] name must be a non-empty word (letters, digits, _ or -), "
                          f"got {corpus.name!r}")
    executor = from_table(ExecutorOptions, raw.get("executor", {}), path, "executor")
    if executor.kind not in ("local", "slurm", "ray"):
        raise ConfigError(f"{path}: [executor] kind = {executor.kind!r} is not one of \"local\", \"slurm\", \"ray\"")
    if executor.start_method not in ("fork", "forkserver", "spawn"):
        raise ConfigError(f"{path}: [executor] start_method = {executor.start_method!r} is not one of "
                          f"\"fork\", \"forkserver\", \"spawn\"")
    if executor.workers < 1:
        raise ConfigError(f"{path}: [executor] workers must be >= 1, got {executor.workers}")

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

    known = list(registry) if registry is not None else _known_sources()
    if corpus.sources == "all":
        sources = list(known)
    elif isinstance(corpus.sources, list):
        sources = list(corpus.sources)
        for name in sources:
            _check_source(name, path, registry)
        if len(set(sources)) != len(sources):
            raise ConfigError(f"{path}: [corpus] sources lists a source twice")
    else:
        raise ConfigError(f"{path}: [corpus] sources must be \"all\" or a list of source names")
    if not sources:
        raise ConfigError(f"{path}: [corpus] sources is empty")

    overrides: dict[str, SourceOverride] = {}
    src_table = raw.get("sources", {})
    if not isinstance(src_table, dict):
        raise ConfigError(f"{path}: [sources] must be a table of [sources.<name>] tables")
    for name, table in src_table.items():
        _check_source(name, path, registry, where=f"[sources.{name}]")
        if name not in sources:
            raise ConfigError(f"{path}: [sources.{name}] configures a source that [corpus] sources does not select")
        overrides[name] = from_table(SourceOverride, table, path, f"sources.{name}")
        if overrides[name].tasks is not None and overrides[name].tasks < 1:
            raise ConfigError(f"{path}: [sources.{name}] tasks must be >= 1")

    chat_template = raw.get("chat_template", {})
    if not isinstance(chat_template, dict):
        raise ConfigError(f"{path}: [chat_template] must be a table")

    options: dict[str, Any] = {}
    for section, cls in sections.items():
        if cls.Options is None:
            continue
        options[section] = from_table(cls.Options, raw.get(section, {}), path, section)
        check = getattr(options[section], "validate", None)
        if callable(check):
            try:
                check()
            except ValueError as e:
                raise ConfigError(f"{path}: [{section}] {e}") from None

    return CorpusConfig(path=path, sha256=sha256, corpus=corpus, executor=executor, sources=sources,
                        overrides=overrides, chat_template=chat_template, options=options, raw=raw)


def _known_sources() -> list[str]:
    from pipeline.sources import SOURCES

    return list(SOURCES)


def _check_source(name: str, path: Path, registry: dict[str, Any] | None, where: str = "[corpus] sources") -> None:
    if registry is not None:
        if name not in registry:
            raise ConfigError(f"{path}: {where}: unknown source {name!r}; known sources: {', '.join(registry)}")
        return
    from pipeline.sources import UnknownSourceError, get_source

    try:
        get_source(name)
    except UnknownSourceError as e:
        raise ConfigError(f"{path}: {where}: {e}") from None


def _unknown(path: Path, table: str, key: str, known: list[str], what: str = "key") -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    where = f"[{table}] " if table else ""
    return f"{path}: {where}unknown {what} {key!r}{hint} (known: {', '.join(known) or 'none'})"


def from_table(cls: type, table: Any, path: Path | str, where: str) -> Any:
    """Build dataclass ``cls`` from a TOML table: unknown keys and wrong types are errors naming the key.

    Nested dataclasses, ``dict[str, <dataclass>]`` and ``list[<dataclass>]`` fields recurse, so a stage's
    ``Options`` can be as deep as its TOML table.
    """
    path = Path(path)
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{where}] must be a table, got {type(table).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in table.items():
        if key not in fields:
            raise ConfigError(_unknown(path, where, key, list(fields)))
        kwargs[key] = _convert(hints[key], value, path, f"{where}.{key}")
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required field without a default
        raise ConfigError(f"{path}: [{where}] {e}") from None
    except ValueError as e:  # the Options' own __post_init__ checks
        raise ConfigError(f"{path}: [{where}] {e}") from None


def _convert(tp: Any, value: Any, path: Path, key: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, path, key)
            except ConfigError as e:
                errors.append(e)
        raise errors[0] if len(errors) == 1 else ConfigError(
            f"{path}: {key} = {value!r} has the wrong type; expected {_type_name(tp)}")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{path}: {key} = {value!r}; expected one of {list(typing.get_args(tp))}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_table(tp, value, path, key)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"{path}: {key} must be a list, got {value!r}")
        args = typing.get_args(tp)
        item = args[0] if args else Any
        out = [_convert(item, v, path, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if (origin or tp) is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: {key} must be a table, got {value!r}")
        args = typing.get_args(tp)
        item = args[1] if len(args) == 2 else Any
        return {k: _convert(item, v, path, f"{key}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp in (str, bool):
        if isinstance(value, tp):
            return value
    elif isinstance(tp, type):
        if isinstance(value, tp):
            return value
    else:
        return value
    raise ConfigError(f"{path}: {key} = {value!r} has the wrong type; expected {_type_name(tp)}")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def fingerprint(*parts: Any) -> str:
    """A stable hash of config values (dataclasses included) for deciding whether finished work still holds."""
    def norm(x: Any) -> Any:
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            return {f.name: norm(getattr(x, f.name)) for f in dataclasses.fields(x)}
        if isinstance(x, dict):
            return {str(k): norm(v) for k, v in sorted(x.items(), key=lambda kv: str(kv[0]))}
        if isinstance(x, (list, tuple)):
            return [norm(v) for v in x]
        if isinstance(x, Path):
            return str(x)
        return x

    import json

    blob = json.dumps([norm(p) for p in parts], sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
