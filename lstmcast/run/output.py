"""One door out: every file a command writes (forecasts, detections, metrics, plots) goes through `Door`.

    door = Door(output, run_dir, default=FORECAST_CSV, allowed={FORECAST_CSV})
    door.check()                      # before any work: refuses with one line, creates nothing
    with door.hold(wait):             # checks again, locks the target, removes a killed writer's temporaries
        ... compute ...
        with door.open() as handle:   # a temporary file renamed over the target when the block ends
            handle.write(...)

Modelled on git's lockfile API (`hold_lock_file_for_update`, `commit_lock_file`): no
command keeps a writer of its own. What the door refuses, before anything is created:

- one of an lstmcast run's own files (run.json, weights, metrics.json, config.toml,
  loss.png, the resume files), however it is named: through a symbolic link, a relative
  path, `..`, or a second hard link. `allowed` names the ones this output may replace
  (forecast.csv for predict);
- a directory at the path, or a regular file where a directory of the path should be;
- a path chosen by lstmcast or by the data (a default output inside a run, a plot named
  after a series) that holds a symbolic link, FIFO or device: such a path is only ever
  written as a regular file, and a link planted there is refused, never followed
  (exit 3 inside a run directory, which is untrusted; else exit 2). A path the user
  names is followed where it links, and a device or FIFO there is written in place.

`-` is stdout, written as a stream and flushed; a reader that closes the pipe early
raises BrokenPipeError, which the CLI ends quietly on.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any

from lstmcast.errors import InputError, RunDirError
from lstmcast.run import locking
from lstmcast.run.atomic import atomic_writer, clean_stale
from lstmcast.run.rundir import OWN_FILES, is_run

STDOUT = "-"


def _is_run_dir(path: Path) -> bool:
    try:
        return is_run(path)
    except OSError:
        return False


def reserved_in(directory: str | Path, run_dir: str | Path | None = None) -> frozenset[str]:
    """The names a file written into `directory` must not take: the run's own files when
    `directory` is an lstmcast run (or `run_dir`), else none."""
    real = Path(os.path.realpath(directory))
    inside = _is_run_dir(real) or (run_dir is not None and real == Path(os.path.realpath(run_dir)))
    return OWN_FILES if inside else frozenset()


class Door:
    """One output: the path a command writes, and the rules it is written by.

    Args:
        path: what the user named ('-': stdout), or None for `run_dir / default`.
        run_dir: the run the command reads; its files are refused (any run's are).
        default: the file name inside `run_dir` when `path` is None.
        allowed: own file names of a run this output may replace.
        chosen: the name comes from lstmcast or the data, not the user: never follow a link there.
        flag: how messages name the path ("--output", "--plot").
    """

    def __init__(self, path: str | Path | None, run_dir: str | Path | None = None, *, default: str | None = None,
                 allowed: frozenset[str] = frozenset(), chosen: bool = False, flag: str = "--output") -> None:
        if path is None:
            if run_dir is None or default is None:
                raise ValueError("an output without a path needs run_dir and default")
            path, chosen = Path(run_dir) / default, True
        self.stdout = str(path) == STDOUT
        self.path = Path(path)
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.default, self.allowed, self.chosen, self.flag = default, frozenset(allowed), chosen, flag

    def __str__(self) -> str:
        return STDOUT if self.stdout else str(self.path)

    # --- checks --------------------------------------------------------------------------------------

    def check(self) -> None:
        """Refuse the path (InputError, or RunDirError for a planted path in a run) before any work."""
        if self.stdout:
            return
        if self.chosen:
            self._check_chosen()
        self._check_own()
        self.check_place()

    def _check_chosen(self) -> None:
        try:
            info = os.lstat(self.path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise InputError(f"{self.path}: cannot be checked ({exc.strerror}); choose another {self.flag}") from None
        if stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode):
            return  # a directory is refused by check_place
        what = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a regular file (a FIFO, device or socket)"
        inside_run = _is_run_dir(self.path.parent)
        hint = (f"name the file to write with {self.flag}" if self.flag == "--output"
                else f"choose another {self.flag} directory")
        error = RunDirError if inside_run else InputError
        raise error(f"{self.path}: is {what}; lstmcast writes a file whose name it chose only as a regular file, "
                    f"never through what was planted there. Remove it, or {hint}")

    def _check_own(self) -> None:
        real = Path(os.path.realpath(self.path))
        runs = {real.parent} if _is_run_dir(real.parent) else set()
        if self.run_dir is not None:
            runs.add(Path(os.path.realpath(self.run_dir)))
        forbidden = OWN_FILES - self.allowed
        for run in runs:
            culprit = real.name if real.parent == run and real.name in forbidden else self._hard_link(run, forbidden)
            if culprit is not None:
                default = f" (the default is {self.run_dir / self.default})" if self.run_dir and self.default else ""
                raise InputError(f"{self.flag} {self.path}: is the run's own {culprit} in {run}; writing it would "
                                 f"destroy the run. Choose another path{default}")

    def _hard_link(self, run: Path, forbidden: frozenset[str]) -> str | None:
        """The own file of `run` that the file at the path is a second name of, if any."""
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        if not stat.S_ISREG(info.st_mode) or info.st_nlink < 2:
            return None
        for name in sorted(forbidden):
            try:
                own = os.lstat(run / name)
            except OSError:
                continue
            if (own.st_dev, own.st_ino) == (info.st_dev, info.st_ino):
                return name
        return None

    def check_place(self) -> None:
        """Refuse a directory at the path, or a regular file where one of its directories should be."""
        target = Path(os.path.realpath(self.path)) if not self.chosen else self.path
        if target.is_dir():
            raise InputError(f"{self.flag} {self.path}: is a directory; give a file name to write")
        for parent in target.parents:  # the first that exists must be a directory
            if os.path.lexists(parent):
                if not parent.is_dir():
                    raise InputError(f"{self.flag} {self.path}: {parent} is a file, not a directory; "
                                     "choose another output path")
                return

    # --- writing -------------------------------------------------------------------------------------

    @contextmanager
    def hold(self, wait: float = 0.0) -> Iterator[Door]:
        """Check, lock the target and remove what a killed writer of it left, for the block."""
        self.check()
        if self.stdout:
            yield self
            return
        with ExitStack() as stack:
            try:
                stack.enter_context(locking.hold(self.path, wait, "output"))
            except (PermissionError, NotADirectoryError, FileExistsError, IsADirectoryError) as exc:
                raise InputError(f"{self.flag} {self.path}: cannot write here ({exc.strerror}); "
                                 "choose another output path") from None
            self.check()  # again under the lock: what was planted meanwhile
            clean_stale(self.path)
            yield self

    @contextmanager
    def open(self, binary: bool = False) -> Iterator[IO[Any]]:
        """The file to write (text or bytes), renamed over the target when the block ends without an error.

        Call it inside `hold`. stdout is written in place and flushed.
        """
        if self.stdout:
            handle = sys.stdout.buffer if binary else sys.stdout
            yield handle
            handle.flush()
            return
        with atomic_writer(self.path, binary=binary, follow=not self.chosen) as handle:
            yield handle


def write(door: Door, data: str | bytes, wait: float = 0.0) -> None:
    """Write `data` whole through `door` (checked, locked, atomic)."""
    with door.hold(wait), door.open(binary=isinstance(data, bytes)) as handle:
        handle.write(data)
