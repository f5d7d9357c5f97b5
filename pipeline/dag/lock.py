"""One build per work folder, and forked task processes that die with the build.

    with build_lock(cfg.work_dir):      # BuildError if another build holds it
        ...run the DAG...

Two builds of one corpus at once would write the same task files, so a build holds an exclusive ``flock`` on
``<work_dir>/.build.lock`` for its whole run. flock locks belong to the open file, which forked processes
inherit; datatrove's local executor forks pool workers and a Manager process that can outlive a SIGKILLed
build, so while a build runs, every process it forks (registered with ``os.register_at_fork`` when the first
build starts, not at import):

* closes its copy of the lock file, so the lock ends with the build process itself;
* asks Linux to SIGKILL it when the build dies (prctl PR_SET_PDEATHSIG; Python has no binding for it, hence
  ctypes). Without it a SIGKILLed build leaves its pool workers finishing their task, and writing its files,
  while the rerun writes the same ones; and datatrove's Manager process lingers forever.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any, Iterator

from jetmoe_core.io import IOFault

from pipeline.dag.plan import BuildError

PR_SET_PDEATHSIG = 1


class _ForkGuard:
    """The running build's lock file and pid, read by the at-fork hook in every forked child."""

    def __init__(self) -> None:
        self.lock_fd: int | None = None
        self.build_pid: int | None = None
        self.prctl: Any = None
        self.hooked = False

    def start(self, lock_fd: int) -> None:
        if sys.platform == "linux" and self.prctl is None:
            import ctypes

            # resolved here, not in the forked child: a child of a threaded process must not dlopen
            self.prctl = ctypes.CDLL(None, use_errno=True).prctl
        if not self.hooked:
            os.register_at_fork(after_in_child=self.after_fork)
            self.hooked = True
        self.lock_fd, self.build_pid = lock_fd, os.getpid()

    def stop(self) -> None:
        self.lock_fd = self.build_pid = None

    def after_fork(self) -> None:
        if self.lock_fd is not None:
            try:
                os.close(self.lock_fd)
            except OSError:
                pass
            self.lock_fd = None
        if self.build_pid is not None and os.getppid() == self.build_pid and self.prctl is not None:
            self.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
            if os.getppid() != self.build_pid:  # the build died before prctl took effect
                os._exit(1)
        self.build_pid = None  # grandchildren are their parent's business


_GUARD = _ForkGuard()


@contextlib.contextmanager
def build_lock(work_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the work folder for the whole build (see the module docstring)."""
    import fcntl

    lock_path = work_dir / ".build.lock"
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise IOFault.from_os_error(e, "creating the work folder (to use another one: [corpus] work_dir, or "
                                       "--corpus.work_dir=<folder>)", e.filename or work_dir) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise BuildError(f"another build is using {work_dir}; wait for it to end (find it with "
                         f"`fuser {lock_path}`)") from None
    _GUARD.start(fd)
    try:
        yield
    finally:
        _GUARD.stop()
        os.close(fd)
