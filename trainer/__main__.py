"""JetMoE trainer command line.

    python -m trainer train     trainer/configs/tiny.toml --phase 1 [--section.key=value ...]
    python -m trainer plan      mixtures/phase1.toml --corpus shards/sample --tokens 1e6 [--json] [--plot f.png]
    python -m trainer export    <checkpoint or run dir> <out dir>      # Hugging Face JetMoeForCausalLM folder
    python -m trainer import-hf <hf dir> <checkpoint dir>              # e.g. the published jetmoe/jetmoe-8b
    python -m trainer score     <checkpoint or HF dir> <file> [--token-ids] [--json]
    python -m trainer report    --run runs/tiny --corpus shards/sample --out reports/tiny
"""
import sys

from jetmoe_core.cli import dispatch

COMMANDS = {
    "train": "trainer.train:main",
    "plan": "trainer.data.plan:main",
    "export": "trainer.model.hf:export_main",
    "import-hf": "trainer.model.hf:import_main",
    "score": "trainer.model.score:main",
    "report": "trainer.report:main",
}


def main(argv: list[str] | None = None) -> int:
    return dispatch(__doc__, COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
