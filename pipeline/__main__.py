"""Corpus builder command line: python -m pipeline <command> ARGUMENTS (<command> --help: every option).

    python -m pipeline build   CONFIG [--no-progress] [--rebuild] [--section.key=value ...]
    python -m pipeline status  CONFIG [--section.key=value ...]
    python -m pipeline inspect CORPUS [SOURCE] [--split train|val] [--docs N] [--chars N] [--json]
    python -m pipeline verify  CORPUS [--deep]

    CONFIG  a corpus config TOML (required), e.g. pipeline/configs/sample.toml
    CORPUS  a built corpus folder (required), e.g. shards/sample
    SOURCE  one source of it: inspect then also shows a few of its documents, decoded

Examples:
    python -m pipeline build   pipeline/configs/sample.toml   # run the DAG (resumes where it stopped)
    python -m pipeline status  pipeline/configs/sample.toml   # one row per unit: state, tasks, docs, bytes
    python -m pipeline inspect shards/sample refinedweb       # counts, token stats, decoded documents
    python -m pipeline verify  shards/sample                  # check a corpus against the shard contract

build and status take config overrides: --section.key=value (e.g. --executor.workers=8). build shows progress
inside each unit; $JETMOE_PROGRESS_INTERVAL sets the seconds between lines without a terminal (default 30).
"""
import sys

from jetmoe_core.cli import PIPELINE_COMMANDS as COMMANDS, dispatch


def main(argv: list[str] | None = None) -> int:
    return dispatch(__doc__, COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
