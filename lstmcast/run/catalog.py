"""The runs in a directory: list them, find the newest finished one, prune old ones.

Only a directory directly inside the parent whose run.json reads as an lstmcast run
counts as a run; anything else is never touched (a directory whose run.json does not
read is named as skipped). Pruning deletes only the files lstmcast writes into a run,
all of them or none, and then the directory if that left it empty: whatever else a
user put in an old run stays where it is.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lstmcast.run.rundir import METRICS_JSON, OWN_FILES, RUN_JSON, holds_record, load_meta, read_file
from lstmcast.errors import BusyError, InputError, RunDirError

UNFINISHED = ("interrupted", "diverged")


@dataclass
class RunInfo:
    path: Path
    created: str
    stopped: str | None  # how training ended (metrics.json), None if unknown
    best_epoch: int | None
    validation: dict[str, Any] | None

    @property
    def finished(self) -> bool:
        return self.stopped is not None and self.stopped not in UNFINISHED

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "created": self.created, "stopped": self.stopped,
                "finished": self.finished, "best_epoch": self.best_epoch, "validation": self.validation}


def _metrics(path: Path) -> tuple[dict[str, Any], list[str]]:
    """metrics.json's fields `runs` shows, each checked: (fields, what was wrong with the others)."""
    try:  # a regular file of a plausible size only: a FIFO here must not hang `runs list`
        metrics = json.loads(read_file(path / METRICS_JSON).decode("utf-8"))
    except (RunDirError, UnicodeError, ValueError, RecursionError):
        return {}, []
    if not isinstance(metrics, dict):
        return {}, [f"{path / METRICS_JSON}: not a JSON object; shown as unknown"]
    fields: dict[str, Any] = {}
    wrong = []
    checks = {"stopped": lambda v: isinstance(v, str),
              "best_epoch": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "validation": lambda v: isinstance(v, dict) and all(
                  x is None or (isinstance(x, (int, float)) and not isinstance(x, bool)) for x in v.values())}
    for key, ok in checks.items():
        value = metrics.get(key)
        if value is None or ok(value):
            fields[key] = value
        else:
            wrong.append(key)
    notes = [f"{path / METRICS_JSON}: field {key!r} is malformed ({metrics[key]!r:.60}); shown as unknown"
             for key in wrong]
    return fields, notes


def _info(path: Path, notes: list[str] | None = None) -> RunInfo | None:
    """The run at `path`, or None when it is no readable run (named in `notes` when run.json is there)."""
    try:
        record = load_meta(path)
    except RunDirError as exc:
        if notes is not None and (holds_record(path) or not os.access(path, os.R_OK | os.X_OK)):
            notes.append(f"skipped {path}: not a readable lstmcast run ({exc})")
        return None
    metrics, wrong = _metrics(path)
    if notes is not None:
        notes.extend(wrong)
    return RunInfo(path=path, created=record.created, stopped=metrics.get("stopped"),
                   best_epoch=metrics.get("best_epoch"), validation=metrics.get("validation"))


def scan(parent: str | Path) -> tuple[list[RunInfo], list[str]]:
    """The runs directly inside `parent`, newest first, and notes: directories holding a run.json
    that does not read (skipped), metrics.json fields that are malformed (shown as unknown)."""
    parent = Path(parent)
    if not parent.is_dir():
        raise InputError(f"{parent}: directory not found; pass the directory that holds the runs")
    notes: list[str] = []
    found = [info for child in sorted(parent.iterdir())
             if child.is_dir() and not child.is_symlink() and not child.name.startswith(".")
             and (info := _info(child, notes)) is not None]
    return sorted(found, key=lambda r: (r.created, r.path.name), reverse=True), notes


def list_runs(parent: str | Path) -> list[RunInfo]:
    """The runs directly inside `parent`, newest first."""
    return scan(parent)[0]


def latest(parent: str | Path) -> RunInfo:
    """The newest run whose training ran to its end (not interrupted, not diverged)."""
    for info in list_runs(parent):
        if info.finished:
            return info
    raise RunDirError(f"{parent}: holds no finished lstmcast run; train one first")


def prune(parent: str | Path, keep: int) -> tuple[list[Path], list[Path], list[str]]:
    """Delete all but the `keep` newest runs in `parent` (and never the newest finished one).

    Each run is pruned whole or not at all (`_remove`). Returns:
        (deleted runs, kept runs, notes: runs left alone (in use, or what could not be
        deleted), other files kept, directories skipped because their run.json does not read).
    """
    from lstmcast.run import locking

    if keep < 1:
        raise InputError(f"--keep {keep}: keep at least 1 run")
    runs, notes = scan(parent)
    notes = [n for n in notes if n.startswith("skipped ")]
    newest_finished = next((r.path for r in runs if r.finished), None)
    kept = [r.path for r in runs[:keep]]
    if newest_finished is not None and newest_finished not in kept:
        kept.append(newest_finished)
    deleted = []
    for run in runs:
        if run.path in kept:
            continue
        try:
            with locking.hold(run.path, 0.0, "run directory"):
                problem = _remove(run.path, notes)
        except BusyError:
            notes.append(f"{run.path}: in use by another lstmcast process; left alone")
            continue
        if problem is None:
            deleted.append(run.path)
        else:
            notes.append(f"{run.path}: left whole, not pruned: {problem}")
    return deleted, kept, notes


def _remove(run: Path, notes: list[str]) -> str | None:
    """Delete lstmcast's files of `run`, all of them or none: None when done, else why not.

    Every file is first moved into a hidden temporary directory beside the run (run.json
    first: from then on the directory is no run), and moved back if one cannot be; only
    then are they deleted. A directory or anything but a file at one of lstmcast's names
    was not written by lstmcast: the run is left whole, and the note names it.
    """
    try:
        entries = {item.name: item for item in run.iterdir()}
    except OSError as exc:
        return f"cannot list it ({exc.strerror})"
    own = [n for n in (RUN_JSON, *sorted(OWN_FILES - {RUN_JSON})) if n in entries]
    odd = [n for n in own if not (entries[n].is_symlink() or stat.S_ISREG(entries[n].lstat().st_mode))]
    if odd:
        return (f"{', '.join(odd)} {'is' if len(odd) == 1 else 'are'} not a file lstmcast wrote (a directory, FIFO or "
                "device); remove it by hand, then prune again")
    try:
        trash = Path(tempfile.mkdtemp(prefix=f".{run.name}.", suffix=".tmp", dir=run.parent))
    except OSError as exc:
        return f"cannot create a temporary directory in {run.parent} ({exc.strerror})"
    moved: list[str] = []
    try:
        for name in own:
            os.rename(run / name, trash / name)
            moved.append(name)
    except OSError as exc:
        for name in reversed(moved):  # put back what was moved: the run stays whole
            os.rename(trash / name, run / name)
        trash.rmdir()
        return f"cannot move {name} ({exc.strerror})"
    try:
        for name in moved:
            (trash / name).unlink()
        trash.rmdir()
    except OSError as exc:
        notes.append(f"{run}: pruned, but {trash} could not be deleted ({exc.strerror}); remove it by hand")
    left = sorted(p.name for p in run.iterdir())
    if left:
        notes.append(f"{run}: kept {left[:5]}, not written by lstmcast")
    else:
        run.rmdir()
    return None
