"""Run directories: weights as tensors only, everything else as JSON. Never a pickle.

A run directory holds:
    weights.safetensors  the network's tensors (loads without executing code)
    run.json             format version, configs, columns, frequency, scalers, series tails
    metrics.json         loss per epoch, best epoch, validation metrics

It is built in a hidden temporary directory beside its destination and renamed into
place, so a run directory is complete or absent.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lstmcast import __version__
from lstmcast.config import LEGACY_MODEL_FIELDS, ModelConfig, from_json_dict
from lstmcast.errors import RunDirError
from lstmcast.io import write_json

FORMAT_VERSION = 1
WEIGHTS = "weights.safetensors"
RUN_JSON = "run.json"
METRICS_JSON = "metrics.json"


@dataclass
class Run:
    """A loaded run: its metadata and the network's forward pass (numpy, no torch)."""

    path: Path
    meta: dict[str, Any]
    model: Any  # inference.NumpyForecaster

    @property
    def model_config(self) -> ModelConfig:
        return self.model.config


def is_run(path: Path) -> bool:
    return (path / RUN_JSON).is_file()


def save_run(run_dir: str | Path, state: dict[str, Any], meta: dict[str, Any], metrics: dict[str, Any],
             overwrite: bool = False) -> Path:
    """Write a complete run directory at `run_dir`, atomically."""
    from safetensors.torch import save_file

    target = Path(run_dir)
    if target.exists() and not target.is_dir():
        raise RunDirError(f"{target}: exists and is not a directory; choose another --run-dir")
    occupied = target.is_dir() and any(target.iterdir())
    if occupied and not overwrite:
        what = "an existing run" if is_run(target) else "a non-empty directory that is not an lstmcast run"
        raise RunDirError(f"{target}: is {what}; choose another --run-dir or pass --overwrite")
    target.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format_version": FORMAT_VERSION, "lstmcast_version": __version__, **meta}
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp / WEIGHTS))
        write_json(tmp / RUN_JSON, meta)
        write_json(tmp / METRICS_JSON, metrics)
        if not occupied:
            os.replace(tmp, target)  # an empty directory is replaced in one rename
        elif is_run(target):
            # Swap whole runs: the old one is ours to delete once the new one is in place.
            old = target.parent / f".{target.name}.old-{os.getpid()}"
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            # --overwrite on a foreign directory: add our files, delete nothing of theirs.
            for item in tmp.iterdir():
                os.replace(item, target / item.name)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{path}: missing; is this an lstmcast run directory? (train writes one)") from None
    except (OSError, UnicodeError, json.JSONDecodeError) as exc:
        raise RunDirError(f"{path}: unreadable or corrupt ({exc}); retrain or restore the run") from None
    if not isinstance(data, dict):
        raise RunDirError(f"{path}: corrupt (not a JSON object); retrain or restore the run")
    return data


def load_meta(run_dir: str | Path) -> dict[str, Any]:
    """Read and check run.json without touching the weights."""
    path = Path(run_dir)
    if not path.is_dir():
        raise RunDirError(f"{path}: run directory not found; pass the directory that train printed")
    meta = _read_json(path / RUN_JSON)
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


def load_run(run_dir: str | Path) -> Run:
    """Load a run directory: JSON metadata and tensors only, validated against the config."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    from lstmcast.inference import NumpyForecaster, expected_shapes

    path = Path(run_dir)
    meta = load_meta(path)
    try:
        config = from_json_dict(ModelConfig, {**LEGACY_MODEL_FIELDS, **meta["model"]})
        expected = expected_shapes(config)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise RunDirError(f"{path / RUN_JSON}: invalid model config ({exc}); retrain the run") from None
    weights = path / WEIGHTS
    if not weights.is_file():
        raise RunDirError(f"{weights}: missing; retrain or restore the run")
    try:
        state = load_file(str(weights))
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
    return Run(path=path, meta=meta, model=NumpyForecaster(config, state))
