"""Forecasts in batches of series, written to the CSV batch by batch.

A million series times a horizon of 48 is 48 million rows: one DataFrame of them, and
its CSV text, would need many times the memory the forecasts do. `forecasts` yields one
small frame per batch of series; `write_csv` appends each to an open file (the atomic
temporary file of `run.output.Door`, renamed into place at the end).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from lstmcast.errors import InputError

BATCH_SERIES = 2048  # series per batch: a few MB of rows at a time
BATCH_ROWS = 1_000_000  # and at most this many rows: long horizons take fewer series per batch
# The longest forecast predict makes: 100 trained horizons, and never more than a million
# steps per series. Fed back 100 times, a forecast says nothing any more; a horizon of a
# billion only ran out of memory.
HORIZON_FACTOR = 100
MAX_STEPS = 1_000_000


def max_horizon(trained: int) -> int:
    """The longest --horizon a run trained with horizon `trained` forecasts."""
    return min(HORIZON_FACTOR * trained, MAX_STEPS)


@dataclass
class PredictReport:
    forecast: Any  # pandas.DataFrame: id column, time column, "forecast"
    new_series: list[str]
    notes: list[str] = field(default_factory=list)
    history: dict[str, Any] = field(default_factory=dict)  # id -> values before the forecast (for plots)


@dataclass
class Forecasts:
    chunks: Iterator[Any]  # pandas.DataFrame per batch: id column, time column, "forecast"
    new_series: list[str]
    notes: list[str] = field(default_factory=list)
    history: dict[str, np.ndarray] = field(default_factory=dict)  # id -> raw history (not copied)


def forecasts(run_dir: str | Path, data: str | Path | None = None, horizon: int | None = None,
              batch: int = BATCH_SERIES) -> Forecasts:
    """Forecast the `horizon` steps after the end of each series, `batch` series at a time.

    Errors in the run or the data are raised here, before the first batch is made.
    """
    from lstmcast.data import covariates
    from lstmcast.forecast.histories import histories
    from lstmcast.run.rundir import load_run

    run = load_run(run_dir)
    steps = horizon or run.model_config.horizon
    if steps < 1:
        raise InputError(f"--horizon {steps}: must be at least 1")
    if steps > max_horizon(run.model_config.horizon):
        raise InputError(f"--horizon {steps}: beyond the limit of {max_horizon(run.model_config.horizon)} steps "
                         f"({HORIZON_FACTOR} x the trained horizon {run.model_config.horizon}, at most {MAX_STEPS:,}); "
                         "forecast fewer steps, or train a run with a longer --horizon")
    h = histories(run, data)
    notes = h.notes
    # Covariate and calendar channels (None: the target alone); missing future covariates fail here.
    cov = covariates.for_forecast(run, h.series, [len(v) for v in h.values], steps, data)
    if h.new:
        notes.append(f"{len(h.new)} series not seen in training, scaled on their own history: {h.new[:10]}")
    if run.model_config.quantiles and steps > run.model_config.horizon:
        notes.append(f"quantile columns are empty after step {run.model_config.horizon} (the trained horizon)")
    batch = max(1, min(batch, BATCH_ROWS // steps))  # a batch's arrays, times and CSV text stay a few tens of MB
    return Forecasts(_chunks(run, h, steps, batch, cov), h.new, notes, dict(zip(h.ids, h.values)))


def _chunks(run: Any, h: Any, steps: int, batch: int, cov: np.ndarray | None = None) -> Iterator[Any]:
    import pandas as pd

    from lstmcast.data.series import times_from
    from lstmcast.forecast.recursive import forecast_series_all, require_finite
    from lstmcast.model.quantiles import column_name

    d = run.record.data
    levels = run.model_config.quantiles
    ids, series = h.ids, h.series
    for lo in range(0, len(ids), batch):
        hi = min(lo + batch, len(ids))
        part = None if cov is None else cov[lo:hi]
        floor = None if h.floor is None else h.floor[lo:hi]
        log = None if h.log is None else h.log[lo:hi]
        values, quant = forecast_series_all(run.model, h.values[lo:hi], h.center[lo:hi], h.scale[lo:hi], steps,
                                            run.correction, part, floor, log)  # [b, steps], [b, steps, Q] or None
        require_finite(run.path, ids[lo:hi], values, quant, run.model_config.horizon)  # never a CSV of NaN
        times: list[object] = []
        for k in range(lo, hi):
            if series is None:
                last = run.record.series[k].last_time
                origin = pd.Timestamp(last) if d.time_kind == "datetime" else int(last)
                times.extend(times_from(d.time_kind, origin, d.freq, d.step, 1, steps))
            else:
                times.extend(series.times_after(k, len(h.values[k]), steps))
        yield pd.DataFrame({
            d.output_id_col: np.repeat(ids[lo:hi], steps),
            d.output_time_col: times,
            "forecast": values.ravel(),
            **({column_name(q): quant[..., i].ravel() for i, q in enumerate(levels)} if quant is not None else {}),
        })


@dataclass
class Written:
    rows: int
    series: int
    head: Any  # pandas.DataFrame: the first rows, for the summary


def write_csv(handle: IO[str], chunks: Iterator[Any], head_rows: int = 6) -> Written:
    """Write the batches as one CSV (header once) to an open text file."""
    rows, n_series, head = 0, 0, None
    for k, frame in enumerate(chunks):
        handle.write(frame.to_csv(index=False, header=k == 0, lineterminator="\n"))
        rows += len(frame)
        n_series += int(frame.iloc[:, 0].nunique())  # a series lies in one batch
        if head is None:
            head = frame.head(head_rows)
    return Written(rows, n_series, head)


def write_forecast(run_dir: str | Path, data: str | Path | None, horizon: int | None, output: str | Path | None,
                   wait: float = 0.0, whole: bool = False) -> tuple[Any, Written, Path | None]:
    """Forecast and write the CSV to `output` ('-': stdout; None: forecast.csv in the run directory).

    Through `run.output.Door`: checked before any work (the run's own files refused, a link
    planted at the default output never followed), locked while written, replaced atomically
    when complete, batch by batch; a device or FIFO the user names is written to in place.
    Returns (Forecasts, or a PredictReport when `whole`; what was written; the path or None).
    """
    from lstmcast.run.output import Door
    from lstmcast.run.rundir import FORECAST_CSV, load_meta

    def make() -> tuple[Any, Iterator[Any]]:  # in batches; `whole` keeps every forecast at once (plots)
        made = forecasts(run_dir, data=data, horizon=horizon)
        if not whole:
            return made, made.chunks
        import pandas as pd

        frame = pd.concat(list(made.chunks), ignore_index=True)
        return PredictReport(frame, made.new_series, made.notes, made.history), iter([frame])

    if output is None:
        load_meta(run_dir)  # a missing run must not gain a directory for its forecast's lock
    door = Door(output, run_dir, default=FORECAST_CSV, allowed=frozenset({FORECAST_CSV}))
    with door.hold(wait):  # checked before any work: RUN/run.json would destroy the run
        report, chunks = make()
        with door.open() as handle:  # renamed into place when complete
            written = write_csv(handle, chunks)
    return report, written, None if door.stdout else door.path
