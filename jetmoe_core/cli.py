"""One sub-command dispatcher for ``python -m pipeline`` and ``python -m trainer``.

    COMMANDS = {"build": "pipeline.dag.cli:build_main", ...}
    sys.exit(dispatch(__doc__, COMMANDS))

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
