"""Corpus builder command line.

    python -m pipeline build   pipeline/configs/sample.toml   # run the DAG (resumes where it stopped)
    python -m pipeline status  pipeline/configs/sample.toml   # per source and stage: tasks, docs, bytes
    python -m pipeline inspect shards/sample [source]         # counts, token stats, decoded documents
    python -m pipeline verify  shards/sample                  # check a corpus against the shard contract
"""
import importlib
import sys

COMMANDS = {
    "build": "pipeline.dag:build_main",
    "status": "pipeline.dag:status_main",
    "inspect": "pipeline.inspect:main",
    "verify": "pipeline.verify:main",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__.strip())
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\nunknown command {argv[0]!r}; known: {', '.join(COMMANDS)}", file=sys.stderr)
            return 2
        return 0
    module, func = COMMANDS[argv[0]].split(":")
    return int(getattr(importlib.import_module(module), func)(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
