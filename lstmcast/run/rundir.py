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
exchange, so at every moment the path holds a complete run: the old or the new.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lstmcast import __version__
from lstmcast.config import LEGACY_MODEL_FIELDS, ModelConfig, from_json_dict
from lstmcast.errors import RunDirError
from lstmcast.run.atomic import clean_stale, exchange, fsync_dir, public_mode, temp_pattern

FORMAT_VERSION = 1
WEIGHTS = "weights.safetensors"
RUN_JSON = "run.json"
METRICS_JSON = "metrics.json"
CONFIG_TOML = "config.toml"
RESUME_TENSORS = "resume.safetensors"
RESUME_JSON = "resume.json"
FORECAST_CSV = "forecast.csv"
LOSS_PNG = "loss.png"
# What lstmcast itself writes into a run directory; anything else in it belongs to the user.
OWN_FILES = frozenset({WEIGHTS, RUN_JSON, METRICS_JSON, CONFIG_TOML, RESUME_TENSORS, RESUME_JSON, FORECAST_CSV,
                       LOSS_PNG})


@dataclass
class Run:
    """A loaded run: its metadata and the network's forward pass (numpy, no torch)."""

    path: Path
    meta: dict[str, Any]
    model: Any  # inference.NumpyForecaster
    correction: Any = None  # calibration of the quantiles [Q, H] in scaled units (intervals.py); None without

    @property
    def model_config(self) -> ModelConfig:
        return self.model.config


def is_run(path: Path) -> bool:
    return (path / RUN_JSON).is_file()


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
    """Whether `target` is occupied; RunDirError if it is and may not be replaced.

    Call it holding the run directory's lock: it may put back a run a killed writer left.
    """
    _recover(target)
    if target.exists() and not target.is_dir():
        raise RunDirError(f"{target}: exists and is not a directory; choose another --run-dir")
    occupied = target.is_dir() and any(target.iterdir())
    if occupied and not overwrite:
        what = "an existing run" if is_run(target) else "a non-empty directory that is not an lstmcast run"
        raise RunDirError(f"{target}: is {what}; choose another --run-dir or pass --overwrite")
    return occupied


def save_run(run_dir: str | Path, state: dict[str, Any], meta: dict[str, Any], metrics: dict[str, Any],
             overwrite: bool = False, extra: dict[str, bytes] | None = None) -> Path:
    """Write a complete run directory at `run_dir`, atomically.

    The caller holds the run directory's lock (`locking.hold`). `extra` maps more file
    names (config.toml, resume files) to their bytes. An existing run is replaced only
    with `overwrite`; files in it that lstmcast did not write are carried into the new run.
    """
    from safetensors.torch import save

    target = Path(run_dir)
    occupied = check_target(target, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target, OWN_FILES)  # left by a killed run; we hold the lock, so nobody owns them
    meta = {"format_version": FORMAT_VERSION, "lstmcast_version": __version__, **meta}
    files = {WEIGHTS: save({k: v.detach().cpu().contiguous() for k, v in state.items()}),
             METRICS_JSON: _json_bytes(metrics), **(extra or {})}
    files[RUN_JSON] = _json_bytes(meta)  # last: a directory is a run only once run.json is in it
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
    return target


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, allow_nan=False) + "\n").encode("utf-8")


def _parse_json(path: Path, raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeError, json.JSONDecodeError) as exc:
        raise RunDirError(f"{path}: unreadable or corrupt ({exc}); retrain or restore the run") from None
    if not isinstance(data, dict):
        raise RunDirError(f"{path}: corrupt (not a JSON object); retrain or restore the run")
    return data


def _read_bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise RunDirError(f"{path}: missing; {what}") from None
    except IsADirectoryError:
        raise RunDirError(f"{path}: is a directory; retrain or restore the run") from None
    except OSError as exc:
        raise RunDirError(f"{path}: unreadable ({exc.strerror}); check its permissions") from None


def _check_meta(path: Path, meta: dict[str, Any]) -> dict[str, Any]:
    version = meta.get("format_version")
    if not isinstance(version, int):
        raise RunDirError(f"{path / RUN_JSON}: corrupt (no format_version); retrain or restore the run")
    if version > FORMAT_VERSION:
        raise RunDirError(
            f"{path / RUN_JSON}: format version {version} is newer than this lstmcast reads "
            f"({FORMAT_VERSION}); upgrade lstmcast"
        )
    for key in ("model", "train", "data", "series"):
        if key not in meta:
            raise RunDirError(f"{path / RUN_JSON}: corrupt (no {key!r}); retrain or restore the run")
    return meta


def _meta_bytes(path: Path) -> bytes:
    if not path.is_dir():
        raise RunDirError(f"{path}: run directory not found; pass the directory that train printed")
    return _read_bytes(path / RUN_JSON, "is this an lstmcast run directory? (train writes one)")


def load_meta(run_dir: str | Path) -> dict[str, Any]:
    """Read and check run.json without touching the weights."""
    path = Path(run_dir)
    return _check_meta(path, _parse_json(path / RUN_JSON, _meta_bytes(path)))


def load_run(run_dir: str | Path) -> Run:
    """Load a run directory: JSON metadata and tensors only, validated against the config.

    run.json is read again after the weights: if a `train --overwrite` swapped the run
    in between, the pair is read once more, so metadata and weights always match.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load

    from lstmcast.model.numpy_forward import NumpyForecaster, expected_shapes
    from lstmcast.model.intervals import stored_correction

    path = Path(run_dir)
    weights = path / WEIGHTS
    for _attempt in range(5):
        raw_meta = _meta_bytes(path)
        meta = _check_meta(path, _parse_json(path / RUN_JSON, raw_meta))
        try:
            config = from_json_dict(ModelConfig, {**LEGACY_MODEL_FIELDS, **meta["model"]})
            expected = expected_shapes(config)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise RunDirError(f"{path / RUN_JSON}: invalid model config ({exc}); retrain the run") from None
        raw_weights = _read_bytes(weights, "retrain or restore the run")
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
    correction = stored_correction(meta, config, path / RUN_JSON)
    return Run(path=path, meta=meta, model=NumpyForecaster(config, state), correction=correction)
