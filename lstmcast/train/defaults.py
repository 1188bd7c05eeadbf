"""Defaults sized to the data: the lookback, the batch size and the steps per epoch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lstmcast.errors import InputError

MAX_DEFAULT_LOOKBACK = 512


def pick_lookback(lengths: list[int], ids: list[str], horizon: int, val_size: int, season: int,
                  lookback: int | None, path: Path, notes: list[str]) -> int:
    """The requested lookback, or the default that every series allows.

    Default: three seasons and at least two horizons; a week for hourly data, so the
    model sees the weekly cycle as well as the daily one; four horizons without a season;
    the horizon part capped at MAX_DEFAULT_LOOKBACK steps.
    """
    room = min(lengths) - val_size - horizon  # longest lookback the shortest series allows
    if lookback is not None:
        short = [(i, n) for i, n in zip(ids, lengths) if n < lookback + horizon + val_size]
        if short:
            raise InputError(
                f"{path}: series {short[0][0]!r} has {short[0][1]} points, fewer than lookback + horizon + "
                f"validation = {lookback + horizon + val_size}; lower --lookback/--horizon or drop short series"
            )
        notes.append(f"lookback {lookback}")
        return lookback
    # Long horizons read at most MAX_DEFAULT_LOOKBACK steps (more costs time, rarely accuracy).
    if season > 1:
        seasons = (7 if season == 24 else 3) * season
        want = max(seasons, min(2 * horizon, MAX_DEFAULT_LOOKBACK))
    else:  # no known season: four horizons (a year for weekly M4 with h = 13)
        want = max(min(4 * horizon, MAX_DEFAULT_LOOKBACK), 8)
    if room < 2:
        worst = ids[int(np.argmin(lengths))]
        raise InputError(
            f"{path}: series {worst!r} has {min(lengths)} points; each series needs at least "
            f"{horizon + val_size + 2} (horizon + validation + 2); lower --horizon or drop short series"
        )
    chosen = min(want, room)
    notes.append(f"lookback {chosen}" + (f" (capped by the shortest series; {want} wanted)" if chosen < want else ""))
    return chosen


# The training budget. One step trains `batch` sequences of `forking` origins each, so it
# covers batch x forking training windows. An epoch is PASSES such coverages of every
# training window, at least MIN_EPOCH_STEPS and at most MAX_EPOCH_STEPS steps; training
# runs up to `epochs` epochs and stops early when the validation loss has not improved
# for `patience` of them. The batch grows with the data: one sequence per BATCH_DIVISOR
# training windows, a power of two from FLOOR_BATCH to MAX_BATCH, and MIN_BATCH for files
# of fewer than SMALL_WINDOWS training windows. Measured (benchmarks/RESULTS.md, "Batch size
# of small files"): halving 64 to 32 sequences kept the accuracy of three files (the demo's
# load, daily temperatures, sunspots) at half the cost of a step; halving 32 to 16 lost on
# a fourth (store sales, 4 seeds of 4), so 32 is the floor from 1,024 windows.
MIN_BATCH, FLOOR_BATCH, MAX_BATCH, BATCH_DIVISOR, SMALL_WINDOWS = 16, 32, 256, 64, 1024
MIN_EPOCH_STEPS, MAX_EPOCH_STEPS, PASSES = 10, 50, 4
# Up to 20 epochs, and up to 40 when epochs are short, so that at least MIN_PLANNED_STEPS are
# planned: small data is cheap to train longer, and its validation loss was still falling at
# 200 steps (the demo data: evaluate MASE 0.713 at 200 steps, 0.550 at 400; benchmarks/RESULTS.md).
DEFAULT_EPOCHS, MAX_DEFAULT_EPOCHS, MIN_PLANNED_STEPS = 20, 40, 400


def size_budget(n_train: int, forking: int, batch_size: int | None, epoch_steps: int | None) -> tuple[int, int]:
    """(batch size, optimiser steps per epoch) for `n_train` training windows; given values are kept."""
    if batch_size is None:
        batch_size = MIN_BATCH if n_train < SMALL_WINDOWS else FLOOR_BATCH
        while batch_size * 2 <= min(MAX_BATCH, n_train / BATCH_DIVISOR):
            batch_size *= 2
    if epoch_steps is None:
        coverage = batch_size * max(forking, 1)
        epoch_steps = int(min(MAX_EPOCH_STEPS, max(MIN_EPOCH_STEPS, -(-PASSES * n_train // coverage))))
    return batch_size, epoch_steps


def default_epochs(epoch_steps: int) -> int:
    """The default number of epochs for epochs of `epoch_steps` steps (early stopping may end sooner)."""
    return min(MAX_DEFAULT_EPOCHS, max(DEFAULT_EPOCHS, -(-MIN_PLANNED_STEPS // epoch_steps)))
