"""Atomic writes, hashing and readable I/O errors, for every file either package writes.

    write_bytes_atomic(path, data)            # temp file in the same folder, fsync, rename, fsync the folder
    write_json_atomic(path, obj, sort_keys=True)
    with atomic_path(path) as tmp:            # for writers that want a path (safetensors, pyarrow, torch.save)
        save_file(tensors, tmp)
    sha256_file(path)
    try: ... except OSError as e: raise IOFault.from_os_error(e, "writing the checkpoint", path) from None

A crash at any point leaves either the old file or the new one, never a half-written file under the real
name; a temp file left by a crash starts with "." and ends with ".tmp" (``is_temp``), so readers skip it.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any, Iterator

__all__ = ["sha256_file", "write_bytes_atomic", "write_text_atomic", "write_json_atomic", "atomic_path",
           "fsync_dir", "is_temp", "IOFault", "explain_os_error"]


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename inside ``path`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def is_temp(path: str | os.PathLike) -> bool:
    """A temp file of an unfinished atomic write."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(".tmp")


def _make_temp(path: Path) -> tuple[int, Path]:
    """Create ``.<name>.<random>.tmp`` beside ``path`` with the permissions ``open()`` would give (0666 less
    the umask): ``tempfile.mkstemp`` makes 0600 files, which would leave a corpus or a checkpoint unreadable
    to the rest of a team once renamed into place."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success fsync it and rename it into place, else remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_path = _make_temp(path)
    os.close(fd)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write through a temp file in the same folder, fsync, and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _make_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any, sort_keys: bool = False) -> None:
    """JSON (indent 2, newline at the end) written with :func:`write_bytes_atomic`."""
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=sort_keys) + "\n").encode())


# ---------------------------------------------------------------------------------------------- errors
_FIXES = {
    errno.ENOSPC: "free space on that disk, or point the output somewhere with room",
    errno.EDQUOT: "your disk quota is full: free space, or point the output somewhere with room",
    errno.EROFS: "that filesystem is mounted read-only: point the output at a writable folder",
    errno.EACCES: "you may not write there: fix the folder's permissions or point the output elsewhere",
    errno.EPERM: "the operation is not permitted there: fix the permissions or point the output elsewhere",
    errno.ENOENT: "the file or folder vanished (deleted while in use?): restore it, or run again to redo it",
    errno.EIO: "the disk reported an I/O error: check the device (dmesg), then run again",
    errno.EFBIG: "a file size limit was reached (ulimit -f, or the filesystem's largest file): raise it or point "
                 "the output at another filesystem",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n) and run again",
    errno.ENAMETOOLONG: "the path is too long: use a shorter output folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder: fix the path",
    errno.EISDIR: "the path is a folder where a file was expected: fix the path",
}


def explain_os_error(e: OSError, action: str, path: str | os.PathLike | None = None) -> str:
    """'<action> <path>: <what the errno means> (<ENAME>); <the fix>' for an OSError."""
    where = path if path is not None else (e.filename or "")
    code = e.errno
    name = errno.errorcode.get(code, "") if code is not None else ""
    meaning = os.strerror(code).lower() if code is not None else str(e)
    fix = _FIXES.get(code, "check the path and the disk, then run again")
    head = f"{action} {where}".strip()
    return f"{head}: {meaning}" + (f" ({name})" if name else "") + f"; {fix}"


class IOFault(OSError):
    """An I/O error already explained for the user: path, the errno's meaning and the fix. Commands turn it
    into exit status 2 with this message instead of a traceback."""

    @classmethod
    def from_os_error(cls, e: OSError, action: str, path: str | os.PathLike | None = None,
                      then: str = "") -> "IOFault":
        """``then``: what to do after the fix, appended (e.g. "then run the same command again to resume")."""
        if isinstance(e, IOFault):
            return e
        fault = cls(e.errno, explain_os_error(e, action, path) + (f"; {then}" if then else ""))
        fault.filename = str(path) if path is not None else e.filename
        return fault

    def __str__(self) -> str:
        return self.strerror or super().__str__()
