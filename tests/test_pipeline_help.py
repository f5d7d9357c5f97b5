"""``python -m pipeline --help`` and ``make help`` show what each command needs: its required arguments and
options, the same ones its own argparse parser takes, and the make variables that pass them."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.__main__ import COMMANDS

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=REPO, capture_output=True, text=True, timeout=120)


def _synopsis(command: str) -> str:
    top = _run(sys.executable, "-m", "pipeline", "--help")
    assert top.returncode == 0
    (line,) = [x for x in top.stdout.splitlines() if re.match(rf"\s+python -m pipeline {command}\s+[A-Z]", x)]
    return line


@pytest.mark.parametrize("command", list(COMMANDS))
def test_top_help_names_every_argument_of_each_command(command):
    line = _synopsis(command)
    usage = _run(sys.executable, "-m", "pipeline", command, "--help").stdout
    usage = usage.split("\n\n", 1)[0]  # argparse's usage block
    positionals = re.findall(r"(?<![\[\w-])([a-z_]+)(?![\w\]])", usage.split(command, 1)[1])
    optional_pos = re.findall(r"\[([a-z_]+)\]", usage)
    options = set(re.findall(r"(--[a-z-]+)", usage))
    for name in positionals:
        assert re.search(rf"(?<!\[){name.upper()}\b", line), (name, line)  # required: shown without brackets
    for name in optional_pos:
        assert f"[{name.upper()}]" in line, (name, line)
    for opt in options:
        assert opt in line, (opt, line)


def test_make_help_shows_the_variables_the_targets_need():
    r = _run("make", "help")
    assert r.returncode == 0, r.stderr
    assert re.search(r"^inspect .*SOURCE=<name> adds decoded documents", r.stdout, re.M), r.stdout
    assert "usage: make <target> [VARIABLE=value ...]" in r.stdout
    for var in ("CORPUS=", "MODEL=", "RUN_DIR=", "SOURCE=", "ARGS="):
        assert var in r.stdout, var
    # the variables reach the commands the help promises
    assert "-m pipeline inspect shards/sample refinedweb" in _run("make", "-n", "inspect", "SOURCE=refinedweb").stdout
    assert "-m pipeline status pipeline/configs/jetmoe.toml --executor.kind=slurm" in _run(
        "make", "-n", "status", "CORPUS=jetmoe", "ARGS=--executor.kind=slurm").stdout
