"""Run directories: weights as tensors only, everything else as JSON. Never a pickle.

A run directory holds:
    weights.safetensors  the network's tensors (loads without executing code)
    run.json             format version, configs, columns, frequency, scalers, series tails
    metrics.json         loss per epoch, best epoch, validation metrics
    config.toml          the resolved `train` options; `lstmcast train --config` reads it
    loss.png             train and validation loss per epoch (when matplotlib is installed)
    resume.safetensors   only after an interrupted run: the training state at the last
    resume.json          completed epoch, for `lstmcast train --resume`

It is built in a hidden temporary directory beside its destination (every file fsynced)
and renamed into place; an existing run is swapped with the new one in one atomic
exchange, so at every moment the path holds a complete run: the old or the new. A run
directory given as a symbolic link is written where the link points; the link stays.

Reading one trusts nothing: only regular files of a plausible size are opened (a link to
/dev/zero, a FIFO nobody writes, a file of gigabytes are refused before a byte is read),
and run.json goes through `RunRecord.from_json`, which checks every field.
"""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lstmcast.config import ModelConfig
from lstmcast.errors import InputError, RunDirError
from lstmcast.run.atomic import clean_stale, exchange, fsync_dir, public_mode, real_target, temp_pattern
from lstmcast.run.record import FORMAT_VERSION, RUN_JSON, RunRecord

__all__ = ["FORMAT_VERSION", "RUN_JSON", "Run", "RunRecord", "check_target", "is_run", "load_meta",
           "load_run", "read_file", "save_run"]

WEIGHTS = "weights.safetensors"
METRICS_JSON = "metrics.json"
CONFIG_TOML = "config.toml"
RESUME_TENSORS = "resume.safetensors"
RESUME_JSON = "resume.json"
FORECAST_CSV = "forecast.csv"
ANOMALIES_CSV = "anomalies.csv"  # detect's output when no --output is given
LOSS_PNG = "loss.png"
# What lstmcast itself writes into a run directory; anything else in it belongs to the user.
OWN_FILES = frozenset({WEIGHTS, RUN_JSON, METRICS_JSON, CONFIG_TOML, RESUME_TENSORS, RESUME_JSON, FORECAST_CSV,
                       ANOMALIES_CSV, LOSS_PNG})


@dataclass
class Run:
    """A loaded run: its record (run.json) and the network's forward pass (numpy, no torch)."""

    path: Path
    record: RunRecord
    model: Any  # model.numpy_forward.NumpyForecaster
    correction: Any = None  # calibration of the quantiles [Q, H] in scaled units (intervals.py); None without

    @property
    def model_config(self) -> ModelConfig:
        return self.model.config


def is_run(path: Path) -> bool:
    return (path / RUN_JSON).is_file()


def holds_record(path: Path) -> bool:
    """Whether something is at `path`'s run.json, readable or not (a run that may be broken)."""
    return os.path.lexists(path / RUN_JSON)


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _link_user_files(old: Path, new: Path) -> None:
    """Hard-link the user's files of the old run into the new one before the swap.

    So they are in the run directory at every moment, whichever of the two it is.
    """
    for item in old.iterdir():
        if item.name not in OWN_FILES and item.is_file() and not item.is_symlink():
            try:
                os.link(item, new / item.name)
            except OSError:
                pass  # no hard links here: _retire moves it after the swap


def _retire(old: Path, new: Path) -> None:
    """Dispose of a replaced run: lstmcast's own files go, anything else ends up in `new`."""
    for item in old.iterdir():
        if item.name in OWN_FILES and item.is_file():
            item.unlink()
        elif (new / item.name).exists() and os.path.samefile(item, new / item.name):
            item.unlink()  # a second link of a file that is in the new run already
        elif not (new / item.name).exists():
            os.replace(item, new / item.name)
    try:
        old.rmdir()
    except OSError:
        pass  # something appeared that is not ours: leave it


def _recover(target: Path) -> None:
    """Put back a run that a writer killed between two renames left under a temporary name.

    Only where the filesystem has no atomic exchange (see `save_run`) can that happen.
    """
    if target.exists() or not target.parent.is_dir():
        return
    pattern = temp_pattern(target.name)
    runs = [d for d in target.parent.iterdir() if pattern.fullmatch(d.name) and d.is_dir() and is_run(d)]
    if runs:
        os.rename(max(runs, key=lambda d: (d / RUN_JSON).stat().st_mtime), target)


def check_target(target: Path, overwrite: bool) -> bool:
    """Whether `target` is occupied; InputError (exit 2: a usage error, the run itself is fine) if it
    is and may not be replaced without --overwrite.

    Call it holding the run directory's lock: it may put back a run a killed writer left.
    A symbolic link is followed: the run where it points is the one checked (and replaced).
    """
    target = real_target(target)
    _recover(target)
    if target.exists() and not target.is_dir():
        raise RunDirError(f"{target}: exists and is not a directory; choose another --run-dir")
    occupied = target.is_dir() and any(target.iterdir())
    if occupied and not overwrite:
        what = "an existing run" if is_run(target) else "a non-empty directory that is not an lstmcast run"
        raise InputError(f"{target}: is {what}; choose another --run-dir or pass --overwrite")
    return occupied


def save_run(run_dir: str | Path, state: dict[str, Any], record: RunRecord, metrics: dict[str, Any],
             overwrite: bool = False, extra: dict[str, bytes] | None = None) -> Path:
    """Write a complete run directory at `run_dir`, atomically.

    The caller holds the run directory's lock (`locking.hold`). `extra` maps more file
    names (config.toml, resume files) to their bytes. An existing run is replaced only
    with `overwrite`; files in it that lstmcast did not write are carried into the new run.
    """
    from safetensors.torch import save

    target = real_target(run_dir)  # a link to a run: replace the run there, keep the link
    occupied = check_target(target, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target, OWN_FILES)  # left by a killed run; we hold the lock, so nobody owns them
    files = {WEIGHTS: save({k: v.detach().cpu().contiguous() for k, v in state.items()}),
             METRICS_JSON: _json_bytes(metrics), **(extra or {})}
    files[RUN_JSON] = _json_bytes(record.to_json())  # last: a directory is a run only once run.json is in it
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        for name, data in files.items():
            _write_file(tmp / name, data)
        fsync_dir(tmp)
        public_mode(tmp, directory=True)
        if not occupied:
            os.replace(tmp, target)  # an empty directory is replaced in one rename
        elif is_run(target):
            _link_user_files(target, tmp)
            if not exchange(tmp, target):  # no atomic exchange here: two renames, a moment apart
                old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
                os.replace(target, old)
                os.replace(tmp, target)
                tmp = old
            _retire(tmp, target)  # tmp now holds the old run
        else:
            # --overwrite on a foreign directory: add our files, run.json last, delete nothing of theirs.
            for name in files:
                os.replace(tmp / name, target / name)
        fsync_dir(target.parent)
    finally:
        if tmp.exists():
            clean_stale(target, OWN_FILES)
    return Path(run_dir)


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, allow_nan=False) + "\n").encode("utf-8")


def _parse_json(path: Path, raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeError, json.JSONDecodeError) as exc:
        raise RunDirError(f"{path}: unreadable or corrupt ({exc}); retrain or restore the run") from None
    except RecursionError:
        raise RunDirError(f"{path}: corrupt (nested too deeply to be a run record); retrain or restore the run") from None
    if not isinstance(data, dict):
        raise RunDirError(f"{path}: corrupt (not a JSON object); retrain or restore the run")
    return data


MAX_RUN_JSON_BYTES = 2**30  # a million series with long tails stays far below
# Never block in open(): on a FIFO nobody writes, a plain open for reading waits forever.
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def read_file(path: Path, what: str = "retrain or restore the run", limit: int = MAX_RUN_JSON_BYTES) -> bytes:
    """A run file's bytes: a regular file of at most `limit` bytes.

    The file is opened without blocking and checked through its open descriptor, so a device,
    FIFO or directory (or one swapped in after a check) is refused before anything is read.
    RunDirError (exit 3) names the file; `what` says what to do when it is missing.
    """
    try:
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        raise RunDirError(f"{path}: missing; {what}") from None
    except IsADirectoryError:
        raise RunDirError(f"{path}: is a directory; retrain or restore the run") from None
    except OSError as exc:
        raise RunDirError(f"{path}: unreadable ({exc.strerror}); check its permissions") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise RunDirError(f"{path}: is a directory; retrain or restore the run")
        if not stat.S_ISREG(info.st_mode):
            raise RunDirError(f"{path}: not a regular file (a device, FIFO or socket); retrain or restore the run")
        if info.st_size > limit:
            raise RunDirError(f"{path}: {info.st_size} bytes, more than an lstmcast file of this run can hold "
                              f"({limit}); retrain or restore the run")
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise RunDirError(f"{path}: unreadable ({exc.strerror}); retrain or restore the run") from None
    if len(data) > limit:  # it grew since fstat
        raise RunDirError(f"{path}: more than {limit} bytes; retrain or restore the run")
    return data


def _read_bytes(path: Path, what: str) -> bytes:
    return read_file(path, what)


def _meta_bytes(path: Path) -> bytes:
    if not path.is_dir():
        raise RunDirError(f"{path}: run directory not found; pass the directory that train printed")
    return _read_bytes(path / RUN_JSON, "is this an lstmcast run directory? (train writes one)")


def load_meta(run_dir: str | Path) -> RunRecord:
    """Read and check run.json without touching the weights."""
    path = Path(run_dir)
    return RunRecord.from_json(_parse_json(path / RUN_JSON, _meta_bytes(path)), path / RUN_JSON)


def load_run(run_dir: str | Path) -> Run:
    """Load a run directory: its record and tensors only, validated against each other.

    run.json is read again after the weights: if a `train --overwrite` swapped the run
    in between, the pair is read once more, so metadata and weights always match.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load

    from lstmcast.model.intervals import stored_correction
    from lstmcast.model.ensemble import forecaster
    from lstmcast.model.shapes import expected_shapes

    path = Path(run_dir)
    weights = path / WEIGHTS
    for _attempt in range(5):
        raw_meta = _meta_bytes(path)
        record = RunRecord.from_json(_parse_json(path / RUN_JSON, raw_meta), path / RUN_JSON)
        try:
            expected = expected_shapes(record.model)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise RunDirError(f"{path / RUN_JSON}: invalid model config ({exc}); retrain the run") from None
        raw_weights = _read_weights(weights, expected)
        if _meta_bytes(path) == raw_meta:
            break
    try:
        state = load(raw_weights)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise RunDirError(f"{weights}: not a valid safetensors file ({exc}); retrain or restore the run") from None
    found = {name: tuple(tensor.shape) for name, tensor in state.items()}
    if found != expected:
        wrong = sorted(set(found) ^ set(expected)) or sorted(k for k in expected if found[k] != expected[k])
        name = wrong[0]
        raise RunDirError(
            f"{weights}: tensors do not match the model config in {RUN_JSON} ({name}: "
            f"found {found.get(name)}, expected {expected.get(name)}); retrain the run"
        )
    bad = next((name for name, tensor in state.items() if not np.isfinite(tensor).all()), None)
    if bad is not None:
        raise RunDirError(f"{weights}: tensor {bad} holds values that are not finite numbers; retrain the run")
    correction = stored_correction(record.intervals, record.model, path / RUN_JSON)
    return Run(path=path, record=record, model=forecaster(record.model, state), correction=correction)


def _read_weights(path: Path, expected: dict[str, tuple[int, ...]]) -> bytes:
    """The weights file's bytes: a regular file no larger than the config's tensors could make it.

    A link to /dev/zero, a FIFO nobody writes or a file of many gigabytes is refused
    before a byte is read.
    """
    return read_file(path, "retrain or restore the run", tensor_bytes(expected))


def tensor_bytes(expected: dict[str, tuple[int, ...]], copies: int = 1) -> int:
    """The most bytes a safetensors file of these tensors can take: float64 values, plus the
    header (names, dtypes, shapes); `copies` sets of them (the resume state holds several)."""
    return copies * (8 * sum(math.prod(shape) for shape in expected.values()) + 256 * len(expected)) + 64 * 1024
