"""JetMoE trainer command line. Required arguments are shown; `python -m trainer <command> --help` lists the rest.

    python -m trainer train     <run config> --phase 1|2 --run-dir <dir> [--section.key=value ...]
                                e.g. trainer/configs/tiny.toml --phase 1 --run-dir runs/tiny
    python -m trainer plan      <mixture.toml> --tokens N [--corpus shards/sample] [--json] [--plot f.png]
    python -m trainer export    <checkpoint or run dir> <out dir>      # Hugging Face JetMoeForCausalLM folder
    python -m trainer import-hf <hf dir> <checkpoint dir>              # e.g. the published jetmoe/jetmoe-8b
    python -m trainer score     <checkpoint, run or HF dir> <file> [--token-ids] [--no-boundary] [--json]
    python -m trainer report    --out <dir> [--run runs/tiny] [--corpus shards/sample]
"""
import importlib
import sys

COMMANDS = {
    "train": "trainer.train:main",
    "plan": "trainer.data.plan:main",
    "export": "trainer.model.hf:export_main",
    "import-hf": "trainer.model.hf:import_main",
    "score": "trainer.model.score:main",
    "report": "trainer.report:main",
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
