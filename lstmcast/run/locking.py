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

A lock file is opened without following a symbolic link (O_NOFOLLOW) and must be a
regular file: a link planted at `.f.csv.lock` is refused, never opened, so nothing is
created or locked where it points. A target that is a symbolic link is locked where it
points (the file or run directory that is written); a device or FIFO, which is written
in place and never replaced, gets no lock file (`/dev/null` must not gain `/dev/.null.lock`).
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lstmcast.errors import BusyError, InputError, LstmcastError, RunDirError

POLL_SECONDS = 0.1
MAX_WAIT = 7 * 86400.0  # seconds: a week


def lock_path(target: str | Path) -> Path:
    target = Path(target)
    return target.parent / f".{target.name}.lock"


# Never through a link; never blocking on a FIFO planted at the lock's name.
_OPEN_FLAGS = (os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
               | getattr(os, "O_CLOEXEC", 0))


def _unsafe(path: Path, what: str, why: str) -> LstmcastError:
    error = RunDirError if what == "run directory" else InputError
    return error(f"lock file {path} {why}; lstmcast does not use it. Remove it (rm {path}) and run again")


def _open(path: Path, what: str) -> int:
    """The lock file opened for locking: a regular file at `path` itself, never a link's target."""
    try:
        fd = os.open(path, _OPEN_FLAGS, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP or os.path.islink(path):
            raise _unsafe(path, what, "is a symbolic link") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _unsafe(path, what, "is not a regular file")
    return fd


def _same_file(fd: int, path: Path) -> bool:
    try:
        at_path, opened = os.lstat(path), os.fstat(fd)
    except FileNotFoundError:
        return False
    return (at_path.st_dev, at_path.st_ino) == (opened.st_dev, opened.st_ino)


def _try_lock(path: Path, what: str = "") -> int | None:
    """An fd holding an exclusive lock on `path`, None if someone else holds it, -1 to retry."""
    import fcntl

    fd = _open(path, what)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    if not _same_file(fd, path):  # the previous holder removed this file after we opened it: start over
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
    from lstmcast.run.atomic import is_stream, real_target

    if not (isinstance(wait, (int, float)) and 0 <= wait <= MAX_WAIT):  # NaN compares false: it would wait forever
        raise InputError(f"--wait {wait!r}: give a number of seconds from 0 to {MAX_WAIT:g}")
    if is_stream(target):  # written in place, never replaced: nothing to guard, no lock file beside it
        yield lock_path(target)
        return
    target = real_target(target)
    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + max(wait, 0.0)
    while True:
        fd = _try_lock(path, what)
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
        # Only our own file: whatever else took its name meanwhile is not ours to delete.
        try:
            if _same_file(fd, path):
                path.unlink()
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)
