"""The detect workflow: read new data like the run, forecast every point causally, score it, write the CSV.

    read_like_run ─> causal refill of gaps ─> per batch of series:
        forecasts.forecast_sums (numpy network, origins `stride` apart; refits take over
        their origins) ─> expected values ─> calibration.score (conformal, per series)
        ─> rows: id, time, value, expected, lower, upper, score, anomaly

Nothing after a point reaches its score: its forecasts read values before their origin,
the calibration reads residuals of earlier blocks, gaps are filled from the past
(interpolation would reach past the gap), refits train on the values before the origins
they forecast from, and series the run never saw are scaled on their first lookback values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from lstmcast.config import DetectScore, Fill
from lstmcast.data import scaling
from lstmcast.detect import calibration, forecasts
from lstmcast.data.frames import label
from lstmcast.errors import InputError
from lstmcast.wording import plural

BATCH_SERIES = 2048  # series scored at once, at most
CELLS = 1 << 22  # series x positions of one batch: each [series, positions] float64 matrix stays at 32 MB
DEFAULT_LEVEL = 0.99  # a file of several series (rank scores)
STREAM_LEVEL = 0.9995  # a file of one series (multiscale scores): NAB's one optimised threshold (standard 70.2)
DEFAULT_WINDOW = 5000  # past residuals a point is compared with (NAB: 1000 46.0, 2000 52.1, 5000 57.4, 20000 57.4)
REFRESH = 32  # positions per calibration block
FORECASTS_PER_POINT = 3  # default stride: horizon / 3, so each point is forecast about three times
FLAGGED_LISTED = 1000  # flagged points a summary lists (all are counted)
RUN_TAIL = 1.0  # runs of repeats: the tail's scale is at least the longest past run (NAB: 0 39.9, 0.5 43.2, 1 45.5)
CLEAN_LEVEL = 0.999  # several series: points scoring above this in a first pass are read as expected by the second
LAST_VALUE_MARGIN = 0.1  # several series: a position's expected values are the last values when, over the window
# before it, they missed by less than (1 - this) times the network's one-step forecasts (calibration.last_value)
OWN_RUNS = 500  # several series: a series with this many past runs in its window ranks a run against its own
RUN_SHARE = 0.02  # runs of repeats: the share of 1 - level that the run of repeats gets (weighted Bonferroni)
COLUMNS = ("value", "expected", "lower", "upper", "score", "anomaly")


def default_stride(horizon: int) -> int:
    return max(1, -(-horizon // FORECASTS_PER_POINT))


def default_scoring(several: bool, score: DetectScore | str | None, level: float | None) -> tuple[DetectScore, float]:
    """(score, level) where not given: a file of several series, rank scores at DEFAULT_LEVEL; one series (a
    stream), multiscale scores at STREAM_LEVEL, the level NAB's one threshold chose (benchmarks/RESULTS.md,
    "Multi-scale ranks for streams")."""
    chosen = DetectScore(score) if score is not None else DetectScore.rank if several else DetectScore.multiscale
    if level is None:
        level = STREAM_LEVEL if chosen is DetectScore.multiscale and not several else DEFAULT_LEVEL
    return chosen, level


def default_reach(horizon: int, several: bool, stride: int | None, ahead: int | None) -> tuple[int, int]:
    """(stride, ahead) where not given: a file of several series, one-step forecasts (stride 1, ahead 1;
    a given stride: the latest origin's forecast, ahead = stride); one series, the mean of the
    forecasts 1 to `horizon` steps ahead from origins a third of it apart (NAB's choice).

    Measured (benchmarks/RESULTS.md, "One-step forecasts for files of several series"): on M3, M4 and
    ETTh1 one-step forecasts found more planted anomalies at the same false-flag rate; on NAB's
    one-series streams the mean of several horizons scored higher.
    """
    if several:
        stride = stride or 1
        return stride, ahead or stride
    ahead = ahead or max(horizon, stride or 0)
    return stride or min(default_stride(horizon), ahead), ahead


@dataclass
class Flagged:
    """One flagged point, for summaries."""

    id: str
    time: Any
    value: float
    expected: float
    score: float


@dataclass
class Detection:
    """What detect found; `chunks` yields the rows batch by batch, the counts fill as it is consumed."""

    chunks: Iterator[Any]  # pandas.DataFrame per batch of series
    level: float
    stride: int
    window: int
    ahead: int = 0  # a point's expected value: the mean of its forecasts made at most this many steps ahead
    flatline: bool = True  # also score runs of repeated values (calibration.joined)
    score: DetectScore = DetectScore.rank  # likelihood: calibration.likelihood of the residuals, filtered, and range;
    # multiscale: calibration.multiscale (ranks of means of 1, 10, 100 residuals, hold-off, range)
    # Several series: residuals over their spread, ranked against all series' (calibration), and a second forecast
    # pass whose forecasts read the points flagged in the first as expected (_cleaned_sums).
    pooled: bool = True
    fallback: bool = True  # several series: the last value sets the band where it forecast better (_last_value_fallback)
    notes: list[str] = field(default_factory=list)
    new_series: list[str] = field(default_factory=list)
    series: int = 0
    rows: int = 0  # rows written
    scored: int = 0  # rows with a score
    anomalies: int = 0
    flagged: list[Flagged] = field(default_factory=list)  # the first FLAGGED_LISTED, in series order
    flagged_series: dict[str, int] = field(default_factory=dict)  # id -> flagged points
    refits: list[int] = field(default_factory=list)  # positions where a refit took over
    # Per series modelled in logs: the network reads values below this as it (half the smallest of its first
    # lookback values; causal), so a drop to 0 or below is scored like any other value, not an error. 0 for others.
    log_floor: np.ndarray | None = None
    last_value: int = 0  # points scored against the last value before them, not the network's forecast
    shifts: np.ndarray | None = None  # per series: steps from the file's earliest first time to its own (_shifts)


@dataclass
class DetectReport:
    """What `api.detect` returns: the scored rows and what was flagged."""

    frame: Any  # pandas.DataFrame: id column, time column, value, expected, lower, upper, score, anomaly
    series: int
    rows: int
    scored: int
    anomalies: int
    level: float
    stride: int
    window: int
    ahead: int = 0
    score: str = "rank"  # the score used (default_scoring)
    flagged: list[Flagged] = field(default_factory=list)  # at most FLAGGED_LISTED, in series order
    flagged_series: dict[str, int] = field(default_factory=dict)  # id -> number of flagged points
    refits: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    new_series: list[str] = field(default_factory=list)
    last_value: int = 0  # points scored against the last value before them (the network forecast them worse)


def report(made: Detection, frame: Any) -> DetectReport:
    """The report of a consumed Detection."""
    return DetectReport(frame, made.series, made.rows, made.scored, made.anomalies, made.level, made.stride,
                        made.window, made.ahead, made.score.value, made.flagged, made.flagged_series, made.refits,
                        made.notes, made.new_series, made.last_value)


@dataclass
class Model:
    """A network, the scalers it reads its inputs with, and the first origin it forecasts from."""

    net: Any
    center: np.ndarray
    scale: np.ndarray
    log: np.ndarray  # per series: modelled in logs
    start: int = 0


def _causal(values: np.ndarray, gaps: np.ndarray, fill: Fill) -> np.ndarray:
    """Gaps refilled from the past only: interpolation reads the value after the gap; its last value does not."""
    if fill is not Fill.interpolate or not len(gaps):
        return values
    index = np.arange(len(values))
    index[gaps] = 0
    return values[np.maximum.accumulate(index)]


def _check(run: Any, series: Any, data: str | Path, level: float, last: int | None, stride: int | None,
           ahead: int | None, window: int, refit_every: int | None) -> None:
    cfg = run.model_config
    if not 0.0 < level < 1.0:
        raise InputError(f"--level {level}: must lie between 0 and 1 (e.g. 0.99)")
    for name, value in (("--last", last), ("--stride", stride), ("--ahead", ahead), ("--window", window),
                        ("--refit-every", refit_every)):
        if value is not None and value < 1:
            raise InputError(f"{name} {value}: must be at least 1")
    if stride is not None and ahead is not None and ahead < stride:
        raise InputError(f"--ahead {ahead} is less than --stride {stride}: the points between two origins would "
                         "have no forecast; give --ahead at least --stride")
    if cfg.input_size > 1:
        raise InputError(f"{run.path}: detect reads the target alone; this run was trained with covariates or "
                         "calendar features (train one without them for detection)")
    for sid, values in zip(series.ids, series.values):
        if len(values) <= cfg.lookback:
            raise InputError(f"{label(data)}: series {sid!r} has {len(values)} points, not more than the run's lookback "
                             f"{cfg.lookback}: detect scores the points after the first {cfg.lookback}; "
                             "give more history or drop the series")


def least_scored_length(lookback: int) -> int:
    """The fewest points a series needs for one to be scored: the first residual is at position
    `lookback`, and a point is scored when MIN_RESIDUALS residuals precede its block of REFRESH."""
    return -(-(lookback + calibration.MIN_RESIDUALS) // REFRESH) * REFRESH + 1


def _unscored_note(ids: list[str], values: list[np.ndarray], lookback: int, window: int) -> list[str]:
    """A note naming the series too short for any point to be scored (exit 0 and 0 points says nothing)."""
    least = least_scored_length(lookback)
    short = [sid for sid, v in zip(ids, values) if len(v) < least]
    if window < calibration.MIN_RESIDUALS:
        return [f"--window {window} holds fewer than the {calibration.MIN_RESIDUALS} past residuals a score needs: "
                "no point is scored; raise --window"]
    if not short:
        return []
    why = (f"a point is scored once {calibration.MIN_RESIDUALS} residuals precede its block of {REFRESH}, and "
           f"residuals start after the run's lookback of {lookback}; give more history")
    if len(short) == len(ids):
        return [f"no point can be scored: a series needs at least {least} points, and every one has fewer ({why})"]
    return [f"{plural(len(short), 'series', 'series')} with fewer than the least {least} points get no score ({why}): "
            f"{short[:10]}" + (f" and {len(short) - 10} more" if len(short) > 10 else "")]


def _refit_models(run: Any, series: Any, values: list[np.ndarray], data: Path, every: int, first: int,
                  on_note: Callable[[str], None] | None, first_model: Model) -> list[Model]:
    """Models trained on each series' values before every multiple of `every`, for the origins after it."""
    from lstmcast.evaluate.folds import refit_run

    cfg, record = run.model_config, run.record
    need = cfg.lookback + cfg.horizon + (record.train.val_size or cfg.horizon) + 1
    longest = max(len(v) for v in values)
    made: list[Model] = []
    # The refit governing the first origin scored, and every one after it.
    at = [p for p in range(every, longest, every) if p + every > first]
    for position in at:
        cut = [v[:position] for v in values]
        if min(len(c) for c in cut) < need:
            if on_note is not None:
                on_note(f"no refit at position {position}: a series has fewer than {need} points before it")
            continue
        if on_note is not None:
            on_note(f"refitting on the {position} points before position {position}")
        net, center, scale, log, _ = refit_run(run, series, cut, data)
        differ = np.flatnonzero(log != first_model.log)
        if len(differ):
            raise InputError(f"{label(data)}: series {series.ids[differ[0]]!r} is modelled in logs by the refit at position "
                             f"{position} and not by the run, or the other way round (--transform auto decides on "
                             "the values each sees); train the run with --transform none for --refit-every")
        made.append(Model(net, center, scale, log, position))
    return made


def detection(run_dir: str | Path, data: str | Path, level: float | None = None, last: int | None = None,
              stride: int | None = None, window: int = DEFAULT_WINDOW, refit_every: int | None = None,
              flatline: bool | None = None, score: DetectScore | None = None, batch: int = BATCH_SERIES,
              on_note: Callable[[str], None] | None = None, ahead: int | None = None,
              fallback: bool | None = None) -> Detection:
    """Score every point of every series of `data` after the run's lookback; rows come batch by batch.

    `score` and `level` None: `default_scoring` (rank at 0.99 for several series, multiscale at 0.9995 for one).
    `flatline` None: on for several series, off for one (on NAB's streams it cost 0.2: 69.9 against 70.1).
    `fallback` None: on for several series scored `rank` (`_last_value_fallback`); it needs them.

    Errors in the run, the data or the options are raised here, before the first batch.
    """
    from lstmcast.forecast.histories import read_like_run, scalers
    from lstmcast.run.rundir import load_run

    run = load_run(run_dir)
    cfg = run.model_config
    series = read_like_run(run, data)
    several = len(series.values) > 1
    score, level = default_scoring(several, score, level)
    flatline = several if flatline is None else flatline
    if fallback and not (several and score is DetectScore.rank):
        raise InputError(f"{label(data)}: --fallback sets points of a file of several series scored rank against the last "
                         "value; this file has one series or another score: leave --fallback out")
    fallback = several and score is DetectScore.rank if fallback is None else fallback
    _check(run, series, data, level, last, stride, ahead, window, refit_every)
    stride, ahead = default_reach(cfg.horizon, several, stride, ahead)
    fill = run.record.data.config.fill
    gaps = series.gaps or [np.empty(0, dtype=np.int64)] * len(series)
    values = [_causal(v, g, fill) for v, g in zip(series.values, gaps)]
    lookback = cfg.lookback
    center, scale, log, new = scalers(run, series.ids, [v[:lookback] for v in values])
    log_floor = np.array([scaling.log_floor(v[:lookback]) if m else 0.0 for v, m in zip(values, log)])
    if np.isnan(log_floor).any():
        sid = series.ids[int(np.flatnonzero(np.isnan(log_floor))[0])]
        raise InputError(f"{label(data)}: series {sid!r} has no positive value in its first {lookback} points, but the run "
                         "models it in logs (its training values were all positive); train a run with --transform none")
    notes = list(series.notes) + _unscored_note(series.ids, values, lookback, window)
    if new:
        notes.append(f"{len(new)} series not seen in training, scaled on their first {lookback} values: {new[:10]}")
    firsts = [lookback if last is None else max(lookback, len(v) - last) for v in values]
    models = [Model(run.model, center, scale, log, 0)]
    shifts = _shifts(series)
    if refit_every is not None:
        # Refits from the one governing the first origin that calibrates (so --last scores as the whole file): the
        # window before the first block scored, on the time grid, reaches this far into the latest-starting series.
        reach = [max(lookback, f - _reach(score, window)) + d for f, d in zip(firsts, shifts)]
        earliest = max(lookback, min(reach) - int(shifts.max()) - REFRESH - window - calibration.SPREAD)
        if several:  # the cleaning pass reads scores from this much earlier (_batch_scores)
            earliest = max(lookback, earliest - lookback - REFRESH - window - calibration.SPREAD)
        models += _refit_models(run, series, values, label(data), refit_every, earliest, on_note, models[0])
    made = Detection(iter(()), level, stride, window, ahead=ahead, flatline=flatline, score=score,
                     pooled=several, fallback=fallback, notes=notes, new_series=new,
                     refits=[m.start for m in models[1:]],
                     log_floor=log_floor, shifts=shifts)
    made.chunks = _chunks(run, series, values, gaps, firsts, models, made, batch)
    return made


def _shifts(series: Any) -> np.ndarray:
    """Per series: how many steps after the file's earliest first time its first value lies (all 0 where the series
    do not share one time grid, or have no times)."""
    zero = np.zeros(len(series.values), dtype=np.int64)
    if len(zero) < 2 or series.time_kind == "row":
        return zero
    if series.time_kind == "datetime":
        import pandas as pd

        starts = pd.DatetimeIndex([pd.Timestamp(t) for t in series.starts])
        if (starts == starts[0]).all():
            return zero
        at = pd.date_range(starts.min(), starts.max(), freq=series.freq).get_indexer(starts)
        return zero if (at < 0).any() else at.astype(np.int64)
    starts = np.array([int(t) for t in series.starts], dtype=np.int64)
    steps, off = np.divmod(starts - starts.min(), max(int(series.step), 1))
    return zero if off.any() else steps


def _sums(models: list[Model], part: list[np.ndarray], need: list[int], width: int, lo: int, hi: int,
          made: Detection, only: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """[b, T] sums and counts of each point's forecasts in modelled units (the values, or logs), from the
    origins reaching `need` on (where `only` is true, when given)."""
    sums = np.zeros((len(part), width))
    counts = np.zeros((len(part), width), dtype=np.int32)
    log, floor = models[0].log[lo:hi], made.log_floor[lo:hi]
    for k, model in enumerate(models):
        stop = models[k + 1].start if k + 1 < len(models) else None
        c, s = model.center[lo:hi], model.scale[lo:hi]
        scaled = [scaling.apply(np.maximum(v, f) if mi else v, ci, si, mi)
                  for v, ci, si, mi, f in zip(part, c, s, log, floor)]
        ends = [len(v) if stop is None else min(len(v), stop) for v in part]
        got, count = forecasts.forecast_sums(model.net, scaled, need, ends, made.stride, width, model.start,
                                             ahead=made.ahead, only=only)
        sums += got * s[:, None] + count * c[:, None]  # modelled units: a refit has scalers of its own
        counts += count
    return sums, counts


def _mean(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The mean of each point's forecasts (a geometric mean in logs); NaN where none reaches."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _residuals(padded: np.ndarray, modelled: np.ndarray, gaps: list[np.ndarray], scale: np.ndarray, log: np.ndarray,
               floor: np.ndarray, in_logs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(expected in original units, absolute residuals in scaled units; NaN at gaps) [b, T]."""
    expected = _expected(modelled, log, floor, in_logs)
    # One series: residuals in original units, for log series too: relative residuals scored 42.9 on NAB against
    # 57.4 (benchmarks/RESULTS.md, "Anomaly detection"); the p-value is the series' own rank, so units cancel.
    # Several series: a series modelled in logs has its residuals in logs, where a dip to half is as large as a
    # spike to double (below its floor, which the network reads lower values as, along the log's tangent: see
    # `_modelled_values`).
    nonconformity = np.abs(padded - expected) / scale[:, None]
    if in_logs.any():
        logs = np.abs(_modelled_values(padded, floor, in_logs) - modelled) / scale[:, None]
        nonconformity = np.where(in_logs[:, None], logs, nonconformity)
    for i, g in enumerate(gaps):
        nonconformity[i, g] = np.nan  # filled, not observed: neither scored nor calibrating
    return expected, nonconformity


def _modelled_values(padded: np.ndarray, floor: np.ndarray, in_logs: np.ndarray) -> np.ndarray:
    """[b, T] values in the units their residuals are taken in: logs for the series whose residuals are in logs, the
    values themselves for the others. Below its floor (which the network reads such a value as) a value reads along
    the tangent of the log at the floor, log(floor) + (value - floor) / floor, down to 0, and a value at or below 0
    as 0 (log(floor) - 1): continuous and non-decreasing, so a value far below the floor lies farther off than the
    floor itself, and no value lies below what 0 reads as (`_from_modelled` inverts it)."""
    f = floor[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        logs = np.where(padded >= f, np.log(np.maximum(padded, f)), np.log(f) + (np.maximum(padded, 0.0) - f) / f)
    return np.where(in_logs[:, None], logs, padded)


def _expected(modelled: np.ndarray, log: np.ndarray, floor: np.ndarray, in_logs: np.ndarray) -> np.ndarray:
    """[b, T] expected values in the values' units: the network's units inverted (exp for a series modelled in logs),
    by `_from_modelled` for a series whose residuals are in logs (so a last value below the floor is itself)."""
    out = scaling.invert(modelled, 0.0, 1.0, log[:, None])
    if not in_logs.any():
        return out
    mine = np.where(np.isfinite(modelled), _from_modelled(modelled, floor), np.nan)  # an overflow stays NaN
    return np.where(in_logs[:, None], mine, out)


def _from_modelled(modelled: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """[b, T] values of modelled values of series in logs: the inverse of `_modelled_values` (exp above the floor's
    log, the tangent's inverse below it down to 0 at log(floor) - 1, and -inf below that, where no value reads)."""
    f = floor[:, None]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        below = np.where(modelled >= np.log(f) - 1.0, f * (1.0 + modelled - np.log(f)), -np.inf)
        return np.where(modelled >= np.log(f), np.exp(modelled), below)


def _cleaned_sums(models: list[Model], part: list[np.ndarray], padded: np.ndarray, gaps: list[np.ndarray],
                  need: list[int], scale: np.ndarray, in_logs: np.ndarray, lo: int, hi: int, made: Detection,
                  shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`_sums` from `need` on, of forecasts that read the points a first pass scored above CLEAN_LEVEL as their
    expected value, so a spike does not pull the one-step forecasts after it and get the normal points there flagged.

    Still causal: a point's first-pass score reads values up to it, and a second-pass forecast reads values
    before its origin, cleaned by first-pass scores of points before it. Only the origins whose lookback holds a
    cleaned point are forecast anew (their first-pass forecasts out, the new ones in): the same sums as a whole
    second pass.
    """
    width, lookback = padded.shape[1], models[0].net.config.lookback
    log, floor = models[0].log[lo:hi], made.log_floor[lo:hi]
    # The second pass's forecasts from `need` on read values from need - lookback on, cleaned by first-pass
    # scores, which read a window of residuals (and their spreads) before their block.
    early = [max(lookback, n - lookback - REFRESH - made.window - calibration.SPREAD) for n in need]
    sums, counts = _sums(models, part, early, width, lo, hi, made)
    first, residual = _residuals(padded, _mean(sums, counts), gaps, scale, log, floor, in_logs)
    scored = calibration.residual_scores(_aligned(residual, shift), np.array(early) + shift, CLEAN_LEVEL, made.window,
                                         REFRESH, pooled=True).score
    flagged = _own(scored, shift, width) > CLEAN_LEVEL  # NaN: False
    _, held, _ = calibration.trailing(flagged.astype(np.float64), -lookback, 0)  # cleaned points in each lookback
    affected = [(held[i] > 0)[:len(v)] for i, v in enumerate(part)]
    if any(a.any() for a in affected):
        inputs = [np.where(flagged[i, :len(v)], first[i, :len(v)], v) for i, v in enumerate(part)]
        old, _ = _sums(models, part, need, width, lo, hi, made, only=affected)
        new, _ = _sums(models, inputs, need, width, lo, hi, made, only=affected)
        sums = sums - old + new
    return sums, np.where(np.arange(width)[None, :] >= np.array(need)[:, None], counts, 0)  # as from `need` on


def _batch_scores(models: list[Model], values: list[np.ndarray], gaps: list[np.ndarray], firsts: list[int],
                  scale: np.ndarray, lo: int, hi: int, made: Detection
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, calibration.Scores]:
    """(values [b, T] NaN-padded, expected, lower, upper [b, T] in original units, Scores) for series lo..hi-1.

    With rank scores a point scores above the level exactly when its value lies outside [lower, upper].
    A file of several series is forecast twice (`_cleaned_sums`).
    """
    part = values[lo:hi]
    width = max(len(v) for v in part)
    lookback = models[0].net.config.lookback
    # Series are forecast each on its own positions, and scored on the batch's time grid (`shift`: the steps from
    # the batch's earliest first time to each series' own), so the ranks pooled over series compare points of the
    # same time: a series that starts later never brings values from after a point into its block's past.
    shift = made.shifts[lo:hi] - made.shifts[lo:hi].min()
    # Residuals from this far back calibrate the first point scored (a window of spreads, each from the SPREAD
    # before it); the same time for the whole batch, since its blocks are ranked against every series' past.
    # The likelihood of the first point scored reads residuals `_reach` before it; the ranks, a window before those.
    reach = min(max(lookback, f - _reach(made.score, made.window)) + d for f, d in zip(firsts[lo:hi], shift))
    need = [max(lookback, (reach // REFRESH) * REFRESH - made.window - calibration.SPREAD - d) for d in shift]
    log, floor = models[0].log[lo:hi], made.log_floor[lo:hi]
    in_logs = log & made.pooled
    own = np.full((len(part), width), np.nan)
    for i, v in enumerate(part):
        own[i, :len(v)] = v
    if made.pooled:
        modelled = _mean(*_cleaned_sums(models, part, own, gaps[lo:hi], need, scale[lo:hi], in_logs, lo, hi, made,
                                        shift))
    else:
        modelled = _mean(*_sums(models, part, need, width, lo, hi, made))
    padded, modelled = _aligned(own, shift), _aligned(modelled, shift)
    gaps_here = [g + d for g, d in zip(gaps[lo:hi], shift)]
    width = padded.shape[1]
    expected, nonconformity = _residuals(padded, modelled, gaps_here, scale[lo:hi], log, floor, in_logs)
    start = np.array(firsts[lo:hi]) + shift
    level = calibration.residual_level(made.level, RUN_SHARE) if made.flatline else made.level
    if made.flatline:
        runs = calibration.repeats(padded)
        runs[~np.isfinite(nonconformity)] = np.nan
        run = _run_scores(runs, start, made)
    scores = calibration.residual_scores(nonconformity, start, level, made.window, REFRESH, pooled=made.pooled)
    if made.fallback:
        modelled, scores = _last_value_fallback(padded, modelled, nonconformity, scores, gaps_here, scale[lo:hi],
                                              floor, in_logs, level, made)
        expected = _expected(modelled, log, floor, in_logs)
    residual = scores  # the band's own scores, at `level`
    if made.flatline:
        scores = calibration.joined(scores, run, RUN_SHARE)
    if made.score is DetectScore.likelihood:
        # The interval stays the ranks'; the flag is the likelihood's, inside the interval or not. Computed
        # from the first residual on, masked after the filter (which reads the point before), so --last agrees.
        likely = calibration.filtered(calibration.likelihood(nonconformity, np.zeros(hi - lo, int), made.window))
        likely[calibration.beyond_range(padded) & np.isfinite(likely)] = 1.0
        likely[np.arange(width)[None, :] < start[:, None]] = np.nan
        scores = calibration.Scores(likely, scores.half_width)
    elif made.score is DetectScore.multiscale:
        # As the likelihood: the ranks' interval, the flag the multi-scale score's; from the first residual on (the
        # hold-off reads the points before), masked before the first scored point, so --last agrees.
        multi = calibration.multiscale(nonconformity, padded, expected, np.zeros(hi - lo, int), made.level,
                                       made.window, REFRESH, quiet=int(calibration.RANGE_QUIET * lookback))
        multi[np.arange(width)[None, :] < start[:, None]] = np.nan
        if made.flatline:  # the run of repeats joined as with the ranks (weighted Bonferroni)
            scores = calibration.joined(calibration.Scores(multi, scores.half_width), run, RUN_SHARE)
        else:
            scores = calibration.Scores(multi, scores.half_width)
    half = scores.half_width * scale[lo:hi, None]
    lower, upper = expected - half, expected + half
    if in_logs.any():
        # The band's edges in logs back in the values' units, below the floor along the tangent the residuals read.
        low, high = _from_modelled(modelled - half, floor), _from_modelled(modelled + half, floor)
        lower = np.where(in_logs[:, None] & np.isfinite(half), low, lower)
        upper = np.where(in_logs[:, None] & np.isfinite(half), high, upper)
    lower, upper = _rounded_edges(padded, expected, lower, upper, np.nan_to_num(residual.score, nan=0.0) > level)
    width = own.shape[1]
    return (own, _own(expected, shift, width), _own(lower, shift, width), _own(upper, shift, width),
            calibration.Scores(_own(scores.score, shift, width), _own(scores.half_width, shift, width)))


def _aligned(values: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """[b, T] per series' own positions -> [b, T + max shift] on the batch's time grid (row i moved right by shift[i])."""
    if not shift.any():
        return values
    out = np.full((len(values), values.shape[1] + int(shift.max())), np.nan)
    for i, d in enumerate(shift):
        out[i, d:d + values.shape[1]] = values[i]
    return out


def _own(values: np.ndarray, shift: np.ndarray, width: int) -> np.ndarray:
    """The inverse of `_aligned`: [b, T'] on the batch's time grid -> [b, width] per series' own positions."""
    if not shift.any():
        return values[:, :width]
    return np.stack([values[i, d:d + width] for i, d in enumerate(shift)])


def _rounded_edges(values: np.ndarray, expected: np.ndarray, lower: np.ndarray, upper: np.ndarray, beyond: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """[lower, upper] with an edge moved onto a value that rounding put on the wrong side of it: a value whose
    residual ranks beyond the band's level lies outside the band, any other inside it. The residual is ranked in
    scaled units (|value - expected| / scale / spread) and the band is drawn in the values' (expected +/- half-width
    times spread times scale), so on values with ties (prices in cents, counts) the two can disagree in the last
    bit; only such disagreements (within 1e-9 of the value) are moved, by the least step."""
    def near(edge: np.ndarray) -> np.ndarray:
        return np.abs(values - edge) <= 1e-9 * np.maximum(np.abs(values), 1.0)

    with np.errstate(invalid="ignore"):
        inside = (values >= lower) & (values <= upper)
        out = beyond & inside
        upper = np.where(out & (values >= expected) & near(upper), np.nextafter(values, -np.inf), upper)
        lower = np.where(out & (values < expected) & near(lower), np.nextafter(values, np.inf), lower)
        back = ~beyond & np.isfinite(upper) & ~inside
        upper = np.where(back & (values > upper) & near(upper), values, upper)
        lower = np.where(back & (values < lower) & near(lower), values, lower)
    return lower, upper


def _last_value_fallback(padded: np.ndarray, modelled: np.ndarray, nonconformity: np.ndarray,
                       scores: calibration.Scores, gaps: list[np.ndarray], scale: np.ndarray, floor: np.ndarray,
                       in_logs: np.ndarray, level: float, made: Detection) -> tuple[np.ndarray, calibration.Scores]:
    """(modelled expected values, residual Scores) [b, T] with the last value before each point as its expected
    value at the positions where, over the window before, the network's one-step forecasts of the batch missed by
    more than the last value did (by LAST_VALUE_MARGIN): a run that forecasts these series worse than the value
    before (a short run, or a run of other series) must not set the band. Counted in made.last_value.

    Decided per position, not per series: a choice made series by series from their few past residuals switches
    often, and each switch fattens the tail of the residuals the band is set from."""
    width = padded.shape[1]
    observed = np.isfinite(padded)
    for i, g in enumerate(gaps):
        observed[i, g] = False
    modelled_values = _modelled_values(padded, floor, in_logs)
    source, residual, got = calibration.last_value(modelled_values / scale[:, None], observed, level, made.window,
                                                   REFRESH)
    both = np.isfinite(nonconformity) & np.isfinite(residual)
    sums = [np.concatenate([[0.0], np.cumsum(np.where(both, x, 0.0).sum(axis=0))])
            for x in (nonconformity, residual, both.astype(np.float64))]
    t = np.arange(width)
    net, naive, n = (c[t] - c[np.maximum(t - made.window, 0)] for c in sums)  # over the window before each position
    chosen = (n >= calibration.MIN_RESIDUALS) & (naive < (1.0 - LAST_VALUE_MARGIN) * net)
    use = chosen[None, :] & np.isfinite(scores.score) & np.isfinite(got.score)  # the points scored stay the same
    if not use.any():
        return modelled, scores
    made.last_value += int(use.sum())
    last = np.take_along_axis(modelled_values, np.maximum(source, 0), axis=1)  # the value itself, in modelled units
    return (np.where(use, last, modelled),
            calibration.Scores(np.where(use, got.score, scores.score), np.where(use, got.half_width, scores.half_width)))


def _run_scores(runs: np.ndarray, start: np.ndarray, made: Detection) -> calibration.Scores:
    """Scores of the runs of repeats [S, T]: against the series' own past runs where its window before the block
    holds at least OWN_RUNS of them (how often a series repeats its values is its own: ETTh1's coarse columns),
    against those of every series of the file before that (a short series has seen too few runs to rank one)."""
    own = calibration.score(runs, start, made.level, made.window, REFRESH, tail_floor=RUN_TAIL)
    if not made.pooled:
        return own
    pooled = calibration.score(runs, start, made.level, made.window, REFRESH, tail_floor=RUN_TAIL, pooled=True)
    width = runs.shape[1]
    seen = np.concatenate([np.zeros((len(runs), 1)), np.cumsum(np.isfinite(runs), axis=1)], axis=1)
    block = (np.arange(width) // REFRESH) * REFRESH  # each point is ranked against the window before its block
    past = seen[:, block] - seen[:, np.maximum(block - made.window, 0)]
    mine = past >= OWN_RUNS
    return calibration.Scores(np.where(mine, own.score, pooled.score), np.where(mine, own.half_width, pooled.half_width))


def _reach(score: DetectScore, window: int) -> int:
    """How many positions before the first scored one its score reads residuals from, beyond the ranks' (0: none)."""
    if score is DetectScore.likelihood:
        return window + calibration.SHORT
    if score is DetectScore.multiscale:  # the hold-off's points, each ranked from a block's start, means reaching back
        return calibration.HOLD + REFRESH + max(calibration.SCALES)
    return 0


def _chunks(run: Any, series: Any, values: list[np.ndarray], gaps: list[np.ndarray], firsts: list[int],
            models: list[Model], made: Detection, batch: int) -> Iterator[Any]:
    import pandas as pd

    d = run.record.data
    scale = models[0].scale
    lo = 0
    while lo < len(values):
        # As many series as fit in CELLS (one, however long) on the batch's time grid (_batch_scores).
        hi, first, end = lo + 1, made.shifts[lo], made.shifts[lo] + len(values[lo])
        while hi < len(values) and hi - lo < batch:
            wider = min(first, made.shifts[hi]), max(end, made.shifts[hi] + len(values[hi]))
            if (hi - lo + 1) * (wider[1] - wider[0]) > CELLS:
                break
            (first, end), hi = wider, hi + 1
        padded, expected, lower, upper, scores = _batch_scores(models, values, gaps, firsts, scale, lo, hi, made)
        ids, times, keep_rows = [], [], []
        grids: dict[tuple[Any, int], np.ndarray] = {}
        for i in range(lo, hi):
            n = len(values[i])
            keep = np.ones(n, dtype=bool)
            keep[:firsts[i]] = False
            keep[gaps[i]] = False  # filled, not observed: nothing to score
            pos = np.flatnonzero(keep)
            keep_rows.append((i - lo, pos))
            ids.append(np.repeat(series.ids[i], len(pos)))
            times.append(_times(series, i, n, grids)[pos])
        rows = np.concatenate([np.full(len(p), r) for r, p in keep_rows]) if keep_rows else np.empty(0, int)
        cols = np.concatenate([p for _, p in keep_rows]) if keep_rows else np.empty(0, int)
        value, exp, score = padded[rows, cols], expected[rows, cols], scores.score[rows, cols]
        anomaly = np.nan_to_num(score, nan=0.0) > made.level
        frame = pd.DataFrame({
            d.output_id_col: np.concatenate(ids) if ids else np.empty(0, dtype=object),
            d.output_time_col: np.concatenate(times) if times else np.empty(0, dtype=np.int64),
            "value": value, "expected": exp, "lower": lower[rows, cols], "upper": upper[rows, cols],
            "score": score, "anomaly": anomaly,
        })
        _count(made, frame, d.output_id_col, d.output_time_col, hi - lo)
        lo = hi
        yield frame


def _times(series: Any, i: int, n: int, grids: dict[tuple[Any, int], np.ndarray]) -> np.ndarray:
    """The n times of series i as an array (datetime64 or int64); series sharing a start share one grid."""
    key = (series.starts[i], n)
    if key not in grids:
        if series.time_kind == "datetime":
            import pandas as pd

            grids[key] = pd.date_range(pd.Timestamp(series.starts[i]), periods=n, freq=series.freq).values
        else:
            grids[key] = int(series.starts[i]) + series.step * np.arange(n, dtype=np.int64)
    return grids[key]


def _count(made: Detection, frame: Any, id_col: str, time_col: str, n_series: int) -> None:
    made.series += n_series
    made.rows += len(frame)
    made.scored += int(frame["score"].notna().sum())
    hits = frame[frame["anomaly"]]
    made.anomalies += len(hits)
    for sid, count in hits[id_col].value_counts(sort=False).items():
        made.flagged_series[str(sid)] = int(count)
    room = FLAGGED_LISTED - len(made.flagged)
    for row in hits.head(max(room, 0)).itertuples(index=False):
        made.flagged.append(Flagged(str(row[0]), row[1], float(row[2]), float(row[3]), float(row[6])))


def write_csv(handle: IO[str], chunks: Iterator[Any], keep: Callable[[Any], None] | None = None) -> int:
    """Write the batches as one CSV (header once); `keep` sees each batch (plots). Returns the rows written."""
    rows = 0
    for k, frame in enumerate(chunks):
        handle.write(frame.to_csv(index=False, header=k == 0, lineterminator="\n"))
        rows += len(frame)
        if keep is not None:
            keep(frame)
    return rows


def write_detection(run_dir: str | Path, data: str | Path, output: str | Path | None, wait: float = 0.0,
                    keep: Callable[[Any], None] | None = None, **options: Any) -> tuple[Detection, Path | None]:
    """Score and write the CSV to `output` ('-': stdout; None: anomalies.csv in the run directory).

    Through `run.output.Door`, as predict's forecast: checked before any work, locked while
    written, replaced atomically when complete. `options` go to `detection`.
    Returns (the Detection, its counts filled; the path or None).
    """
    from lstmcast.run.output import Door
    from lstmcast.run.rundir import ANOMALIES_CSV, load_meta

    if output is None:
        load_meta(run_dir)  # a missing run must not gain a directory for the output's lock
    door = Door(output, run_dir, default=ANOMALIES_CSV, allowed=frozenset({ANOMALIES_CSV}))
    with door.hold(wait):
        made = detection(run_dir, data, **options)
        with door.open() as handle:
            write_csv(handle, made.chunks, keep)
    return made, None if door.stdout else door.path
