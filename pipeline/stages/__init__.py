"""Stages of the corpus DAG. Importing this package registers every stage in ``base.STAGES``."""
from pipeline.stages.base import STAGES, Job, Stage, StageContext, register  # noqa: F401
from pipeline.stages import download, format  # noqa: F401,E402  (registers download, format)
from pipeline.stages import filter, decontaminate, dedup, tokenizer, shard, manifest  # noqa: F401,E402
from pipeline.stages import fidelity  # noqa: F401,E402  (registers the fidelity guard)
