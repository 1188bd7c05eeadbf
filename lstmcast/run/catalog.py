"""The runs in a directory: list them, find the newest finished one, prune old ones.

Only a directory directly inside the parent whose run.json reads as an lstmcast run
counts as a run; anything else is never touched. Pruning deletes only the files
lstmcast writes into a run and then the directory if that left it empty: whatever
else a user put in an old run stays where it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lstmcast.run.rundir import METRICS_JSON, OWN_FILES, RUN_JSON, load_meta, read_file
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


def _info(path: Path) -> RunInfo | None:
    try:
        record = load_meta(path)
    except RunDirError:
        return None
    try:  # a regular file of a plausible size only: a FIFO here must not hang `runs list`
        metrics = json.loads(read_file(path / METRICS_JSON).decode("utf-8"))
        metrics = metrics if isinstance(metrics, dict) else {}
    except (RunDirError, UnicodeError, ValueError, RecursionError):
        metrics = {}
    return RunInfo(path=path, created=record.created, stopped=metrics.get("stopped"),
                   best_epoch=metrics.get("best_epoch"), validation=metrics.get("validation"))


def list_runs(parent: str | Path) -> list[RunInfo]:
    """The runs directly inside `parent`, newest first."""
    parent = Path(parent)
    if not parent.is_dir():
        raise InputError(f"{parent}: directory not found; pass the directory that holds the runs")
    found = [info for child in parent.iterdir()
             if child.is_dir() and not child.is_symlink() and not child.name.startswith(".")
             and (info := _info(child)) is not None]
    return sorted(found, key=lambda r: (r.created, r.path.name), reverse=True)


def latest(parent: str | Path) -> RunInfo:
    """The newest run whose training ran to its end (not interrupted, not diverged)."""
    for info in list_runs(parent):
        if info.finished:
            return info
    raise RunDirError(f"{parent}: holds no finished lstmcast run; train one first")


def prune(parent: str | Path, keep: int) -> tuple[list[Path], list[Path], list[str]]:
    """Delete all but the `keep` newest runs in `parent` (and never the newest finished one).

    Returns:
        (deleted runs, kept runs, notes on runs left alone: in use, or holding other files).
    """
    from lstmcast.run import locking

    if keep < 1:
        raise InputError(f"--keep {keep}: keep at least 1 run")
    runs = list_runs(parent)
    newest_finished = next((r.path for r in runs if r.finished), None)
    kept = [r.path for r in runs[:keep]]
    if newest_finished is not None and newest_finished not in kept:
        kept.append(newest_finished)
    deleted, notes = [], []
    for run in runs:
        if run.path in kept:
            continue
        try:
            with locking.hold(run.path, 0.0, "run directory"):
                # run.json first: from that moment the directory is no longer a run.
                for name in (RUN_JSON, *sorted(OWN_FILES - {RUN_JSON})):
                    (run.path / name).unlink(missing_ok=True)
                left = sorted(p.name for p in run.path.iterdir())
                if left:
                    notes.append(f"{run.path}: kept {left[:5]}, not written by lstmcast")
                else:
                    run.path.rmdir()
        except BusyError:
            notes.append(f"{run.path}: in use by another lstmcast process; left alone")
            continue
        deleted.append(run.path)
    return deleted, kept, notes
