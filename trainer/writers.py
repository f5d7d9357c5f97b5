"""Writing the trainer's big files, with a failed write reported as the OS error that caused it.

    save_torch(obj, folder / "optimizer.pt")                 # torch.save
    save_safetensors(tensors, folder / "model.safetensors", {"format": "pt"})
    install_folder(tmp, final)                               # a finished temp folder into place, atomically
    check_writable(run_dir, "the run folder")                # fail before hours of work, not after

torch.save and safetensors write from C++ and Rust. On a full disk torch raises
"[enforce fail at inline_container.cc:…] unexpected pos …" (no errno, no path) and safetensors a
SafetensorError whose text ends in "(os error 28)"; both become the `OSError` they stand for here, so that
callers can turn every I/O failure into one `jetmoe_core.io.IOFault` (path, the errno's meaning, the fix).
"""
from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path

import safetensors.torch
import torch

from jetmoe_core.io import IOFault, fsync_dir, write_bytes_atomic

_OS_ERROR = re.compile(r"\(os error (\d+)\)")


class _Recorder:
    """A write-only file for torch.save that keeps the OSError a write raised (torch drops it)."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.f.flush()


def _errno_of_failed_save(obj, path: Path) -> OSError | None:
    """Write `obj` once more through a Python file and return the OSError that stops it, if any."""
    rec = None
    try:
        with open(path, "wb") as f:
            rec = _Recorder(f)
            torch.save(obj, rec)
    except OSError as e:
        return e
    except RuntimeError:
        pass
    return rec.error if rec is not None else None


def save_torch(obj, path: str | os.PathLike) -> None:
    """torch.save to `path` (its final name: torch names the zip archive after the file's stem, so a temp
    name would change the bytes). A failed write raises the OSError behind it."""
    path = Path(path)
    try:
        torch.save(obj, path)
    except RuntimeError as e:
        if "inline_container" not in str(e) and "unexpected pos" not in str(e):
            raise
        # torch's C++ writer drops the errno: writing once more through Python's file recovers it. Only a
        # failed save pays for this.
        cause = _errno_of_failed_save(obj, path)
        path.unlink(missing_ok=True)
        if cause is None:
            cause = OSError(errno.EIO, f"torch.save failed ({e}), though a second write went through")
        cause.filename = str(path)
        raise cause from None


def save_safetensors(tensors: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str]) -> None:
    """safetensors' save_file; a failed write raises the OSError behind it."""
    try:
        safetensors.torch.save_file(tensors, str(path), metadata=metadata)
    except OSError:
        raise
    except Exception as e:  # SafetensorError carries the errno only in its text
        m = _OS_ERROR.search(str(e))
        if not m:
            raise
        code = int(m.group(1))
        raise OSError(code, os.strerror(code), str(path)) from None


def install_folder(tmp: Path, final: Path) -> None:
    """Put a completely written folder `tmp` at `final` by renames (atomic on POSIX): a crash leaves the old
    folder or the new one under that name, never a mix. An existing `final` is replaced."""
    if final.exists():
        old = final.with_name(f".old-{final.name}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    fsync_dir(final.parent)


def check_writable(folder: Path, what: str) -> None:
    """Create `folder` and write and remove a probe file in it; an IOFault (exit 2) if that fails."""
    folder = Path(folder)
    probe = folder / ".write-probe"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(probe, b"ok\n")
        probe.unlink()
    except OSError as e:
        raise IOFault.from_os_error(e, f"cannot write to {what}", e.filename or folder) from None
