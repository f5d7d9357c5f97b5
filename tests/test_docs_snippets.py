"""The docs run: every fenced code block of README.md and docs/*.md is run, checked, or marked as output.

    pytest -q tests/test_docs_snippets.py                 # about 2-3 minutes on 2 cores, most of it `make demo`
    pytest -q tests/test_docs_snippets.py -k fences       # only the rules below, no build (a second)

The rules, for a block opened with three backticks and a language:

* ``bash``: run with ``bash -e -o pipefail`` in a copy of the repository where ``make demo`` already ran, with
  the copy's ``.venv/bin`` (this interpreter's environment, with the ``jetmoe`` console script:
  ``tests/make_kit.py``) first on PATH, so ``python``, ``jetmoe`` and ``make`` are what a user of the docs runs. Run in page order; a block may use what an earlier one wrote.
* ``python``: run with this interpreter, in the same folder.
* ``toml``: parsed with ``tomllib`` (configuration examples are not run, but they must be valid TOML).
* ``text``: output or a drawing, not code: left alone.
* A ``bash`` or ``python`` block whose previous non-blank line is ``<!-- not run here: <reason> -->`` (8 GPUs,
  Slurm, the hub, minutes of benchmark) is only checked: ``bash -n``, or Python's ``compile()``.
* Any other fence (no language, another language) fails ``test_fences``: a block is run, checked or output.

Cost is kept small: the copy's ``trainer/configs/tiny.toml`` is cut to a few steps per phase (the commands stay
exactly as written), and ``make demo`` runs once per session, building the sample corpus the other blocks read.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.make_kit import MAKE_VARS, copy_repo, make_env, venv_stub

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MARKER = re.compile(r"^<!--\s*not run here:\s*(?P<reason>.*?)\s*-->$")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<ticks>`{3,})(?P<lang>[^`\s]*)\s*$")
RUN, CHECK_ONLY_OK, DATA, OUTPUT = {"bash", "python"}, {"bash", "python"}, {"toml"}, {"text"}
# the copy's tiny run: (section, key, value); 4 steps of phase 1 and 2 of phase 2 (2,048 tokens each), val and
# checkpoints only where a phase starts and ends
TINY_CAPS = [("train", "phase1_tokens", "8_192"), ("train", "phase2_tokens", "4_096"),
             ("schedule", "warmup_tokens", "2_048"), ("checkpoint", "every_steps", "100"),
             ("log", "val_every_steps", "100")]
TIMEOUT_S = 900


@dataclass(frozen=True)
class Block:
    page: str        # path relative to the repository
    line: int        # 1-based line of the opening fence
    lang: str
    code: str
    marker: str | None   # the reason of a "not run here" marker right above, else None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def parse_blocks(path: Path) -> list[Block]:
    """Fenced blocks of one Markdown page; an unclosed fence is an error naming its line."""
    lines = path.read_text(encoding="utf-8").splitlines()
    page = path.relative_to(REPO).as_posix()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, ticks, start = len(m["indent"]), m["ticks"], i
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == ticks), None)
        if end is None:
            raise AssertionError(f"{page}:{start + 1}: a code fence opened here is never closed")
        # a fence indented inside a list item: its lines carry the same indentation, which is not code
        body = "\n".join(l[indent:] if l[:indent].strip() == "" else l.lstrip() for l in lines[start + 1:end])
        prev = next((lines[j].strip() for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        mark = MARKER.match(prev)
        blocks.append(Block(page, start + 1, m["lang"].lower(), body + "\n", mark["reason"] if mark else None))
        i = end + 1
    return blocks


ALL = [b for p in PAGES for b in parse_blocks(p)]
CODE = [b for b in ALL if b.lang in RUN | DATA]


def test_fences():
    """Every block is run, checked or output, and every marker says why and sits above code."""
    assert len(PAGES) >= 8 and len([b for b in ALL if b.lang in RUN and b.marker is None]) >= 12, \
        "the docs lost their runnable blocks, or the parser broke"
    problems = []
    for b in ALL:
        if b.lang not in RUN | DATA | OUTPUT:
            problems.append(f"{b.id}: fence language {b.lang or '(none)'!r}: use ```bash or ```python for "
                            "commands (run by this test), ```toml for config examples, ```text for output")
        elif b.marker is not None and b.lang not in CHECK_ONLY_OK:
            problems.append(f"{b.id}: a 'not run here' marker above a ```{b.lang} block: only code is marked")
        elif b.marker is not None and not b.marker:
            problems.append(f"{b.id}: the 'not run here' marker gives no reason")
    assert not problems, "\n".join(problems)


def _set_key(text: str, section: str, key: str, value: str) -> str:
    """Replace `key = ...` inside `[section]` of a TOML file's text, keeping the rest byte for byte."""
    out, current, done = [], None, 0
    for line in text.splitlines(keepends=True):
        head = re.match(r"^\[([^\]]+)\]", line)
        if head:
            current = head[1].strip()
        elif current == section and re.match(rf"^{re.escape(key)}\s*=", line):
            comment = line[line.index("#"):] if "#" in line else "\n"
            line, done = f"{key} = {value}  {comment}" if "#" in line else f"{key} = {value}\n", done + 1
        out.append(line)
    assert done == 1, f"trainer/configs/tiny.toml has no [{section}] {key}: update TINY_CAPS in {__file__}"
    return "".join(out)


@pytest.fixture(scope="session")
def docs_repo(tmp_path_factory) -> tuple[Path, dict]:
    """A copy of the repository where `make demo` ran, on a tiny run cut to a few steps."""
    for tool in ("make", "bash", "sha256sum"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    dst = copy_repo(tmp_path_factory.mktemp("docs") / "repo")
    (dst / "shards").mkdir()
    venv_stub(dst)
    tiny = dst / "trainer/configs/tiny.toml"
    text = tiny.read_text()
    for section, key, value in TINY_CAPS:
        text = _set_key(text, section, key, value)
    tiny.write_text(text)
    env = make_env(dst)
    demo = subprocess.run(["make", "demo"], cwd=dst, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    out = demo.stdout + demo.stderr
    assert demo.returncode == 0, f"`make demo` failed (exit {demo.returncode}):\n{out[-6000:]}"
    # what the README says the demo ends with
    assert re.search(r"val loss, run +\d+\.\d+ at step 0 → \d+\.\d+ at step \d+", out), out[-3000:]
    assert (dst / "exports/tiny/config.json").is_file()
    return dst, env


def _run(cmd: list[str], cwd: Path, env: dict, code: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, input=code, capture_output=True, text=True, timeout=TIMEOUT_S)


@pytest.mark.timeout(2 * TIMEOUT_S)  # the first run block also waits for `make demo` in the fixture
@pytest.mark.parametrize("block", CODE, ids=[b.id for b in CODE])
def test_block(block: Block, request):
    if block.lang == "toml":
        try:
            tomllib.loads(block.code)
        except tomllib.TOMLDecodeError as e:
            pytest.fail(f"{block.id}: not valid TOML ({e})")
        return
    if block.marker is not None:  # not run here: the syntax is still checked
        if block.lang == "bash":
            r = subprocess.run(["bash", "-n"], input=block.code, capture_output=True, text=True)
            assert r.returncode == 0, f"{block.id}: bash -n: {r.stderr}"
        else:
            compile(block.code, block.id, "exec")
        return
    repo, env = request.getfixturevalue("docs_repo")
    if block.lang == "bash":
        r = _run(["bash", "-e", "-o", "pipefail", "-s"], repo, env, block.code)
    else:
        r = _run([str(repo / ".venv/bin/python"), "-"], repo, env, block.code)
    assert r.returncode == 0, (f"{block.id}: the ```{block.lang} block exited {r.returncode}\n--- block\n"
                               f"{block.code}--- output\n{(r.stdout + r.stderr)[-6000:]}")


def _required_options(usage: str) -> set[str]:
    """The --options an argparse usage line requires: those outside every [...] group."""
    text, prev = usage, None
    while text != prev:
        prev, text = text, re.sub(r"\[[^\[\]]*\]", "", text)
    return set(re.findall(r"(?<![\w-])--[a-z][\w-]*", text))


@pytest.mark.parametrize("package", ["trainer", "pipeline"])
def test_top_level_help_shows_required_options(package, capsys):
    """`python -m <package> --help` names, for each command, every option that command requires."""
    import importlib

    cli = importlib.import_module(f"{package}.__main__")
    assert cli.main(["--help"]) == 0
    top = capsys.readouterr().out
    for command in cli.COMMANDS:
        with pytest.raises(SystemExit) as exit_:
            cli.main([command, "--help"])
        assert exit_.value.code == 0
        usage = capsys.readouterr().out.split("\n\n")[0]
        shown = " ".join(l for l in top.splitlines() if re.search(rf"-m {package} {re.escape(command)}\s", l))
        assert shown, f"`python -m {package} --help` does not show the command {command!r}"
        missing = _required_options(usage) - set(re.findall(r"--[a-z][\w-]*", shown))
        assert not missing, (f"`python -m {package} --help` hides that {command!r} requires {sorted(missing)}; "
                             f"its usage: {usage}")


def test_make_help_matches_inspect():
    """`make help` promises decoded documents from inspect only with SOURCE=, and SOURCE reaches inspect."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    env = {k: v for k, v in os.environ.items() if k not in MAKE_VARS and not k.startswith("MAKE")}
    help_ = subprocess.run(["make", "-s", "help"], cwd=REPO, env=env, capture_output=True, text=True).stdout
    line = next(l for l in help_.splitlines() if l.startswith("inspect"))
    assert "decoded" not in line or "SOURCE=" in line, line
    dry = subprocess.run(["make", "-n", "inspect", "SOURCE=starcoder"], cwd=REPO, env=env, capture_output=True,
                         text=True).stdout  # -n prints the commands without running them
    assert re.search(r"-m pipeline inspect shards/sample starcoder\s*$", dry, re.M), dry
