"""Forecasts in batches of series, written to the CSV batch by batch.

A million series times a horizon of 48 is 48 million rows: one DataFrame of them, and
its CSV text, would need many times the memory the forecasts do. `forecasts` yields one
small frame per batch of series; `write_csv` appends each to an open file (the atomic
temporary file of `io.atomic_writer`, renamed into place at the end).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from lstmcast.errors import InputError

BATCH_SERIES = 2048  # series per batch: a few MB of rows at a time


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
    from lstmcast.api import _histories
    from lstmcast.run.rundir import load_run

    run = load_run(run_dir)
    steps = horizon or run.model_config.horizon
    if steps < 1:
        raise InputError(f"--horizon {steps}: must be at least 1")
    ids, histories, center, scale, series, new, notes = _histories(run, data)
    # Covariate and calendar channels (None: the target alone); missing future covariates fail here.
    cov = covariates.for_forecast(run, series, [len(h) for h in histories], steps, data)
    if new:
        notes.append(f"{len(new)} series not seen in training, scaled on their own history: {new[:10]}")
    if run.model_config.quantiles and steps > run.model_config.horizon:
        notes.append(f"quantile columns are empty after step {run.model_config.horizon} (the trained horizon)")
    return Forecasts(_chunks(run, ids, histories, center, scale, series, steps, batch, cov), new, notes,
                     dict(zip(ids, histories)))


def _chunks(run: Any, ids: list[str], histories: list[np.ndarray], center: np.ndarray, scale: np.ndarray,
            series: Any, steps: int, batch: int, cov: np.ndarray | None = None) -> Iterator[Any]:
    import pandas as pd

    from lstmcast.data.series import times_from
    from lstmcast.forecast.recursive import forecast_series_all
    from lstmcast.model.quantiles import column_name

    d = run.meta["data"]
    levels = run.model_config.quantiles
    last_time = {s["id"]: s["last_time"] for s in run.meta["series"]} if series is None else {}
    for lo in range(0, len(ids), batch):
        hi = min(lo + batch, len(ids))
        part = None if cov is None else cov[lo:hi]
        values, quant = forecast_series_all(run.model, histories[lo:hi], center[lo:hi], scale[lo:hi], steps,
                                            run.correction, part)  # [b, steps], [b, steps, Q] or None
        times: list[object] = []
        for k in range(lo, hi):
            if series is None:
                last = last_time[ids[k]]
                origin = pd.Timestamp(last) if d["time_kind"] == "datetime" else int(last)
                times.extend(times_from(d["time_kind"], origin, d.get("freq"), d.get("step", 1), 1, steps))
            else:
                times.extend(series.times_after(k, len(histories[k]), steps))
        yield pd.DataFrame({
            d["output_id_col"]: np.repeat(ids[lo:hi], steps),
            d["output_time_col"]: times,
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
