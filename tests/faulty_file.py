"""A file opened for writing whose writes a fault injector sees first: shared by the corpus builder's fault
kit (``tests/corpus_kit/faults.py``) and the trainer's (``tests/trainer_kit/disk.py``).

    f = WatchedFile(real_file, before_write=lambda data, f: check(path))   # may raise OSError
    f.write(b"...")                                                         # check first, then the real write

``before_write(data, real_file)`` runs before every ``write``; raising there fails the write (it may write part
of ``data`` to ``real_file`` first, as a full disk does). ``before_flush(real_file)``, when given, runs
before ``flush``. Everything else goes to the real file.
"""
from __future__ import annotations


class WatchedFile:
    def __init__(self, f, before_write, before_flush=None):
        self._f, self._before_write, self._before_flush = f, before_write, before_flush

    def write(self, data):
        self._before_write(data, self._f)
        return self._f.write(data)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        if self._before_flush is not None:
            self._before_flush(self._f)
        return self._f.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)

    def __iter__(self):
        return iter(self._f)

    def __getattr__(self, name):
        return getattr(self._f, name)
