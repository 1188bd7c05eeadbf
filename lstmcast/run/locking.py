"""One writer per target: an advisory `flock` on a lock file beside the run directory or output.

The lock for `runs/current` is `runs/.current.lock`; for `forecasts/f.csv` it is
`forecasts/.f.csv.lock`. A second lstmcast that wants the same target polls for up to
`wait` seconds, then stops with `BusyError` (exit code 4). Targets with different names
never wait for each other.

The holder removes the lock file when it is done, so dated outputs leave no lock files
behind. That is safe with `flock` because a waiter that wins the lock checks that the
file it locked is still the one at the path, and starts over if the holder unlinked it.
The kernel drops the lock when a process dies, even by SIGKILL: a lock file left by a
killed run is empty and harmless, and the next run takes it over.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lstmcast.errors import BusyError

POLL_SECONDS = 0.1


def lock_path(target: str | Path) -> Path:
    target = Path(target)
    return target.parent / f".{target.name}.lock"


def _try_lock(path: Path) -> int | None:
    """An fd holding an exclusive lock on `path`, or None if someone else holds it."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    try:
        same = os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        same = False
    if not same:  # the previous holder removed this file after we opened it: start over
        os.close(fd)
        return -1
    return fd


@contextmanager
def hold(target: str | Path, wait: float = 0.0, what: str = "") -> Iterator[Path]:
    """Hold the lock of `target` for the duration of the block.

    Args:
        target: the run directory or output file about to be written.
        wait: seconds to wait for another lstmcast holding it; 0 fails at once.
        what: how to name the target in the error ("run directory", "output").
    """
    target = Path(target)
    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + max(wait, 0.0)
    while True:
        fd = _try_lock(path)
        if fd is not None and fd >= 0:
            break
        if fd is None and time.monotonic() >= deadline:
            label = f"{what} {target}" if what else str(target)
            waited = f" after waiting {wait:g} s" if wait > 0 else ""
            raise BusyError(
                f"{label} is in use by another lstmcast process{waited} (lock {path}); "
                "retry later or pass --wait SECONDS"
            )
        if fd is None:
            time.sleep(POLL_SECONDS)
    try:
        yield path
    finally:
        # Unlink while still holding the lock: waiters notice and retry on a fresh file.
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        os.close(fd)
