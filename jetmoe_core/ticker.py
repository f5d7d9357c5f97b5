"""Call a function every few seconds from a daemon thread while a block runs: the progress lines of long work
(a build unit's poll, a hub download's bytes on disk) follow it without the work itself reporting anything.

    with every(1.0, lambda: progress(bytes_there(...)), name="download-bytes"):
        fetch()

The thread stops (and is joined) when the block ends, also on an exception; `fn` is not called once more at the
end: callers that want a last reading make it themselves after the block, when the work's result is final.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Callable, Iterator

__all__ = ["every"]


@contextlib.contextmanager
def every(period_s: float, fn: Callable[[], object], name: str = "ticker") -> Iterator[None]:
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(period_s):
            fn()

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
