"""jetmoe_core.io: atomic writes leave the old file or the new one, and OS errors are explained."""
from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import pytest

from jetmoe_core.io import (IOFault, atomic_path, explain_os_error, is_temp, sha256_file, write_bytes_atomic,
                            write_json_atomic)


def test_atomic_writes(tmp_path: Path):
    p = tmp_path / "sub" / "a.json"
    write_json_atomic(p, {"b": 1, "a": 2}, sort_keys=True)
    assert p.read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'
    write_bytes_atomic(p, b"xyz")
    assert p.read_bytes() == b"xyz" and sha256_file(p) == hashlib.sha256(b"xyz").hexdigest()
    assert [q.name for q in p.parent.iterdir()] == ["a.json"]


def test_atomic_path_removes_the_temp_file_on_error(tmp_path: Path):
    p = tmp_path / "w.bin"
    p.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            assert is_temp(tmp)
            tmp.write_bytes(b"half")
            raise RuntimeError("crash")
    assert p.read_bytes() == b"old" and [q.name for q in tmp_path.iterdir()] == ["w.bin"]
    with atomic_path(p) as tmp:
        tmp.write_bytes(b"new")
    assert p.read_bytes() == b"new"


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch):
    p = tmp_path / "x.json"
    write_json_atomic(p, {"v": 1})

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError):
        write_json_atomic(p, {"v": 2})
    monkeypatch.undo()
    assert json.loads(p.read_text()) == {"v": 1} and len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, ["no space left on device", "ENOSPC", "free space"]),
                                         (errno.EROFS, ["read-only", "EROFS", "writable folder"]),
                                         (errno.EACCES, ["permission denied", "EACCES", "permissions"])])
def test_explain_os_error(code, words):
    msg = explain_os_error(OSError(code, os.strerror(code)), "writing the checkpoint", "/runs/x/ckpt")
    assert msg.startswith("writing the checkpoint /runs/x/ckpt: ")
    for w in words:
        assert w in msg
    fault = IOFault.from_os_error(OSError(code, "x"), "writing", "/p")
    assert isinstance(fault, OSError) and fault.errno == code and str(fault).startswith("writing /p: ")


def test_atomic_writes_get_the_permissions_open_gives(tmp_path: Path):
    """A renamed temp file keeps its mode: it must be what a plain open() makes (0666 less the umask), not
    mkstemp's 0600, or a corpus written on a shared disk is unreadable to the rest of the team."""
    (tmp_path / "plain").write_bytes(b"x")
    want = (tmp_path / "plain").stat().st_mode & 0o777
    write_bytes_atomic(tmp_path / "a", b"x")
    with atomic_path(tmp_path / "b") as tmp:
        tmp.write_bytes(b"x")
    assert (tmp_path / "a").stat().st_mode & 0o777 == want
    assert (tmp_path / "b").stat().st_mode & 0o777 == want
