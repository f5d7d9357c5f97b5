"""One sub-command dispatcher for ``python -m pipeline``, ``python -m trainer`` and the ``jetmoe`` command.

    sys.exit(dispatch(__doc__, PIPELINE_COMMANDS))              # python -m pipeline (trainer: TRAINER_COMMANDS)
    main(["plan", "mixtures/phase1.toml", "--tokens", "1e6"])   # the `jetmoe` console script (pyproject.toml)

Each command is imported only when it runs, so ``--help`` and light commands stay fast. A command's
``main(argv)`` returns its exit status; an ``IOFault`` or ``ConfigError`` that reaches here is printed as
one ``error:`` line with exit status 2, never a traceback.
"""
from __future__ import annotations

import importlib
import sys

from jetmoe_core.config import ConfigError, did_you_mean
from jetmoe_core.io import IOFault


def dispatch(doc: str, commands: dict[str, str], argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        print(doc.strip())
        if argv and argv[0] not in ("-h", "--help"):
            print(f"\nunknown command {argv[0]!r}{did_you_mean(argv[0], commands)}; known: {', '.join(commands)}",
                  file=sys.stderr)
            return 2
        return 0
    module, func = commands[argv[0]].split(":")
    try:
        return int(getattr(importlib.import_module(module), func)(argv[1:]) or 0)
    except (IOFault, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


#: the sub-commands of ``python -m pipeline`` and ``python -m trainer`` (module:function strings, imported only
#: when a command runs, so this package still imports neither)
PIPELINE_COMMANDS = {
    "build": "pipeline.dag.cli:build_main",
    "status": "pipeline.dag.cli:status_main",
    "inspect": "pipeline.inspect:main",
    "verify": "pipeline.verify:main",
}
TRAINER_COMMANDS = {
    "train": "trainer.train:main",
    "sft": "trainer.align.run:sft_main",
    "dpo": "trainer.align.run:dpo_main",
    "plan": "trainer.data.plan:main",
    "export": "trainer.model.hf:export_main",
    "import-hf": "trainer.model.hf:import_main",
    "score": "trainer.model.score:main",
    "report": "trainer.report:main",
    "ablation": "trainer.ablation:main",
}
#: ``jetmoe <command>``: both packages' commands under one name, ``build`` called ``corpus``
JETMOE_COMMANDS = {"corpus" if name == "build" else name: target
                   for name, target in {**PIPELINE_COMMANDS, **TRAINER_COMMANDS}.items()}

JETMOE_DOC = """jetmoe: the corpus builder and the trainer, one command (installed into .venv/bin by `make setup`).
Required arguments are shown; `jetmoe <command> --help` lists the rest.

    jetmoe corpus    <corpus config> [--section.key=value ...]     # = python -m pipeline build
    jetmoe status    <corpus config> [--section.key=value ...]     # one row per unit: state, tasks, docs, bytes
    jetmoe verify    <corpus dir>                                  # check a corpus against the shard contract
    jetmoe inspect   <corpus dir> [source]                         # counts, token stats, decoded documents
    jetmoe train     [<run config>] --phase 1|2 --run-dir <dir> [--section.key=value ...]
    jetmoe sft       <sft config> --run-dir <dir>                   # phase 3a, e.g. trainer/configs/align/sft-tiny.toml
    jetmoe dpo       <dpo config> --run-dir <dir>                   # phase 3b, from the SFT run
    jetmoe plan      <mixture.toml> --tokens N [--corpus shards/sample] [--renormalise]
    jetmoe export    <checkpoint or run dir> [<out dir>] [--force] [--chat]  # Hugging Face JetMoeForCausalLM folder
    jetmoe import-hf <hf dir> <checkpoint dir>
    jetmoe score     <checkpoint, run or HF dir> <file> [--chat]
    jetmoe report    [--run runs/tiny] [--corpus shards/sample] [--sft DIR] [--dpo DIR] [--out <dir>]
    jetmoe ablation  <grid.toml> [--quick] [--plan] [--out DIR]     # variants at equal active params, over seeds
"""


def main(argv: list[str] | None = None) -> int:
    """The ``jetmoe`` console script."""
    return dispatch(JETMOE_DOC, JETMOE_COMMANDS, argv)
