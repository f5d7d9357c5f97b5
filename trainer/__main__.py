"""JetMoE trainer command line. Required arguments are shown; `python -m trainer <command> --help` lists the rest.

    python -m trainer train     [<run config>] --phase 1|2 --run-dir <dir> [--section.key=value ...]
                                e.g. trainer/configs/tiny.toml --phase 1 --run-dir runs/tiny; phase 2 and
                                a resume read the run folder's saved config (the file may be left out)
    python -m trainer sft       <sft config> --run-dir <dir>   # phase 3a, e.g. trainer/configs/align/sft-tiny.toml
    python -m trainer dpo       <dpo config> --run-dir <dir>   # phase 3b, from the SFT run
    python -m trainer plan      <mixture.toml> --tokens N [--corpus shards/sample] [--renormalise] [--json]
    python -m trainer export    <checkpoint or run dir> [<out dir>] [--force] [--chat]   # HF JetMoeForCausalLM
                                folder, default exports/<run name>; never overwritten without --force
    python -m trainer import-hf <hf dir> <checkpoint dir>              # e.g. the published jetmoe/jetmoe-8b
    python -m trainer score     <checkpoint, run or HF dir> <file> [--token-ids] [--no-boundary] [--chat] [--json]
    python -m trainer report    [--run runs/tiny] [--corpus shards/sample] [--sft DIR] [--dpo DIR] [--out <dir>]
                                default reports/<run name>; the corpus defaults to the run's own
    python -m trainer ablation  <grid.toml> [--quick] [--plan] [--out DIR] [--section.key=value ...]
                                e.g. trainer/configs/ablations/cpu.toml: variants at equal active params, seeds
"""
import sys

from jetmoe_core.cli import TRAINER_COMMANDS as COMMANDS, dispatch


def main(argv: list[str] | None = None) -> int:
    return dispatch(__doc__, COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
