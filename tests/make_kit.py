"""A copy of the repository whose `.venv` is this interpreter's environment, for tests that run `make` and the
commands the docs show, exactly as a user types them.

    repo = copy_repo(tmp_path / "repo")       # the tracked tree, without build outputs or .venv
    venv = venv_stub(repo)                    # repo/.venv: this environment, marked installed; the console
                                              # scripts of pyproject.toml's [project.scripts] in its bin/
    env = make_env(repo)                      # PATH = repo/.venv/bin + the system's, PYTHONPATH = repo

The stub is what `make setup` would leave (`scripts/setup_venv.sh`): `make` sees `.venv/.installed` newer than
pyproject.toml and skips the install; `.venv/bin/python`, `.venv/bin/torchrun` and `.venv/bin/jetmoe` work
without activation.
"""
from __future__ import annotations

import os
import shutil
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: make variables a user might have exported that would change what a target does in the copy
MAKE_VARS = ("VENV", "PY", "CORPUS", "MODEL", "RUN_DIR", "LAUNCH", "ARGS", "EXPORT_DIR", "MAKEFLAGS", "MFLAGS",
             "NPROC", "TORCHRUN", "REPORT_DIR", "CORPUS_DIR", "FORCE", "MIXTURE", "TOKENS", "SOURCE")
BUILD_OUTPUTS = {".git", ".venv", "work", "runs", "reports", "exports", "shards", ".pytest_cache", "build", "dist"}


def _ignore(src: str, names: list[str]) -> set[str]:
    top = Path(src) == REPO
    return {n for n in names if (top and n in BUILD_OUTPUTS) or n == "__pycache__" or n.endswith(".egg-info")}


def copy_repo(dst: Path) -> Path:
    shutil.copytree(REPO, dst, ignore=_ignore, symlinks=True)
    return dst


def venv_stub(dst: Path) -> Path:
    """dst/.venv pointing at this interpreter's environment, marked installed so `make` skips its setup."""
    venv = dst / ".venv"
    (venv / "bin").mkdir(parents=True)
    prefix = Path(sys.prefix)
    if sys.prefix != sys.base_prefix:  # a venv: link its entries, so .venv/bin/python finds pyvenv.cfg beside it
        for entry in prefix.iterdir():
            if entry.name not in (".installed", "bin"):
                (venv / entry.name).symlink_to(entry)
        for entry in (prefix / "bin").iterdir():
            (venv / "bin" / entry.name).symlink_to(entry)
    else:
        (venv / "bin" / "python").symlink_to(sys.executable)
    if not (venv / "bin" / "torchrun").exists():
        write_script(venv / "bin" / "torchrun", "torch.distributed.run", "main")
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"].get("scripts", {})
    for name, target in scripts.items():  # what pip writes for [project.scripts] on install
        module, func = target.split(":")
        path = venv / "bin" / name
        if path.is_symlink():  # the interpreter's venv has an older install of it: use this tree's
            path.unlink()
        write_script(path, module, func)
    (venv / ".installed").touch()  # newer than the copied pyproject.toml (copytree keeps mtimes)
    return venv


def write_script(path: Path, module: str, func: str) -> None:
    path.write_text(f"#!{path.parent / 'python'}\nimport sys\nfrom {module} import {func}\nsys.exit({func}())\n")
    path.chmod(0o755)


def make_env(repo: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in MAKE_VARS and not k.startswith("MAKE")}
    env.update(PATH=f"{repo / '.venv/bin'}{os.pathsep}{env.get('PATH', '')}", PYTHONPATH=str(repo), MPLBACKEND="Agg",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.update(extra)  # e.g. PATH without the venv: a fresh shell
    return env
