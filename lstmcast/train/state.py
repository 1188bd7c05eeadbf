"""Resumable training state, saved without pickle: tensors as safetensors, the rest as JSON.

At the end of every epoch `fit` captures a `TrainState`: the weights, Adam's moment
estimates and step counts, the best weights so far, early-stopping counters, the loss
history, and the random states (torch's global generator, the batch-order generator,
numpy's). When training is interrupted, the last one is written into the run directory
as resume.safetensors + resume.json; `train --resume RUN_DIR` restores it and replays the
remaining epochs, so the result is bit-identical to a run that was never interrupted
(same seed, CPU). The learning-rate schedule (`training.lr_at`) is a pure function of
the optimiser step count, which is restored, so it needs no state of its own.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from lstmcast.data import frames
from lstmcast.errors import RunDirError
from lstmcast.train.adam import Adam

if TYPE_CHECKING:
    from lstmcast.run.record import RunRecord

STATE_VERSION = 1


@dataclass
class TrainState:
    epoch: int  # completed epochs
    steps: int
    train_windows: int
    train_seconds: float
    best_epoch: int
    best_val_loss: float
    bad_epochs: int
    finished: str | None  # the stop reason if training had already ended at this epoch
    history: list[dict[str, float]]
    model: dict[str, torch.Tensor]
    best: dict[str, torch.Tensor]
    optimizer: dict[str, torch.Tensor]  # "param_index.key" -> tensor
    torch_rng: torch.Tensor
    batch_rng: torch.Tensor
    numpy_rng: dict[str, Any] = field(default_factory=dict)
    member: int = 0  # the ensemble member being trained (members before it are in the run's weights)


def _copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


def capture(model: torch.nn.Module, optimizer: Adam, generator: torch.Generator,
            best: dict[str, torch.Tensor], result: Any, bad_epochs: int, epoch: int,
            finished: str | None, elapsed: float) -> TrainState:
    """Everything `fit` needs to go on after `epoch` exactly as if it had never stopped."""
    opt: dict[str, torch.Tensor] = {}
    for index, slots in optimizer.state_slots().items():
        for key, value in slots.items():
            opt[f"{index}.{key}"] = value.detach().to("cpu", copy=True)
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return TrainState(
        epoch=epoch, steps=result.steps, train_windows=result.train_windows, train_seconds=elapsed,
        best_epoch=result.best_epoch, best_val_loss=result.best_val_loss, bad_epochs=bad_epochs,
        finished=finished, history=[dict(h) for h in result.history], model=_copy(model.state_dict()),
        best=_copy(best), optimizer=opt, torch_rng=torch.get_rng_state(), batch_rng=generator.get_state(),
        numpy_rng={"kind": kind, "keys": [int(k) for k in keys], "pos": int(pos), "has_gauss": int(has_gauss),
                   "gauss": float(gauss)},
    )


def restore(state: TrainState, model: torch.nn.Module, optimizer: Adam,
            generator: torch.Generator) -> None:
    """Put model, optimizer and random generators back where `capture` found them."""
    from lstmcast.run.rundir import RESUME_TENSORS

    try:
        model.load_state_dict(state.model)
        slots: dict[int, dict[str, torch.Tensor]] = {}
        for name, value in state.optimizer.items():
            index, key = name.split(".", 1)
            slots.setdefault(int(index), {})[key] = value.clone()
        optimizer.load_slots(slots)
        torch.set_rng_state(state.torch_rng)
        generator.set_state(state.batch_rng)
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunDirError(f"{RESUME_TENSORS}: does not match the run's model ({detail}); train anew") from None
    if state.numpy_rng:
        r = state.numpy_rng
        np.random.set_state((r["kind"], np.array(r["keys"], dtype=np.uint32), r["pos"], r["has_gauss"], r["gauss"]))


def file_digest(path: Path) -> str:
    """The data file's SHA-256; "" for a pipe, which is gone once read (such a run cannot be resumed)."""
    if not path.is_file():
        return ""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _data_record(data: Any) -> dict[str, Any]:
    """What resume checks the data by: a file's path and hash, or a DataFrame's hash."""
    if frames.is_frame(data):
        return {"path": None, "frame": True, "sha256": frames.digest(data)}
    return {"path": str(Path(data).resolve()), "sha256": file_digest(Path(data))}


def to_files(state: TrainState, data: Any) -> dict[str, bytes]:
    """resume.safetensors and resume.json for a run directory (`data`: the file or DataFrame trained on)."""
    from safetensors.torch import save

    from lstmcast.run.rundir import RESUME_JSON, RESUME_TENSORS

    tensors = {f"model.{k}": v for k, v in state.model.items()}
    tensors.update({f"best.{k}": v for k, v in state.best.items()})
    tensors.update({f"optimizer.{k}": v for k, v in state.optimizer.items()})
    tensors["rng.torch"] = state.torch_rng
    tensors["rng.batch"] = state.batch_rng
    info = {
        "state_version": STATE_VERSION, "epoch": state.epoch, "steps": state.steps,
        "train_windows": state.train_windows, "train_seconds": state.train_seconds,
        "best_epoch": state.best_epoch,
        "best_val_loss": state.best_val_loss if math.isfinite(state.best_val_loss) else None,
        "bad_epochs": state.bad_epochs, "finished": state.finished, "history": state.history,
        "numpy_rng": state.numpy_rng,
        **({"member": state.member} if state.member else {}),
        "data": _data_record(data),
    }
    return {RESUME_TENSORS: save({k: v.contiguous() for k, v in tensors.items()}),
            RESUME_JSON: (json.dumps(info, indent=1, allow_nan=False) + "\n").encode("utf-8")}


# resume.safetensors holds the weights, the best weights and Adam's two moments: four sets.
RESUME_COPIES = 4
MAX_RESUME_JSON_BYTES = 64 * 2**20  # the loss history of a million epochs stays below


def read(run_dir: Path, model: Any = None) -> tuple[TrainState, dict[str, Any]]:
    """The saved state of an interrupted run, and its resume.json; RunDirError if unusable.

    Like the run's own files, both are read only as regular files of a plausible size (the
    tensors of `model`, a ModelConfig, bound resume.safetensors): a link to /dev/zero or a
    FIFO is refused before a byte is read.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    from lstmcast.run.rundir import MAX_RUN_JSON_BYTES, RESUME_JSON, RESUME_TENSORS, read_file, tensor_bytes

    json_path, tensor_path = run_dir / RESUME_JSON, run_dir / RESUME_TENSORS
    if not os.path.lexists(json_path) and not os.path.lexists(tensor_path):
        raise RunDirError(
            f"{run_dir}: no resume state ({RESUME_JSON}); only a run stopped by Ctrl-C or SIGTERM can be resumed"
        )
    raw = read_file(json_path, "train anew (it comes with resume.safetensors)", MAX_RESUME_JSON_BYTES)
    try:
        info = json.loads(raw.decode("utf-8"))
        if not isinstance(info, dict):
            raise TypeError("not a JSON object")
    except (UnicodeError, ValueError, TypeError) as exc:
        raise RunDirError(f"{json_path}: unreadable or corrupt ({exc}); train anew") from None
    except RecursionError:
        raise RunDirError(f"{json_path}: corrupt (nested too deeply); train anew") from None
    version = info.get("state_version", STATE_VERSION + 1)
    if isinstance(version, bool) or not isinstance(version, int) or version > STATE_VERSION:
        raise RunDirError(f"{json_path}: state version {version!r} is not one this lstmcast reads "
                          f"({STATE_VERSION}); train anew or upgrade lstmcast")
    limit = MAX_RUN_JSON_BYTES
    if model is not None:
        from lstmcast.model.shapes import expected_shapes

        limit = tensor_bytes(expected_shapes(model), RESUME_COPIES) + 64 * 1024  # + the random generators' states, step counts
    raw = read_file(tensor_path, "train anew (it comes with resume.json)", limit)
    try:
        tensors = load(raw)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise RunDirError(f"{tensor_path}: not a valid safetensors file ({exc}); train anew") from None
    part = lambda prefix: {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    try:
        best_val = info["best_val_loss"]
        state = TrainState(
            epoch=int(info["epoch"]), steps=int(info["steps"]), train_windows=int(info["train_windows"]),
            train_seconds=float(info["train_seconds"]), best_epoch=int(info["best_epoch"]),
            best_val_loss=math.inf if best_val is None else float(best_val), bad_epochs=int(info["bad_epochs"]),
            finished=info["finished"], history=list(info["history"]), model=part("model."), best=part("best."),
            optimizer=part("optimizer."), torch_rng=tensors["rng.torch"], batch_rng=tensors["rng.batch"],
            numpy_rng=dict(info["numpy_rng"]), member=int(info.get("member", 0)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RunDirError(f"{json_path}: corrupt ({type(exc).__name__}: {exc}); train anew") from None
    return state, info


def load(run_dir: Path, frame: Any = None) -> tuple[Any, RunRecord, TrainState]:
    """(data file or DataFrame, the run's record (run.json, read once), state) to resume `run_dir` with.

    `frame`: the DataFrame a run trained on a DataFrame was trained on, given again.
    Raises RunDirError when the run holds no usable state, InputError when its data
    is gone or changed since (the result would no longer be the uninterrupted one).
    """
    from lstmcast.errors import InputError
    from lstmcast.run.rundir import RESUME_JSON, load_meta

    record = load_meta(run_dir)
    state, info = read(run_dir, record.model)
    if info.get("data", {}).get("frame") if isinstance(info.get("data"), dict) else False:
        if not frames.is_frame(frame):
            raise InputError(f"run {run_dir} was trained on a DataFrame; pass it again: resume(run_dir, data=frame)")
        if frames.digest(frame) != info["data"].get("sha256"):
            raise InputError(f"the DataFrame differs from the one run {run_dir} was trained on; train anew to use it")
        return frame, record, state
    try:
        source, digest = Path(info["data"]["path"]), info["data"]["sha256"]
    except (KeyError, TypeError, ValueError) as exc:
        raise RunDirError(f"{run_dir / RESUME_JSON}: cannot resume from it ({type(exc).__name__}: {exc})") from None
    if not source.is_file():
        raise InputError(f"{source}: the data of run {run_dir} is gone; restore it to resume")
    if file_digest(source) != digest:
        raise InputError(f"{source}: changed since run {run_dir} was interrupted; train anew to use the new data")
    return source, record, state
