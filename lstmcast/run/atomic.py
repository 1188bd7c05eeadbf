"""Atomic file writes: a reader sees the old complete file or the new one, never a part.

Every file goes to a hidden temporary name in its own directory (`.NAME.XXXXXXXX.tmp`),
is flushed and fsynced, and is renamed over NAME; the directory is fsynced so the rename
survives a power cut. A process killed mid-write leaves such a temporary file behind;
`clean_stale` removes the ones of one target while its lock is held.

Only a regular file, or a path where nothing is yet, is replaced that way; an existing
file keeps its mode (and owner and group, where this process may set them). A device,
FIFO or socket at the path (`/dev/null`, `/dev/stdout`, a named pipe) is written to in
place, as a stream: it is never replaced by a regular file. A symbolic link is followed:
the file it points to is replaced, and the link stays a link.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from lstmcast.errors import InputError

_RENAME_EXCHANGE = 2  # linux/fs.h


def temp_pattern(name: str) -> re.Pattern[str]:
    """The names `tempfile.mkstemp/mkdtemp(prefix='.NAME.', suffix='.tmp')` gives for NAME."""
    return re.compile(rf"\.{re.escape(name)}\.[a-z0-9_]{{8}}\.tmp")


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable (no-op where directories cannot be opened)."""
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


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def public_mode(path: Path, directory: bool = False) -> None:
    """Give a temporary file or directory the mode a plain `open`/`mkdir` would have.

    mkstemp and mkdtemp create them private (0600/0700); a dashboard running as another
    user must be able to read the forecast that replaces the old one.
    """
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def is_stream(path: str | Path) -> bool:
    """Whether `path` (links followed) is a character or block device, a FIFO or a socket:
    something to write into, never to replace."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def real_target(path: str | Path) -> Path:
    """The path a write to `path` replaces: where a symbolic link at `path` points, else `path`.

    Replacing the link itself would turn the user's link into a copy and leave the file it
    pointed to stale (or, for a run directory, emptied).
    """
    path = Path(path)
    return Path(os.path.realpath(path)) if os.path.islink(path) else path


def _check_target(path: Path) -> None:
    if path.is_dir():
        raise InputError(f"{path}: is a directory; give a file name to write")
    if path.parent.exists() and not path.parent.is_dir():
        raise InputError(f"{path.parent}: is a file, not a directory; choose another output path")


def _keep_mode(tmp: Path, path: Path) -> None:
    """Give the temporary file the mode (and owner, group) of the file it replaces, or the mode
    a plain `open` would give a new file."""
    try:
        old = os.stat(path)
    except FileNotFoundError:
        public_mode(tmp)
        return
    if hasattr(os, "chown"):
        try:
            os.chown(tmp, old.st_uid, old.st_gid)  # before chmod: chown may clear set-id bits
        except OSError:
            try:
                os.chown(tmp, -1, old.st_gid)  # not root: the group, where we are in it
            except OSError:
                pass
    os.chmod(tmp, stat.S_IMODE(old.st_mode))


@contextmanager
def _stream(path: Path, binary: bool) -> Iterator[IO[Any]]:
    """Write into a device or FIFO in place (no temporary file, no rename, no fsync)."""
    try:
        handle = open(path, "wb") if binary else open(path, "w", encoding="utf-8", newline="")
    except OSError as exc:
        raise InputError(f"{path}: cannot write to it ({exc.strerror}); choose another output path") from None
    with handle:
        yield handle


@contextmanager
def atomic_writer(path: str | Path, binary: bool = False, follow: bool = True) -> Iterator[IO[Any]]:
    """An open temporary file in `path`'s directory (UTF-8 text, or bytes), renamed over `path`
    once the block ends without an error: write in as many pieces as needed.

    A device or FIFO at `path` is written to directly instead (see the module's docstring).
    With `follow` False nothing at `path` is followed or written into: the rename replaces
    whatever name is there (a name lstmcast chose; `run.output.Door` refuses links there first).
    """
    if follow and is_stream(path):
        with _stream(Path(path), binary) as handle:
            yield handle
        return
    path = real_target(path) if follow else Path(path)
    _check_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        _keep_mode(Path(tmp), path)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync, then rename into place."""
    with atomic_writer(path, binary=True) as handle:
        handle.write(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2); False where unsupported."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd = -100
    done = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if done != 0:
        err = ctypes.get_errno()
        if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: the filesystem cannot exchange
            return False
        raise OSError(err, os.strerror(err), str(a))
    return True


def clean_stale(path: str | Path, own_names: frozenset[str] = frozenset()) -> list[Path]:
    """Remove temporary files and directories a killed lstmcast left beside `path`.

    Call only while holding `path`'s lock, so no live writer owns them. A temporary
    directory loses the files named in `own_names` and second links of files that are in
    `path` too, and is removed when that empties it: anything else was not written by
    lstmcast and stays.
    """
    removed: list[Path] = []
    if is_stream(path):
        return removed  # nothing is ever built beside a device or FIFO
    path = real_target(path)
    pattern = temp_pattern(path.name)
    if not path.parent.is_dir():
        return removed
    for item in path.parent.iterdir():
        if not pattern.fullmatch(item.name):
            continue
        if item.is_dir() and not item.is_symlink():
            for inner in item.iterdir():
                twin = path / inner.name
                if inner.is_file() and (inner.name in own_names or (twin.exists() and os.path.samefile(inner, twin))):
                    inner.unlink(missing_ok=True)
            try:
                item.rmdir()
            except OSError:
                continue
        else:
            item.unlink(missing_ok=True)
        removed.append(item)
    return removed
