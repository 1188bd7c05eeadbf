"""SIGINT and SIGTERM: stop training cleanly, write the run, and exit 130 or 143.

`install()` (called by the CLI) makes SIGTERM behave like Ctrl-C, raising
KeyboardInterrupt, which training turns into a usable, resumable run. `writing()`
holds both signals back while the run directory is written, so a signal that comes
late does not throw away a finished run: it is only recorded. The CLI reads
`received()` to pick the exit code.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_received: list[int] = []
_STOP = (signal.SIGINT, signal.SIGTERM)


def _raise(signum: int, frame: object) -> None:
    _received.append(signum)
    raise KeyboardInterrupt


def _record(signum: int, frame: object) -> None:
    _received.append(signum)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def install() -> None:
    """SIGINT and SIGTERM raise KeyboardInterrupt and are remembered."""
    _received.clear()
    if _main_thread():
        for sig in _STOP:
            signal.signal(sig, _raise)


def received() -> int | None:
    """The first stop signal since `install()`, if any."""
    return _received[0] if _received else None


@contextmanager
def writing() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back during the block; one that came meanwhile is recorded, not raised.

    A no-op outside the main thread or where signal masks do not exist.
    """
    if not _main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP)
    try:
        yield
    finally:
        previous = [signal.signal(sig, _record) for sig in _STOP]
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP)  # a pending signal is recorded here
        for sig, handler in zip(_STOP, previous):
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
