"""The training loop: Adam, clipped gradients, early stopping on validation loss.

Plain on purpose: seed once, pick the device once, gather batches by index from one
flat tensor, keep the best weights by validation loss, and stop cleanly on Ctrl-C.
At every epoch boundary the state is captured (`train_state.capture`) so an interrupted run
can be resumed exactly; a NaN or infinite loss stops training with the best weights.
"""

from __future__ import annotations

import copy
import math
import time
from functools import partial
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from lstmcast.train import state as train_state
from lstmcast.train.adam import Adam
from lstmcast.train.defaults import DEFAULT_PATIENCE
from lstmcast.config import Loss, Schedule, TrainConfig
from lstmcast.train.distributed import Dist, current
from lstmcast.train.device import use_bf16
from lstmcast.train.progress import EpochInfo, ProgressFn
from lstmcast.model.quantiles import pinball, pinball_loss
from lstmcast.data.windows import OriginLookup, TrainOrigins, gather

MIN_BATCHES_PER_EPOCH = 20  # small data: an epoch draws at least this many batches
# Large data: an epoch stops after this many batches, so validation, early stopping and
# progress come at a useful cadence (M4 Hourly has ~1,000 sequences of 256 in one pass).
# With forking sequences a batch trains up to K = 48 origins per sequence, so 20 epochs of
# 50 batches (1,000 steps) see every origin many times over; benchmarks/RESULTS.md has the
# accuracy and time this budget buys on M4.
MAX_BATCHES_PER_EPOCH = 50


@dataclass
class TrainResult:
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_loss: float = math.inf
    steps: int = 0
    train_windows: int = 0
    train_seconds: float = 0.0
    stopped: str = "completed"  # completed | early_stopping | max_steps | time_limit | interrupted | diverged
    precision: str = "fp32"
    error: str = ""  # why training diverged
    state: train_state.TrainState | None = None  # at the last completed epoch; kept when interrupted


def _predict(model: nn.Module, x: torch.Tensor, cov: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Point forecasts [B, K, H] from every origin, and quantiles [B, K, H, Q] with a quantile head.

    Without one it is `forward_origins`, the same call as before quantiles existed.
    """
    if getattr(model, "qhead", None) is None:
        return model.forward_origins(x, cov), None
    return model.forward_all(x, cov)


class _Origins(nn.Module):
    """`_predict` as `forward`, so that DistributedDataParallel's hooks see the call."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, cov: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        return _predict(self.model, x, cov)


class _Diverged(Exception):
    """A NaN or infinite loss: training stops with the best weights so far."""


def epoch_draws(cfg: TrainConfig, n_train: int, size: int) -> int:
    """Sequences one epoch draws: `epoch_steps` global batches, or the rule of runs written before it
    (a pass over the training windows, at least MIN and at most MAX_BATCHES_PER_EPOCH batches)."""
    if cfg.epoch_steps is not None:
        return cfg.epoch_steps * size
    if n_train >= size * MIN_BATCHES_PER_EPOCH:
        return min(n_train, size * MAX_BATCHES_PER_EPOCH)
    return size * MIN_BATCHES_PER_EPOCH


def planned_steps(cfg: TrainConfig, n_train: int, size: int) -> int:
    """Optimiser steps training will take if it does not stop early."""
    total = cfg.epochs * -(-epoch_draws(cfg, n_train, size) // size)
    return min(total, cfg.max_steps) if cfg.max_steps is not None else total


def lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    """Learning rate of optimiser step `step` (0-based) out of `total`: a pure function of the step."""
    if cfg.schedule is Schedule.constant:
        return cfg.lr
    floor = 0.1
    return cfg.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step / max(total, 1), 1.0))))


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    return torch.Generator().manual_seed(seed)


def loss_fn(kind: Loss) -> nn.Module:
    return {Loss.mae: nn.L1Loss(), Loss.mse: nn.MSELoss(), Loss.huber: nn.HuberLoss(delta=1.0)}[kind]


def elementwise_loss(kind: Loss) -> nn.Module:
    """The same loss without reduction, for masking targets out."""
    return {Loss.mae: nn.L1Loss(reduction="none"), Loss.mse: nn.MSELoss(reduction="none"),
            Loss.huber: nn.HuberLoss(reduction="none", delta=1.0)}[kind]


def gather_forking(flat: torch.Tensor, valid: torch.Tensor, start: torch.Tensor, lookback: int,
                   horizon: int, forking: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sequences for forking-sequence training, starting at origin positions `start`.

    Returns x [B, L + K - 1], targets y [B, K, H] and mask [B, K]: origin k of a
    sequence counts only if it is itself a training origin (`valid[start + k]`), so
    targets never reach into the validation part or the next series. The LSTM is causal,
    so inputs past a masked origin only feed masked outputs.
    """
    last = len(flat) - 1
    x_idx = start.unsqueeze(1) + torch.arange(-lookback, forking - 1, device=flat.device)
    y_idx = (start.view(-1, 1, 1) + torch.arange(forking, device=flat.device).view(1, -1, 1)
             + torch.arange(horizon, device=flat.device).view(1, 1, -1))
    o_idx = (start.unsqueeze(1) + torch.arange(forking, device=flat.device)).clamp_max(last)
    return flat[x_idx.clamp_max(last)], flat[y_idx.clamp_max(last)], valid[o_idx]


def gather_cov(cov: torch.Tensor | None, start: torch.Tensor, lookback: int, span: int) -> torch.Tensor | None:
    """Covariate channels [B, L + span, C] from L steps before each origin in `start` (None: none)."""
    if cov is None:
        return None
    idx = start.unsqueeze(1) + torch.arange(-lookback, span, device=cov.device)
    return cov[idx.clamp_max(len(cov) - 1)]


def evaluate_loss(model: nn.Module, flat: torch.Tensor, origin: torch.Tensor, lookback: int,
                  horizon: int, criterion: nn.Module, batch: int = 512, dist: Dist | None = None,
                  cov: torch.Tensor | None = None) -> float:
    """Mean loss over the windows at `origin` (no gradients); under torchrun each rank
    scores its share and the sums are added up, so every rank gets the same number."""
    model.eval()
    total, count = 0.0, 0
    if dist is not None:
        origin = dist.share(origin)
    with torch.inference_mode():
        for lo in range(0, len(origin), batch):
            x, y = gather(flat, origin[lo:lo + batch], lookback, horizon)
            c = gather_cov(cov, origin[lo:lo + batch], lookback, horizon)
            point, quant = model.forward_all(x, c)
            loss = criterion(point[:, -1], y)
            if quant is not None:  # the quantile head's pinball loss counts for early stopping too
                loss = loss + pinball_loss(quant[:, -1], y, model.levels)
            total += loss.item() * len(x)
            count += len(x)
    if dist is not None:
        total, count = dist.sum([total, count])
    return total / max(count, 1)


@dataclass
class _Batches:
    """What every training step reads: the data on the device and how to draw and score batches."""

    data: torch.Tensor  # [T] scaled series
    covs: torch.Tensor | None  # [T, C] covariate channels
    valid: torch.Tensor  # [T] bool: flat positions that are training origins
    train_idx: OriginLookup
    size: int  # the global batch
    per_element: nn.Module
    dist: Dist | None
    on_step: Any = None  # progress.on_step(done, planned, elapsed), where the display has one
    started: float = 0.0  # time.monotonic() when training began (less the seconds of a resumed run)
    offsets: torch.Tensor | None = None  # [S] where each series starts in data, with `weight`
    weight: torch.Tensor | None = None  # [S] per-series loss weights (--mase-weight), None: all 1

    def weigh(self, err: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        """Elementwise errors [B, K, H] times the weight of the series of each origin start + k."""
        if self.weight is None:
            return err
        pos = start.unsqueeze(1) + torch.arange(err.shape[1], device=start.device)
        series = torch.searchsorted(self.offsets, pos, right=True) - 1
        return err * self.weight[series].unsqueeze(-1)


def _epoch_order(n_train: int, draws: int, generator: torch.Generator) -> torch.Tensor:
    """The training origins of one epoch in random order: a random subset of them when there are
    at least `draws`, else `draws` drawn with replacement."""
    if n_train >= draws:
        # int32 where it counts them: the same permutation as int64, at half the memory;
        # the part used is copied out so the whole permutation is not held through the epoch.
        dtype = torch.int32 if n_train < 2**31 else torch.int64
        return torch.randperm(n_train, generator=generator, dtype=dtype)[:draws].clone()
    return torch.randint(n_train, (draws,), generator=generator)


def _share_loss(err: torch.Tensor, mask: torch.Tensor, horizon: int, dist: Dist | None
                ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(loss to backpropagate, loss to report, targets used) of a batch's masked elementwise errors.

    Under torchrun each rank holds a share of the global batch: its sum is divided by the
    global count and multiplied by the world size, so DDP's gradient average is exactly the
    gradient of the global batch's mean loss.
    """
    weight = mask.unsqueeze(-1).float()
    if dist is None:
        loss = (err * weight).sum() / (weight.sum() * horizon)
        return loss, loss, int(mask.sum())
    part = (err * weight).sum()
    total, count = dist.sum([part.item(), float(mask.sum())])
    return part * (dist.world / max(count * horizon, 1.0)), torch.tensor(total / max(count * horizon, 1.0)), int(count)


def _train_epoch(net: Any, model: nn.Module, optimizer: Adam, b: _Batches, order: torch.Tensor,
                 cfg: TrainConfig, lookback: int, horizon: int, total_steps: int, bf16: bool, epoch: int,
                 result: TrainResult, device: torch.device, deadline: float | None = None) -> tuple[float, bool]:
    """One epoch of optimiser steps over `order`: (mean training loss, whether the deadline passed).

    It ends early at max_steps, or when `time.monotonic()` passes `deadline` (under torchrun,
    when it passes on any rank: every rank stops after the same step).
    """
    epoch_loss, epoch_count, late = 0.0, 0, False
    for lo in range(0, len(order), b.size):
        batch = order[lo:lo + b.size]
        start = b.train_idx((b.dist.share(batch) if b.dist else batch).to(device))
        x, y, mask = gather_forking(b.data, b.valid, start, lookback, horizon, cfg.forking)
        # bf16 matrix products where the hardware has them; the loss in float32.
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            c = gather_cov(b.covs, start, lookback, cfg.forking - 1 + horizon)
            pred, quant = net(x, c)  # [B, K, H], [B, K, H, Q] or None
        err = b.weigh(b.per_element(pred.float(), y), start)
        if quant is not None:  # --quantiles: plus the pinball loss averaged over levels
            err = err + pinball(y.unsqueeze(-1), quant.float(), model.levels).mean(dim=-1)
        loss, shown, used = _share_loss(err, mask, horizon, b.dist)
        if not torch.isfinite(shown):
            raise _Diverged(f"training diverged at epoch {epoch} (loss is {shown.item()})")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # Clipping keeps one spiky window from throwing the LSTM's recurrent weights off.
        nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(cfg, result.steps, total_steps)
        optimizer.step()
        epoch_loss += shown.item() * used
        epoch_count += used
        result.steps += 1
        result.train_windows += used
        if b.on_step is not None:
            b.on_step(result.steps, total_steps, time.monotonic() - b.started)
        if cfg.max_steps is not None and result.steps >= cfg.max_steps:
            break
        if deadline is not None:
            late = time.monotonic() >= deadline
            if b.dist is not None:
                late = b.dist.sum([float(late)])[0] > 0
            if late:
                break
    return epoch_loss / max(epoch_count, 1), late


def _resume(saved: train_state.TrainState, model: nn.Module, optimizer: Adam,
            generator: torch.Generator, result: TrainResult) -> tuple[dict[str, torch.Tensor], int, int, str | None]:
    """Put an interrupted run's state back; (best weights, bad epochs, first epoch to run, stop reason)."""
    # The learning-rate schedule is a function of result.steps, so restoring the step count restores it.
    train_state.restore(saved, model, optimizer, generator)
    result.history, result.best_epoch, result.best_val_loss = list(saved.history), saved.best_epoch, saved.best_val_loss
    result.steps, result.train_windows = saved.steps, saved.train_windows
    result.stopped = saved.finished or result.stopped
    return copy.deepcopy(saved.best), saved.bad_epochs, saved.epoch + 1, saved.finished


def fit(model: nn.Module, flat: np.ndarray, train_origin: np.ndarray | TrainOrigins, val_origin: np.ndarray,
        lookback: int, horizon: int, cfg: TrainConfig, device: torch.device,
        progress: ProgressFn | None = None, resume_from: train_state.TrainState | None = None,
        cov: np.ndarray | None = None, deadline: float | None = None,
        weights: tuple[np.ndarray, np.ndarray] | None = None) -> TrainResult:
    """Train `model` in place on windows of the scaled `flat` array; restore the best weights.

    Args:
        flat: all scaled series concatenated, float32 [T].
        train_origin, val_origin: flat positions of window origins (see `data.windows`); the training
            ones may be a `windows.TrainOrigins`, which holds no table of them.
        resume_from: a state saved by an interrupted run; training goes on after its epoch.
        cov: covariate channels at the same flat positions, float32 [T, C] (data.covariates),
            or a `windows.SharedRows` standing for them.
        deadline: a `time.monotonic()` time; training stops at the first step past it (after
            scoring that epoch's validation loss), stop reason "time_limit".
        val_origin empty: no validation; every epoch runs and the last weights are kept.
        weights: (where each series starts in flat [S], its training loss weight [S]); None: all 1.
            The validation loss that early stopping reads is not weighted.

    Under torchrun (`train.distributed.session`) every rank trains its share of each global
    batch of `batch_size` x world size sequences; see `lstmcast.train.distributed`.
    """
    dist = current()
    generator = seed_everything(cfg.seed)
    model.to(device)
    data = torch.from_numpy(flat).to(device)
    covs = (torch.from_numpy(cov) if isinstance(cov, np.ndarray) else cov).to(device) if cov is not None else None
    train_idx = OriginLookup(train_origin, device)  # a table of positions, or TrainOrigins (no table)
    val_idx = torch.from_numpy(val_origin).to(device)
    valid = torch.zeros(len(data), dtype=torch.bool, device=device)
    train_idx.mark(valid)  # flat positions that are training origins
    n_train = len(train_idx)
    size = min(cfg.batch_size * (dist.world if dist else 1), n_train)  # the global batch
    b = _Batches(data, covs, valid, train_idx, size, elementwise_loss(cfg.loss), dist)
    if weights is not None:
        b.offsets = torch.as_tensor(np.asarray(weights[0], dtype=np.int64), device=device)
        b.weight = torch.as_tensor(np.asarray(weights[1], dtype=np.float32), device=device)
    criterion = loss_fn(cfg.loss)
    bf16 = use_bf16(cfg.precision, device)
    optimizer = Adam(model.parameters(), lr=cfg.lr)
    total_steps = planned_steps(cfg, n_train, size)
    draws = epoch_draws(cfg, n_train, size)
    result = TrainResult(precision="bf16" if bf16 else "fp32")
    best_state = copy.deepcopy(model.state_dict())
    bad_epochs, first, finished, before = 0, 1, None, 0.0
    if resume_from is not None:
        best_state, bad_epochs, first, finished = _resume(resume_from, model, optimizer, generator, result)
        before = resume_from.train_seconds
    started = time.monotonic() - before
    b.on_step, b.started = getattr(progress, "on_step", None), started
    net = dist.wrap(_Origins(model)) if dist is not None else partial(_predict, model)
    result.state = train_state.capture(model, optimizer, generator, best_state, result, bad_epochs, first - 1,
                                       finished, before)
    try:
        for epoch in range(first, cfg.epochs + 1 if finished is None else first):
            model.train()
            order = _epoch_order(n_train, draws, generator)
            train_loss, late = _train_epoch(net, model, optimizer, b, order, cfg, lookback, horizon, total_steps,
                                            bf16, epoch, result, device, deadline)
            val_loss = evaluate_loss(model, data, val_idx, lookback, horizon, criterion, dist=dist, cov=covs) \
                if len(val_idx) else math.nan
            if len(val_idx) and not math.isfinite(val_loss):
                raise _Diverged(f"training diverged at epoch {epoch} (validation loss is {val_loss})")
            result.history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss})
            if not len(val_idx):  # a fit of fixed length (the full-data refit): the last weights are kept
                result.best_epoch, bad_epochs = epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            elif val_loss < result.best_val_loss:
                result.best_val_loss, result.best_epoch, bad_epochs = val_loss, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                bad_epochs += 1
            if cfg.max_steps is not None and result.steps >= cfg.max_steps:
                finished = "max_steps"
            elif late:
                finished = "time_limit"
            elif bad_epochs >= (cfg.patience or DEFAULT_PATIENCE):  # None: unsized (train_run sizes it)
                finished = "early_stopping"
            result.state = train_state.capture(model, optimizer, generator, best_state, result, bad_epochs, epoch,
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
