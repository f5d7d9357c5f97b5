"""JetMoE trainer command line. Required arguments are shown; `python -m trainer <command> --help` lists the rest.

    python -m trainer train     <run config> --phase 1|2 --run-dir <dir> [--section.key=value ...]
                                e.g. trainer/configs/tiny.toml --phase 1 --run-dir runs/tiny
    python -m trainer sft       <sft config> --run-dir <dir>         # phase 3a, e.g. trainer/configs/align/sft-tiny.toml
    python -m trainer dpo       <dpo config> --run-dir <dir>         # phase 3b, from the SFT run
    python -m trainer plan      <mixture.toml> --tokens N [--corpus shards/sample] [--json] [--plot f.png]
    python -m trainer export    <checkpoint or run dir> <out dir>      # Hugging Face JetMoeForCausalLM folder
    python -m trainer import-hf <hf dir> <checkpoint dir>              # e.g. the published jetmoe/jetmoe-8b
    python -m trainer score     <checkpoint, run or HF dir> <file> [--token-ids] [--no-boundary] [--chat] [--json]
    python -m trainer report    --out <dir> [--run runs/tiny] [--corpus shards/sample] [--sft DIR] [--dpo DIR]
"""
import sys

from jetmoe_core.cli import dispatch

COMMANDS = {
    "train": "trainer.train:main",
    "sft": "trainer.align.run:sft_main",
    "dpo": "trainer.align.run:dpo_main",
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
