"""The training loop: Adam, clipped gradients, early stopping on validation loss.

Plain on purpose: seed once, pick the device once, gather batches by index from one
flat tensor, keep the best weights by validation loss, and stop cleanly on Ctrl-C.
At every epoch boundary the state is captured (`resume.capture`) so an interrupted run
can be resumed exactly; a NaN or infinite loss stops training with the best weights.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from lstmcast import resume
from lstmcast.config import Device, Loss, Precision, TrainConfig
from lstmcast.errors import InputError
from lstmcast.progress import EpochInfo, ProgressFn
from lstmcast.windows import gather

MIN_BATCHES_PER_EPOCH = 20  # small data: an epoch draws at least this many batches
# Large data: an epoch stops after this many batches, so validation, early stopping and
# progress come at a useful cadence (M4 Hourly has ~1,000 batches in one pass).
MAX_BATCHES_PER_EPOCH = 200


@dataclass
class TrainResult:
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_loss: float = math.inf
    steps: int = 0
    train_windows: int = 0
    train_seconds: float = 0.0
    stopped: str = "completed"  # completed | early_stopping | max_steps | interrupted | diverged
    precision: str = "fp32"
    error: str = ""  # why training diverged
    state: resume.TrainState | None = None  # at the last completed epoch; kept when interrupted


class _Diverged(Exception):
    """A NaN or infinite loss: training stops with the best weights so far."""


def pick_device(choice: Device) -> torch.device:
    """cuda when asked (or when auto finds one), else cpu."""
    if choice is Device.cuda and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available; use --device cpu or auto")
    if choice is Device.cuda or (choice is Device.auto and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def use_bf16(choice: Precision, device: torch.device) -> bool:
    """Whether training's forward pass runs under bfloat16 autocast."""
    if device.type == "cuda":
        supported = torch.cuda.is_bf16_supported()
    else:
        supported = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if choice is Precision.bf16 and not supported:
        raise InputError(f"--precision bf16: not supported on this {device.type}; use fp32 or auto")
    return choice is Precision.bf16 or (choice is Precision.auto and supported)


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    return torch.Generator().manual_seed(seed)


def loss_fn(kind: Loss) -> nn.Module:
    return {Loss.mae: nn.L1Loss(), Loss.mse: nn.MSELoss(), Loss.huber: nn.HuberLoss(delta=1.0)}[kind]


def evaluate_loss(model: nn.Module, flat: torch.Tensor, origin: torch.Tensor, lookback: int,
                  horizon: int, criterion: nn.Module, batch: int = 512) -> float:
    """Mean loss over the windows at `origin` (no gradients)."""
    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for lo in range(0, len(origin), batch):
            x, y = gather(flat, origin[lo:lo + batch], lookback, horizon)
            total += criterion(model(x), y).item() * len(x)
            count += len(x)
    return total / max(count, 1)


def fit(model: nn.Module, flat: np.ndarray, train_origin: np.ndarray, val_origin: np.ndarray,
        lookback: int, horizon: int, cfg: TrainConfig, device: torch.device,
        progress: ProgressFn | None = None, start: resume.TrainState | None = None) -> TrainResult:
    """Train `model` in place on windows of the scaled `flat` array; restore the best weights.

    Args:
        flat: all scaled series concatenated, float32 [T].
        train_origin, val_origin: flat positions of window origins (see `windows`).
        start: a state saved by an interrupted run; training goes on from its epoch.
    """
    generator = seed_everything(cfg.seed)
    model.to(device)
    data = torch.from_numpy(flat).to(device)
    train_idx = torch.from_numpy(train_origin).to(device)
    val_idx = torch.from_numpy(val_origin).to(device)
    criterion = loss_fn(cfg.loss)
    bf16 = use_bf16(cfg.precision, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    n_train = len(train_idx)
    size = min(cfg.batch_size, n_train)
    result = TrainResult(precision="bf16" if bf16 else "fp32")
    best_state = copy.deepcopy(model.state_dict())
    bad_epochs, first, finished, before = 0, 1, None, 0.0
    if start is not None:
        resume.restore(start, model, optimizer, generator)
        best_state = copy.deepcopy(start.best)
        result.history, result.best_epoch, result.best_val_loss = list(start.history), start.best_epoch, start.best_val_loss
        result.steps, result.train_windows, bad_epochs = start.steps, start.train_windows, start.bad_epochs
        first, finished, before = start.epoch + 1, start.finished, start.train_seconds
        result.stopped = finished or result.stopped
    started = time.monotonic() - before
    result.state = resume.capture(model, optimizer, generator, best_state, result, bad_epochs, first - 1,
                                  finished, before)
    try:
        for epoch in range(first, cfg.epochs + 1 if finished is None else first):
            model.train()
            # A pass over every window in random order; small data draws with replacement.
            if n_train >= size * MIN_BATCHES_PER_EPOCH:
                order = torch.randperm(n_train, generator=generator)[: size * MAX_BATCHES_PER_EPOCH]
            else:
                order = torch.randint(n_train, (size * MIN_BATCHES_PER_EPOCH,), generator=generator)
            epoch_loss, epoch_count = 0.0, 0
            for lo in range(0, len(order), size):
                x, y = gather(data, train_idx[order[lo:lo + size].to(device)], lookback, horizon)
                # bf16 matrix products where the hardware has them; the loss in float32.
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    pred = model(x)
                loss = criterion(pred.float(), y)
                if not torch.isfinite(loss):
                    raise _Diverged(f"training diverged at epoch {epoch} (loss is {loss.item()})")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                # Clipping keeps one spiky window from throwing the LSTM's recurrent weights off.
                nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
                optimizer.step()
                epoch_loss += loss.item() * len(x)
                epoch_count += len(x)
                result.steps += 1
                result.train_windows += len(x)
                if cfg.max_steps is not None and result.steps >= cfg.max_steps:
                    break
            val_loss = evaluate_loss(model, data, val_idx, lookback, horizon, criterion)
            if not math.isfinite(val_loss):
                raise _Diverged(f"training diverged at epoch {epoch} (validation loss is {val_loss})")
            train_loss = epoch_loss / max(epoch_count, 1)
            result.history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss})
            if val_loss < result.best_val_loss:
                result.best_val_loss, result.best_epoch, bad_epochs = val_loss, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                bad_epochs += 1
            if cfg.max_steps is not None and result.steps >= cfg.max_steps:
                finished = "max_steps"
            elif bad_epochs >= cfg.patience:
                finished = "early_stopping"
            result.state = resume.capture(model, optimizer, generator, best_state, result, bad_epochs, epoch,
                                          finished, time.monotonic() - started)
            if progress is not None:
                progress(EpochInfo(epoch, cfg.epochs, train_loss, val_loss, result.best_epoch,
                                   time.monotonic() - started))
            if finished is not None:
                result.stopped = finished
                break
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM: keep what was learned so far as a usable run, and the state to resume it.
        result.stopped = "interrupted"
    except _Diverged as exc:
        # Keep the best weights of the epochs before: NaN weights would poison every forecast.
        result.stopped, result.error = "diverged", str(exc)
    result.train_seconds = time.monotonic() - started
    model.load_state_dict(best_state)
    model.eval()
    return result
