"""The ``fidelity`` stage: the fidelity guard (pipeline/fidelity.py) run on the build's own accounting.

Runs once for the corpus after the last dedup stage (every stage that removes documents has run), reads each
source's accounting chain from the stages' ``_DONE.json`` records (``pipeline.dag.records``, as the manifest
does) and writes the rows to ``work/<corpus>/_corpus/fidelity/fidelity.json`` (``{"sources": {source:
<SourceFidelity.to_dict()>}, "options": ...}``: every stage's reasons). A source past its ``[fidelity]``
threshold is a warning naming the rule that removed the most, or, with ``fail = true``, fails this unit with
that message. The stage is a *gate*: the tokenizer and the shard stage run after it when the config lists it
(``after_if_configured``), so a failed guard stops the build before any of a source's documents are
tokenized or sharded, and no manifest is written (exit 1); but nothing reads its outputs, so changing a
threshold reruns the guard alone.

The table itself is printed by the build's summary (``pipeline.dag.report.fidelity_summary``) from the same
records, on every build, a fully cached one too.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from datatrove.pipeline.base import PipelineStep
from datatrove.utils.logging import logger

from jetmoe_core.io import write_json_atomic

from pipeline.dag.records import source_accounts
from pipeline.fidelity import FidelityOptions, check, evaluate, render
from pipeline.stages.base import Job, Stage, register

REPORT = "fidelity.json"


def source_chains(ctx, stages: list[str]) -> dict[str, list[dict]]:
    """Each built source's finished stage records, in DAG order (sources with none are left out)."""
    chains = {s: source_accounts(ctx, stages, s) for s in ctx.sources}
    return {s: c for s, c in chains.items() if c}


class FidelityCheck(PipelineStep):
    type = "🔎 - CHECK"
    name = "⚖️ fidelity"

    def __init__(self, ctx, stages: list[str], opts: FidelityOptions, out: str):
        super().__init__()
        self.ctx, self.stages, self.opts, self.out = ctx, stages, opts, out

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        rows = evaluate(source_chains(self.ctx, self.stages), self.opts)
        write_json_atomic(Path(self.out) / REPORT, {"options": dataclasses.asdict(self.opts),
                                                    "sources": {r.source: r.to_dict() for r in rows}}, sort_keys=True)
        logger.info("\n" + render(rows))  # the task log; the build's summary prints the same table
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
    gate = True

    def jobs(self) -> list[Job]:
        return [Job("fidelity", [FidelityCheck(self.ctx, self.ctx.stages, self.options or FidelityOptions(),
                                               str(self.output_dir))])]

    def accounts(self):
        return {}
