"""A failing disk under one folder, in this process: every write operation there fails with an OSError from
the n-th one on, as a full, read-only or broken disk does (and keeps doing: the failure is sticky).

    disk = FailingDisk(run_dir, errno.ENOSPC, at=37)     # the 37th write operation under run_dir fails
    disk.install(monkeypatch)                            # ... and every one after it
    main(run_args(...))                                  # -> 2, "No space left on device (ENOSPC)"
    disk.ops, disk.failed                                # operations seen; whether it fired
    FailingDisk(run_dir, at=None)                        # counts, never fails

Write operations: opening a file for writing (builtins/io open, os.open with O_CREAT/O_WRONLY/O_RDWR), each
write() to such a file, os.mkdir, os.replace/rename, os.fsync of such a file, torch.save and safetensors'
save_file to a path there. torch.save and save_file fail the way the real ones do on a full disk: torch with
its C++ "[enforce fail at inline_container.cc] unexpected pos" RuntimeError (no errno), safetensors with a
SafetensorError whose text ends in "(os error N)". No LD_PRELOAD: the functions are monkeypatched.
"""
from __future__ import annotations

import builtins
import errno as errno_mod
import io
import os
from pathlib import Path

from tests.faulty_file import WatchedFile

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


class FailingDisk:
    def __init__(self, root, code: int = errno_mod.ENOSPC, at: int | None = 1):
        self.root = str(Path(root).resolve())
        self.code, self.at = code, at
        self.ops = 0
        self.failed = False
        self._fds: dict[int, str] = {}

    def under(self, path) -> str | None:
        if isinstance(path, int):
            return self._fds.get(path)
        try:
            p = os.path.abspath(os.fspath(path))
        except TypeError:
            return None
        return p if p == self.root or p.startswith(self.root + os.sep) else None

    def op(self, path: str) -> None:
        """One write operation on `path`; raises once the disk has failed."""
        self.ops += 1
        if self.failed or (self.at is not None and self.ops >= self.at):
            self.failed = True
            raise OSError(self.code, os.strerror(self.code), path)

    def install(self, monkeypatch) -> "FailingDisk":
        import safetensors.torch
        import torch

        real_open, real_os_open = builtins.open, os.open
        real = {name: getattr(os, name) for name in ("mkdir", "replace", "rename", "fsync")}
        real_torch_save, real_save_file = torch.save, safetensors.torch.save_file
        disk = self

        def open_(file, mode="r", *args, **kwargs):
            path = disk.under(file)
            writing = any(c in mode for c in "wax+")
            if path is not None and writing and not isinstance(file, int):
                disk.op(path)
            f = real_open(file, mode, *args, **kwargs)
            if path is None or not writing:
                return f
            disk._fds[f.fileno()] = path  # so that os.fsync(f.fileno()) counts as an operation here
            return WatchedFile(f, before_write=lambda data, real: disk.op(path),
                               before_flush=lambda real: disk.op(path) if disk.failed else None)

        def os_open(path, flags, *args, **kwargs):
            p = disk.under(path)
            if p is not None and flags & _WRITE_FLAGS:
                disk.op(p)
            fd = real_os_open(path, flags, *args, **kwargs)
            if p is not None:
                disk._fds[fd] = p
            return fd

        def wrap(name):
            def f(*args, **kwargs):
                paths = [disk.under(a) for a in args[:2]]
                for p in paths:
                    if p is not None:
                        disk.op(p)
                        break
                return real[name](*args, **kwargs)
            return f

        def torch_save(obj, f, *args, **kwargs):
            path = disk.under(f) if isinstance(f, (str, os.PathLike)) else None
            if path is not None:
                try:
                    disk.op(path)
                except OSError:
                    with real_open(path, "wb") as half:  # what torch leaves: the start of the archive
                        half.write(b"PK\x03\x04")
                    raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
            return real_torch_save(obj, f, *args, **kwargs)

        def save_file(tensors, filename, *args, **kwargs):
            path = disk.under(filename)
            if path is not None:
                try:
                    disk.op(path)
                except OSError as e:
                    from safetensors import SafetensorError
                    raise SafetensorError(f"Error while serializing: I/O error: {e.strerror} "
                                          f"(os error {e.errno})") from None
            return real_save_file(tensors, filename, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", open_)
        monkeypatch.setattr(io, "open", open_)
        monkeypatch.setattr(os, "open", os_open)
        for name in real:
            monkeypatch.setattr(os, name, wrap(name))
        monkeypatch.setattr(torch, "save", torch_save)
        monkeypatch.setattr(safetensors.torch, "save_file", save_file)
        return self
