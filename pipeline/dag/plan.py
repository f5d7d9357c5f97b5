"""Planning a build: the units of work (one stage for one input group, one source, or the corpus) and
what each one waits for.

    plan = make_plan(load_config("pipeline/configs/sample.toml"))
    [u.id for u in plan.units]          # ["download/refinedweb", ..., "format/pile", ..., "manifest/_corpus"]
    plan.unit("format/pile").deps       # ["download/pile"]
    plan.unit("tokenizer/_corpus").gates   # ["fidelity/_corpus"] when the config lists the fidelity guard
    stage = plan.instance(unit)         # the Stage object that runs it

Units come in stage order (``records.stage_order``); within a stage, in the order of the config's sources.
A per-source unit waits for the same source's (or its group's) units of the stages it runs after
(``Stage.runs_after``: its ``after``, and its ``after_if_configured`` that the config lists); a corpus unit
waits for every source's. Units of a ``gate`` stage (a check whose outputs nothing reads) go to ``gates``
rather than ``deps``: the unit waits for them and is skipped when one fails, but they are not part of its
fingerprint or inputs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from pipeline.config import CorpusConfig
from pipeline.dag.records import stage_order


class BuildError(RuntimeError):
    """The build cannot start (another build holds the work folder, an input is missing); the message says
    what to do."""


@dataclass
class Unit:
    """One stage for one input group, one source, or the whole corpus."""

    stage: str
    key: str | None
    #: units whose outputs this one reads: it waits for them, and their records are part of its own
    deps: list[str] = field(default_factory=list)
    #: units of gate stages: it waits for them and is skipped when one fails, nothing more
    gates: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.stage}/{self.key or '_corpus'}"


@dataclass
class Plan:
    config: CorpusConfig
    ctx: Any
    units: list[Unit]

    def unit(self, uid: str) -> Unit:
        return next(u for u in self.units if u.id == uid)

    def instance(self, unit: Unit):
        from pipeline.stages.base import STAGES

        return STAGES[unit.stage](self.ctx, unit.key)


def resolve_sources(cfg: CorpusConfig, registry: dict[str, Any] | None = None):
    """Specs with the config's overrides applied; selected groups; every known group's members."""
    if registry is None:
        from pipeline.sources import SOURCES as registry
    registry = {**registry, **cfg.user_specs}  # the config's own sources beside the catalog's
    get_source = registry.__getitem__
    specs = {}
    for name in cfg.sources:
        spec = get_source(name)
        o = cfg.override(name)
        changes = {k: v for k, v in (("revision", o.revision), ("repo_id", o.repo_id)) if v}
        if o.allow_patterns:
            changes["allow_patterns"] = tuple(o.allow_patterns)
        specs[name] = dataclasses.replace(spec, **changes) if changes else spec
    groups: dict[str, list[str]] = {}
    for name, spec in specs.items():
        groups.setdefault(spec.input_group or name, []).append(name)
    known: dict[str, list[str]] = {}
    for name, spec in registry.items():
        known.setdefault(spec.input_group or name, []).append(name)
    return specs, groups, known


def make_plan(cfg: CorpusConfig, registry: dict[str, Any] | None = None) -> Plan:
    import pipeline.stages  # noqa: F401
    from pipeline.stages.base import STAGES, StageContext

    specs, groups, known = resolve_sources(cfg, registry)
    ctx = StageContext(corpus=cfg.name, config=cfg, work_dir=cfg.work_dir, shards_dir=cfg.shards_dir,
                       sources=list(cfg.sources), options=dict(cfg.options), groups=groups, specs=specs,
                       known_groups=known)
    group_of = {m: g for g, ms in groups.items() for m in ms}
    units: list[Unit] = []
    for name in stage_order(cfg.corpus.stages):
        cls = STAGES[name]
        keys: list[str | None] = (list(groups) if cls.scope == "group" else list(cfg.sources)
                                  if cls.scope == "source" else [None])
        for key in keys:
            members = groups[key] if cls.scope == "group" else [key] if cls.scope == "source" else list(cfg.sources)
            deps: list[str] = []
            gates: list[str] = []
            for d in cls.runs_after(cfg.corpus.stages):
                dcls = STAGES[d]
                if dcls.scope == "corpus":
                    dkeys = ["_corpus"]
                elif dcls.scope == "group":
                    dkeys = sorted({group_of[m] for m in members}, key=list(groups).index)
                else:
                    dkeys = members
                (gates if dcls.gate else deps).extend(f"{d}/{k}" for k in dkeys)
            units.append(Unit(name, key, deps, gates))
    return Plan(cfg, ctx, units)
