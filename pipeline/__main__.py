"""Corpus builder command line.

    python -m pipeline build   pipeline/configs/sample.toml   # run the DAG (resumes where it stopped)
    python -m pipeline status  pipeline/configs/sample.toml   # per source and stage: tasks, docs, bytes
    python -m pipeline inspect shards/sample [source]         # counts, token stats, decoded documents
    python -m pipeline verify  shards/sample                  # check a corpus against the shard contract

build and status take config overrides: --section.key=value (e.g. --executor.workers=8).
"""
import sys

from jetmoe_core.cli import dispatch

COMMANDS = {
    "build": "pipeline.dag.cli:build_main",
    "status": "pipeline.dag.cli:status_main",
    "inspect": "pipeline.inspect:main",
    "verify": "pipeline.verify:main",
}


def main(argv: list[str] | None = None) -> int:
    return dispatch(__doc__, COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
