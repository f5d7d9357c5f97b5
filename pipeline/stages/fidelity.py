"""The ``fidelity`` stage: the fidelity guard (pipeline/fidelity.py) run on the build's own accounting.

Runs once for the corpus after the last dedup stage (every stage that removes documents has run), reads each
source's accounting chain from the stages' ``_DONE.json`` records, prints the per-source table and writes it
to ``work/<corpus>/_corpus/fidelity/fidelity.json`` (``{"sources": {source: <SourceFidelity.to_dict()>},
"options": ...}``). A source past its ``[fidelity]`` threshold is printed as a warning naming the rule that
removed the most, or, with ``fail = true``, fails this unit (and so the build, exit 1) with that message.

    from pipeline.stages.fidelity import load_report, summary_text
    print(summary_text(plan.ctx))     # the table and warnings again, from fidelity.json (a cached rerun too)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from datatrove.pipeline.base import PipelineStep

from jetmoe_core.io import write_json_atomic

from pipeline.dag.records import source_accounts
from pipeline.fidelity import FidelityOptions, SourceFidelity, check, evaluate, render
from pipeline.stages.base import Job, Stage, register

REPORT = "fidelity.json"


def source_chains(ctx, stages: list[str]) -> dict[str, list[dict]]:
    """Each source's finished stage records, in DAG order (the runner's records module, as the manifest reads
    them)."""
    return {s: source_accounts(ctx, stages, s) for s in ctx.sources}


def load_report(ctx) -> list[SourceFidelity] | None:
    """The rows the fidelity stage of this build wrote, or None before it ran."""
    path = ctx.dir(FidelityStage.name) / REPORT
    if not path.is_file():
        return None
    sources = json.loads(path.read_text())["sources"]
    return [SourceFidelity.from_dict(s, sources[s]) for s in ctx.sources if s in sources]


def summary_text(ctx) -> str:
    """The table and the warnings, for the end of a build's output ("" before the stage ran)."""
    rows = load_report(ctx)
    return render(rows) if rows else ""


class FidelityCheck(PipelineStep):
    type = "🔎 - CHECK"
    name = "⚖️ fidelity"

    def __init__(self, ctx, stages: list[str], opts: FidelityOptions, out: str):
        super().__init__()
        self.ctx, self.stages, self.opts, self.out = ctx, stages, opts, out

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        rows = evaluate({s: c for s, c in source_chains(self.ctx, self.stages).items() if c}, self.opts)
        write_json_atomic(Path(self.out) / REPORT, {"options": dataclasses.asdict(self.opts),
                                                    "sources": {r.source: r.to_dict() for r in rows}}, sort_keys=True)
        print("\n" + render(rows), flush=True)
        check(rows)
        return
        yield


@register
class FidelityStage(Stage):
    name = "fidelity"
    version = "v1"
    after = ("dedup_cross",)
    scope = "corpus"
    section = "fidelity"
    Options = FidelityOptions

    def jobs(self) -> list[Job]:
        stages = list(getattr(getattr(self.ctx.config, "corpus", None), "stages", None) or [])
        return [Job("fidelity", [FidelityCheck(self.ctx, stages, self.options or FidelityOptions(),
                                               str(self.output_dir))])]

    def accounts(self):
        return {}
