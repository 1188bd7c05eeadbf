"""Rules of the defaults sized to the data: the lookback, the dilations, the training budget, the full-data refit.

`train.recipe.resolve` is the one place that applies them, and records why each value was chosen."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from lstmcast.errors import InputError

MAX_DEFAULT_LOOKBACK = 512


def pick_lookback(lengths: list[int], ids: list[str], horizon: int, val_size: int, season: int,
                  lookback: int | None, path: Path, notes: list[str], unpadded: bool = False) -> tuple[int, str]:
    """The requested lookback, or the default, and why ("given", or the part of the rule that set it);
    short series never shrink it or stop the file.

    Default: three seasons and at least two horizons; a week for hourly data, so the
    model sees the weekly cycle as well as the daily one; four horizons without a season;
    the horizon part capped at MAX_DEFAULT_LOOKBACK steps; and at most what the median
    series holds before its validation part. Series shorter than a window are padded
    (`data.windows.pad_sizes`, named in a note); the file is refused only when no series
    is long enough to train on. `unpadded` (covariate channels, which are not padded): the
    shortest series bounds the lookback and must hold a window, as before padding existed.
    """
    from lstmcast.data.windows import MIN_INPUT

    least = horizon + val_size + MIN_INPUT
    if not lengths or max(lengths) < least:
        worst = ids[int(np.argmax(lengths))] if lengths else "(none)"
        raise InputError(
            f"{path}: no series is long enough to train on (the longest, {worst!r}, has "
            f"{max(lengths) if lengths else 0} points); at least one needs {least} (horizon {horizon} + validation "
            f"{val_size} + {MIN_INPUT}); lower --horizon or --val-size, or add history"
        )
    if unpadded:
        short = [(i, n) for i, n in zip(ids, lengths) if n < (lookback or 2) + horizon + val_size]
        if short:
            need = (lookback or 2) + horizon + val_size
            raise InputError(f"{path}: series {short[0][0]!r} has {short[0][1]} points; with covariates each series "
                             f"needs at least {need} (lookback + horizon + validation); lower --horizon or "
                             "--lookback, or drop short series")
    if lookback is not None:
        notes.append(f"lookback {lookback}")
        return lookback, "given"
    # Long horizons read at most MAX_DEFAULT_LOOKBACK steps (more costs time, rarely accuracy).
    if season > 1:
        times = 2
        floor, why = (7 * season, "a week") if season == 24 else (3 * season, "three seasons")
    else:  # no known season: four horizons (a year for weekly M4 with h = 13)
        times, floor, why = 4, 8, "at least 8 steps"
    span = min(times * horizon, MAX_DEFAULT_LOOKBACK)
    want = max(floor, span)
    if span > floor:
        why = (f"{'two' if times == 2 else 'four'} horizons"
               + (f", {MAX_DEFAULT_LOOKBACK} at most" if span < times * horizon else ""))
    which = "shortest" if unpadded else "median"  # what that series holds before its validation part
    room = min(lengths) - val_size - horizon if unpadded else max(int(np.median(lengths)) - val_size - horizon,
                                                                  MIN_INPUT)
    chosen = min(want, room)
    if chosen < want:
        why = f"capped by the {which} series; {want} wanted"
    notes.append(f"lookback {chosen}" + (f" ({why})" if chosen < want else ""))
    return chosen, why


# Dilations (ModelConfig.dilations). The auto rule dilates the last layer by the season the data show:
# the frequency's season when the time axis has one, else the candidate period whose lag the series'
# autocorrelation favours; at least PERIOD_MIN_ACF, the median over series of the autocorrelation of
# their first differences (of logs where all positive) at that lag, and only when the lookback holds
# PERIOD_MIN_SPAN periods, so that each of the dilated layer's interleaved chains is that many steps
# long. Measured (benchmarks/RESULTS.md, "Dilated layers"): it won where the lookback held 7 periods
# (M4 Hourly OWA 0.501 -> 0.468 / 0.508 -> 0.476, ETTh1 and the demo's load) and lost where it held 3
# or 4 (airline passengers' 36 months, store sales' 28 days), so 7. Autocorrelations (whole files):
# M4 Hourly 24 (0.85), ETTh1 24 (0.38), airline 12 (0.84), store sales 7 (0.60); daily births, daily
# temperatures and monthly sunspots below 0.2; M4 Weekly 52 (0.22), which its 52-week lookback cannot
# hold, and its shorter candidates below 0.2.
PERIOD_CANDIDATES = (4, 5, 7, 12, 24, 52)
PERIOD_MIN_ACF = 0.2
PERIOD_MIN_SPAN = 7
PERIOD_MAX_SERIES, PERIOD_MAX_POINTS = 500, 2000  # enough series and recent points to read the median from


def seasonal_acf(values: list[np.ndarray], lags: tuple[int, ...]) -> dict[int, float]:
    """Per lag, the median over series of the autocorrelation of first differences (of logs when positive).

    A lag enters only when at least half the series (every one of at most PERIOD_MAX_SERIES,
    evenly picked) are 3 lags long; the lags that do not are left out.
    """
    n = len(values)
    picked = sorted(set(np.linspace(0, n - 1, min(n, PERIOD_MAX_SERIES)).round().astype(int).tolist())) if n else []
    diffs = []
    for i in picked:
        v = np.asarray(values[i], dtype=np.float64)[-PERIOD_MAX_POINTS:]
        v = v[np.isfinite(v)]
        if len(v) and (v > 0).all():
            v = np.log(v)
        d = np.diff(v)
        d = d - d.mean() if len(d) else d
        diffs.append((d, float((d * d).sum())))
    out = {}
    for lag in lags:
        r = [float((d[lag:] * d[:-lag]).sum() / den) for d, den in diffs if len(d) > 3 * lag and den > 0]
        if r and 2 * len(r) >= len(diffs):
            out[lag] = float(np.median(r))
    return out


def parse_dilations(value: str | Iterable[int] | None) -> tuple[int, ...] | None:
    """--dilations: 'auto' (or None) -> None, the auto rule; 'none' -> (); '1,24' (or a sequence) -> (1, 24).

    Raises InputError with one line saying what is wrong.
    """
    if value is None or isinstance(value, str) and value.strip().lower() == "auto":
        return None
    if isinstance(value, str) and value.strip().lower() == "none":
        return ()
    parts = [p.strip() for p in value.split(",")] if isinstance(value, str) else list(value)
    hint = "give auto, none, or one positive integer per layer, e.g. --dilations 1,24"
    out = []
    for part in parts:
        try:
            number = int(part) if not isinstance(part, (bool, float)) else None
        except (TypeError, ValueError):
            number = None
        if number is None or number < 1:
            raise InputError(f"--dilations: {part!r} is not a positive integer; {hint}")
        out.append(number)
    if not out:
        raise InputError(f"--dilations: no values in {value!r}; {hint}")
    return tuple(out)


def pick_dilations(requested: tuple[int, ...] | None, values: list[np.ndarray], season: int, lookback: int,
                   layers: int, cell: str, bidirectional: bool, notes: list[str]) -> tuple[tuple[int, ...], str]:
    """The requested dilations (checked against the layers), or the auto rule's: () or (1, ..., 1, period);
    and why ("given", or what the rule found).

    Auto dilates the last layer by the period (see PERIOD_CANDIDATES) when the encoder is a
    one-way lstm or gru of 2 or more layers and the lookback holds PERIOD_MIN_SPAN periods; otherwise none.
    """
    if requested is not None:
        if requested and len(requested) != layers:
            raise InputError(f"--dilations {','.join(map(str, requested))}: give one per layer ({layers}), "
                             f"e.g. --dilations {','.join(['1'] * (layers - 1) + ['24'])}")
        if requested and max(requested) > lookback:
            raise InputError(f"--dilations {','.join(map(str, requested))}: a dilation is above the lookback "
                             f"{lookback}; use at most {lookback} or a longer --lookback")
        if requested and max(requested) > 1 and (bidirectional or cell == "peephole"):
            raise InputError("--dilations: dilated layers work with --cell lstm or gru, one direction; not with "
                             + ("--bidirectional" if bidirectional else "--cell peephole"))
        return (requested if any(d > 1 for d in requested) else ()), "given"
    if layers < 2 or bidirectional or cell == "peephole":
        return (), ("one layer" if layers < 2 else "bidirectional" if bidirectional else "peephole cell")
    lags = (season,) if season > 1 else PERIOD_CANDIDATES
    acf = {lag: r for lag, r in seasonal_acf(values, tuple(q for q in lags if PERIOD_MIN_SPAN * q <= lookback)).items()
           if r >= PERIOD_MIN_ACF}
    if not acf:
        return (), f"no period of autocorrelation {PERIOD_MIN_ACF} or more fits {PERIOD_MIN_SPAN} times in the lookback"
    period = max(acf, key=lambda lag: (acf[lag], -lag))
    dilations = (1,) * (layers - 1) + (period,)
    source = "the season" if season > 1 else "the autocorrelation's period"
    why = f"{source}, autocorrelation {acf[period]:.2f}"
    notes.append(f"dilations {','.join(map(str, dilations))} (the last layer links steps {period} apart: {why})")
    return dilations, why


# Short series. Where the median series has fewer than SHORT_ORIGINS training windows (M3 yearly 1,
# quarterly 13, monthly 44 and other 16 at the default lookback; M4 Hourly 697, Weekly 857), a
# forking sequence of 48 origins runs far past the end of most series: it trains mostly the last
# windows of the longest series. There each sequence trains SHORT_FORKING origins, and SHORT_MEMBERS
# networks are trained, reading the default lookback, 3/4 and 1/2 of it (N-BEATS's ensembles mix
# lookbacks), their median forecast. Measured on M3 (benchmarks/RESULTS.md, "Short series: forking
# and mixed lookbacks").
DEFAULT_FORKING, SHORT_FORKING, SHORT_ORIGINS, SHORT_MEMBERS = 48, 8, 48, 3
MAX_TIME_MEMBERS = 5  # with --time-limit and no --ensemble: members added while time remains, at most this many
MEMBER_LOOKBACK_SHARES = (1.0, 0.75, 0.5)
MIN_MEMBER_LOOKBACK = 3


def median_origins(lengths: list[int], lookback: int, horizon: int, val_size: int) -> float:
    """Training windows of the median series (before padding)."""
    n = np.asarray(lengths, np.int64)
    return float(np.median(np.maximum(n - val_size - horizon - lookback + 1, 0))) if len(n) else 0.0


def member_lookback(lookback: int, share: float, least: int = 1) -> int:
    """The lookback of a member reading `share` of `lookback`: at least MIN_MEMBER_LOOKBACK steps, and
    `least` (the largest dilation)."""
    return min(lookback, max(MIN_MEMBER_LOOKBACK, least, round(lookback * share)))


def member_lookbacks(lookback: int, shares: tuple[float, ...], members: int, least: int = 1) -> tuple[int, ...]:
    """Each member's lookback (shares cycled); () when all read `lookback`."""
    looks = tuple(member_lookback(lookback, shares[k % len(shares)], least) for k in range(members))
    return looks if any(v != lookback for v in looks) else ()


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
# Up to 20 epochs, and up to 100 when epochs are short, so that at least MIN_PLANNED_STEPS are
# planned; early stopping waits at least PATIENCE_STEPS steps (5 epochs, or more of short ones).
# Small files are cheap to train longer, and their validation loss is noisy: with 400 steps and a
# patience of 5 epochs of 10 steps, M3 quarterly stopped at or before 400 steps and scored sMAPE
# 10.78, worse than Naive2's 10.03; with up to 1,000 steps and a patience of 100 steps, 9.83
# (760 steps; benchmarks/RESULTS.md, "Short series"). Files of 50-step epochs (M4) are unchanged.
DEFAULT_EPOCHS, MAX_DEFAULT_EPOCHS, MIN_PLANNED_STEPS = 20, 100, 1000
DEFAULT_PATIENCE, PATIENCE_STEPS = 5, 100


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


def default_patience(epoch_steps: int) -> int:
    """Epochs without a better validation loss before training stops: DEFAULT_PATIENCE, and at least
    PATIENCE_STEPS steps' worth of short epochs."""
    return max(DEFAULT_PATIENCE, -(-PATIENCE_STEPS // epoch_steps))


# The full-data refit (TrainConfig.full_data). auto trains again on every point where the held-out
# points are at least FULL_DATA_SHARE of the median series: there the networks of the held-out split
# never learned a large part of the newest data (an M3 monthly series of 48-126 points with 18 held out).
# On long series (M4 Hourly: 48 of 700-960) it would double the training time for little.
FULL_DATA_SHARE = 0.1


def use_full_data(choice: Any, lengths: list[int], val_size: int, quantiles: bool, covariates: bool,
                  distributed: bool, notes: list[str]) -> tuple[bool, str]:
    """Whether to train again on every point after the held-out run (`--full-data`), and why.

    Not with quantiles (their intervals are calibrated on the held-out windows), covariates or torchrun;
    `on` with one of them is an InputError, `auto` says in a note why it did not.
    """
    from lstmcast.config import FullData

    choice = FullData(choice)
    if choice is FullData.off:
        return False, "--full-data off"
    blocked = "--quantiles (intervals are calibrated on the held-out points)" if quantiles else \
        "covariates" if covariates else "torchrun" if distributed else None
    if blocked:
        if choice is FullData.on:
            raise InputError(f"--full-data on does not work with {blocked}; use --full-data off")
        notes.append(f"full data: not with {blocked}; the run keeps the networks of the held-out split")
        return False, f"auto: not with {blocked.split(' (')[0]}"
    if choice is FullData.on:
        return True, "--full-data on"
    share = val_size / max(float(np.median(lengths)), 1.0)
    return share >= FULL_DATA_SHARE, (f"auto: {val_size} held-out points are {share:.0%} of the median series, "
                                      f"{'at least' if share >= FULL_DATA_SHARE else 'under'} {FULL_DATA_SHARE:.0%}")
