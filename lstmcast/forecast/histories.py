"""What a forecast starts from: each series' history, cut where the forecast starts, and its scaler.

predict, evaluate, backtests and detect all read new data the way training read its
file (`read_like_run`), cut it (`fold_history`: nothing at or after the cut reaches the
forecast) and scale it as trained (`scalers`: series the run never saw are scaled on
their own history).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lstmcast.config import Fill
from lstmcast.data.frames import Data, label
from lstmcast.errors import InputError
from lstmcast.wording import names


def read_like_run(run: Any, data: Data) -> Any:
    """Read `data` (a file or a DataFrame; a `data.series.SeriesSet`) with the columns, frequency and fill the
    run was trained with."""
    from lstmcast.data.series import load_series

    return load_series(data, run.record.data.read_config())


def fold_history(values: np.ndarray, gaps: np.ndarray, cut: int, fill: Fill) -> np.ndarray:
    """`values[:cut]` as a forecast from the cut may see it.

    Interpolation filled a gap from the values on both sides; when the gap reaches the
    cut-off, the value on its far side lies after the cut-off. Such a gap is filled again
    as interpolation of the history alone fills it: with its last known value.
    (ffill and zero fills only look back; leading gaps are trimmed on reading.)
    """
    history = values[:cut]
    if fill is not Fill.interpolate or cut < 1:
        return history
    i = int(np.searchsorted(gaps, cut - 1))
    if i == len(gaps) or gaps[i] != cut - 1:
        return history
    while i > 0 and gaps[i - 1] == gaps[i] - 1:
        i -= 1
    first = int(gaps[i])  # the trailing gap of the history is [first, cut)
    history = history.copy()
    history[first:] = history[first - 1] if first > 0 else np.nan
    return history


def cut_histories(run: Any, series: Any, cuts: list[int]) -> list[np.ndarray]:
    """Each series' history before its cut, refilled from the history alone (`fold_history`)."""
    fill = run.record.data.config.fill
    gaps = series.gaps or [np.empty(0, dtype=np.int64)] * len(series)
    return [fold_history(v, g, c, fill) for v, g, c in zip(series.values, gaps, cuts)]


def scalers(run: Any, ids: list[str], histories: list[np.ndarray]
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(center, scale, log, ids the run never saw): stored scalers; new series scaled on their own history
    (in logs by the run's `--transform` rule).
    """
    from lstmcast.data import scaling

    record = run.record
    known = [record.get(i) for i in ids]
    center = np.array([np.nan if s is None else s.center for s in known])
    scale = np.array([np.nan if s is None else s.scale for s in known])
    log = np.array([s is not None and s.log for s in known], dtype=bool)
    pos = [k for k, s in enumerate(known) if s is None]
    if pos:
        part = [histories[k] for k in pos]
        log[pos] = scaling.log_mask(part, [ids[k] for k in pos], record.train.transform, "new data")
        center[pos], scale[pos] = scaling.fit_scalers_of(part, record.train.scaler, log[pos])
    return center, scale, log, [ids[k] for k in pos]


def check_logs(ids: list[str], histories: list[np.ndarray], log: np.ndarray, lookback: int,
               notes: list[str]) -> None:
    """A note naming the log series with values of 0 or less in their last `lookback` points: the forecast
    reads them as half the smallest positive value there (`recursive.forecast_series_all`), so that one
    closed day does not stop a nightly forecast.

    Raises:
        InputError: a series modelled in logs has no positive value in its last `lookback` points.
    """
    from lstmcast.data.scaling import log_floor

    floored = []
    for k in np.flatnonzero(log):
        window = histories[k][-lookback:]
        if np.all(window > 0):
            continue
        if np.isnan(log_floor(window)):
            raise InputError(f"series {ids[k]!r} has no positive value in its last {lookback} points, but the run "
                             "models it in logs (its training values were all positive); retrain with --transform none")
        floored.append(ids[k])
    if floored:
        notes.append(f"{len(floored)} series modelled in logs have values of 0 or less in their last {lookback} "
                     f"points, read as half their smallest positive value there: {floored[:10]}")


def floors(run: Any, ids: list[str], histories: list[np.ndarray]) -> np.ndarray | None:
    """Per series, 0 where forecasts are clipped at zero, else -inf; None when nothing is clipped.

    A series training saw is clipped when all its training values were >= 0 (run.json's
    "nonnegative"); one it never saw when all of its history is, if the run clips at all.
    """
    record = run.record
    out = np.full(len(ids), -np.inf)
    for k, (sid, h) in enumerate(zip(ids, histories)):
        stored = record.get(sid)
        if stored.nonnegative if stored is not None else record.data.config.nonnegative and h.min() >= 0:
            out[k] = 0.0
    return out if np.isfinite(out).any() else None


@dataclass
class Histories:
    """What forecasting from the end of each history needs."""

    ids: list[str]
    values: list[np.ndarray]  # raw history of each series, up to the forecast start
    center: np.ndarray
    scale: np.ndarray
    series: Any = None  # the SeriesSet read from --data (times, covariates); None: the run's stored tails
    new: list[str] = field(default_factory=list)  # ids training never saw
    notes: list[str] = field(default_factory=list)
    floor: np.ndarray | None = None  # per series: 0 where forecasts are clipped at zero (`floors`)
    log: np.ndarray | None = None  # per series: modelled in logs; None: none is


def histories(run: Any, data: Data | None, cut: int = 0) -> Histories:
    """The histories to forecast from: the run's stored tails, or `data` less its last `cut` points."""
    record = run.record
    lookback = record.model.lookback
    if data is None:
        values = [s.tail for s in record.series]
        return Histories(ids=record.ids, values=values, center=np.array([s.center for s in record.series]),
                         scale=np.array([s.scale for s in record.series]), floor=floors(run, record.ids, values),
                         log=np.array([s.log for s in record.series], dtype=bool))
    series = read_like_run(run, data)
    values = cut_histories(run, series, [len(v) - cut for v in series.values])  # nothing after the cut
    empty = [i for i, h in zip(series.ids, values) if not len(h)]
    if empty:
        raise InputError(f"{label(data)}: series {empty[0]!r} has no points before the forecast start; give it history "
                         "or leave it out")
    center, scale, log, new = scalers(run, series.ids, values)
    notes = list(series.notes)
    short = [i for i, h in zip(series.ids, values) if len(h) < lookback]
    if short:
        notes.append(f"{len(short)} series have fewer points than the run's lookback {lookback} and are forecast "
                     f"from their history padded at the front with its first value: {names(short)}")
    check_logs(series.ids, values, log, lookback, notes)
    return Histories(series.ids, values, center, scale, series, new, notes, floors(run, series.ids, values), log)
