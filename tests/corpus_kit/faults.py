"""Fault injection for corpus builds: kill -9 or an OS error at a chosen write of a build process and of the
worker processes it forks, by monkeypatching the write calls (no LD_PRELOAD, no root, no real full disk).

    r = run_build(config, {"kind": "errno", "errno": "ENOSPC", "at": 40}, state_dir=tmp)  # a CompletedProcess
    r = run_build(config, {"kind": "kill", "at": 40}, state_dir=tmp)                      # returncode -9
    r = run_build(config, None)                                                          # no fault: a clean run
    n = count_writes(config, state_dir=tmp)                                              # writes of a clean run

``run_build`` runs ``python -m pipeline build <config> --no-progress`` in a child process that calls
:func:`install` first. Counted write operations: ``open()`` / ``io.open()`` (so ``Path.open``, fsspec's
local files, gzip, json, numpy) in a writing mode, ``os.open`` with a writing flag, ``os.replace``,
``os.rename``, ``os.mkdir``, and every ``write()`` on a file opened through ``open()``. Each process counts
its own operations from the count it had when it was forked; at operation ``at``:

* ``kill``: the build process is sent SIGKILL (from a worker too), then the process itself;
* ``errno``: the operation fails with that errno (a write writes half its bytes first, as a full disk does),
  and so does every later one in every process of the build: a full or read-only disk stays that way, shared
  through a marker file in ``state_dir`` that is written with the real calls;
* ``unlink``: the file ``target`` is deleted (a file vanishing while the build runs), and the build goes on.

Only paths under ``root`` count when one is given (the build's folders, never Python's own files), and with
``match`` only paths containing that string.
"""

from __future__ import annotations

import builtins
import errno as _errno
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.faulty_file import WatchedFile

REPO = Path(__file__).resolve().parents[2]
ENV = "JETMOE_FAULT_PLAN"

CHILD = """
import json, os, sys
sys.path.insert(0, {repo!r})
from tests.corpus_kit import faults
faults.install(json.loads(os.environ[faults.ENV]))
from pipeline.__main__ import main
code = main(sys.argv[1:])
faults.report()
sys.exit(code)
"""

_real = {"open": builtins.open, "io_open": io.open, "os_open": os.open, "replace": os.replace,
         "rename": os.rename, "mkdir": os.mkdir}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


class _State:
    def __init__(self, plan: dict[str, Any]):
        self.plan = plan
        self.count = 0
        self.build_pid = os.getpid()
        self.root = str(Path(plan["root"]).resolve()) if plan.get("root") else None
        self.state_dir = Path(plan["state_dir"])
        self.tripped_marker = self.state_dir / "tripped"

    def concerns(self, path: Any) -> bool:
        try:
            where = os.path.abspath(os.fspath(path))
        except TypeError:  # a file descriptor
            return self.root is None and not self.plan.get("match")
        return (self.root is None or where.startswith(self.root)) and self.plan.get("match", "") in where

    def check(self, path: Any) -> None:
        """Count one write operation on ``path``; kill or raise when the plan says so."""
        if not self.concerns(path):
            return
        kind = self.plan.get("kind")
        if kind == "errno" and os.path.exists(self.tripped_marker):
            self._raise(path)
        self.count += 1
        if kind is None or self.count != self.plan["at"]:
            return
        if kind == "kill":
            os.kill(self.build_pid, signal.SIGKILL)
            os.kill(os.getpid(), signal.SIGKILL)
        if kind == "unlink":
            os.unlink(self.plan["target"])
            return
        fd = _real["os_open"](self.tripped_marker, os.O_WRONLY | os.O_CREAT, 0o644)
        os.close(fd)
        self._raise(path)

    def _raise(self, path: Any) -> None:
        code = getattr(_errno, self.plan["errno"])
        raise OSError(code, os.strerror(code), os.fspath(path) if isinstance(path, (str, os.PathLike)) else None)


_STATE: _State | None = None


def _faulty_file(f, path) -> WatchedFile:
    """A file opened for writing whose ``write`` counts and may fail after writing half of its bytes."""

    def before_write(data, real):
        try:
            _STATE.check(path)
        except OSError:
            real.write(data[: len(data) // 2])
            raise

    return WatchedFile(f, before_write)


def _writing(mode: str) -> bool:
    return any(c in mode for c in "wax+")


def _open(file, mode="r", *args, **kwargs):
    if _writing(mode):
        _STATE.check(file)
        f = _real["open"](file, mode, *args, **kwargs)
        return _faulty_file(f, file) if _STATE.concerns(file) else f
    return _real["open"](file, mode, *args, **kwargs)


def _os_open(path, flags, mode=0o777, *args, **kwargs):
    if flags & _WRITE_FLAGS:
        _STATE.check(path)
    return _real["os_open"](path, flags, mode, *args, **kwargs)


def _two_paths(name):
    def call(src, dst, *args, **kwargs):
        _STATE.check(dst)
        return _real[name](src, dst, *args, **kwargs)
    return call


def _mkdir(path, *args, **kwargs):
    _STATE.check(path)
    return _real["mkdir"](path, *args, **kwargs)


def install(plan: dict[str, Any]) -> None:
    """Patch the write calls of this process (and so of every process it forks)."""
    global _STATE
    _STATE = _State(plan)
    builtins.open = _open
    io.open = _open
    os.open = _os_open
    os.replace = _two_paths("replace")
    os.rename = _two_paths("rename")
    os.mkdir = _mkdir


def report() -> None:
    """Write this process's count of write operations to ``<state_dir>/count`` (real calls)."""
    if _STATE is not None:
        fd = _real["os_open"](_STATE.state_dir / "count", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, str(_STATE.count).encode())
        os.close(fd)


def run_build(config: Path, plan: dict[str, Any] | None, *, state_dir: Path, root: Path | None = None,
              args: tuple[str, ...] = (), timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m pipeline build <config> --no-progress`` in a child process with ``plan`` installed."""
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "tripped").unlink(missing_ok=True)
    full = {"kind": None, **(plan or {}), "state_dir": str(state_dir), "root": str(root) if root else None}
    env = {**os.environ, ENV: json.dumps(full), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", CHILD.format(repo=str(REPO)), "build", str(config),
                           "--no-progress", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def count_writes(config: Path, *, state_dir: Path, root: Path | None = None) -> tuple[int, subprocess.CompletedProcess]:
    """Run a clean build with counting only: (write operations of the build process, its result)."""
    r = run_build(config, None, state_dir=state_dir, root=root)
    return int((state_dir / "count").read_text()), r
