"""The public Python API: `train`, `resume`, `predict`, `predict_to_file`, `evaluate`, `backtest`,
`evaluate_to_file`, `detect`, `detect_to_file`.

The CLI is a thin layer over these; nothing inside the package below the CLI imports
this module. Compute returns data; only the CLI renders tables. Wherever a data file
is taken, a pandas DataFrame may be given instead: it is read as the same table in a
CSV would be (layout detection, checks, messages naming `DataFrame`).

    from lstmcast import api
    report = api.train("sales.csv", horizon=14)           # or api.train(df, horizon=14)
    forecast = api.predict(report.run_dir).forecast      # a DataFrame: id, time, forecast
    scores = api.evaluate(report.run_dir, "sales.csv")   # a dict; .metrics and .forecasts are DataFrames
    found = api.detect(report.run_dir, "sales.csv")      # found.frame: score and anomaly per point
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lstmcast.config import ARCH_FIELDS, Cell, DataConfig, DetectScore, ModelConfig, TrainConfig, WindowNorm
from lstmcast.data.frames import Data, label
from lstmcast.detect.workflow import DEFAULT_WINDOW, DetectReport
from lstmcast.forecast.batches import PredictReport, Written
from lstmcast.model.quantiles import parse_levels
from lstmcast.train.defaults import MAX_DEFAULT_LOOKBACK  # noqa: F401 (part of the API)
from lstmcast.train.progress import ProgressFn
from lstmcast.train.workflow import TrainReport

__all__ = ["TrainReport", "PredictReport", "Written", "DetectReport", "Evaluation", "train", "resume", "predict",
           "predict_to_file", "evaluate", "backtest", "evaluate_to_file", "detect", "detect_to_file"]

NoteFn = Callable[[str], None]


class Evaluation(dict):
    """What `evaluate` and `backtest` return: the dict `evaluate --output` writes (JSON-ready), and

    Attributes:
        metrics: DataFrame, one row per series (and fold): id, [fold], cutoff (the time of the
            last point the forecast saw), mase, smape, mape, mae, rmse.
        forecasts: DataFrame, one row per forecast point: id, time, [fold], forecast,
            [quantile columns], actual.
    """

    metrics: Any
    forecasts: Any


def _evaluation(result: dict[str, Any], keep_forecasts: bool) -> Evaluation:
    """The folds' result with its DataFrames as attributes; "forecast" and "history" stay in the
    dict only when asked for (`keep_forecasts`: plots), so that the dict stays JSON."""
    out = Evaluation(result)
    out.metrics = out.pop("per_series")
    out.forecasts = out["forecast"] if keep_forecasts else out.pop("forecast")
    if not keep_forecasts:
        out.pop("history")
    return out


def _default_run_dir(path: Path) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path("runs") / f"{stamp}-{path.stem}"
    while run_dir.exists():
        run_dir = run_dir.with_name(run_dir.name + "-1")
    return run_dir


def train(data: Data, data_config: DataConfig = DataConfig(), *, horizon: int | None = None,
          lookback: int | None = None, hidden: int = 64, layers: int = 2, dropout: float = 0.0,
          window_norm: WindowNorm = ModelConfig.window_norm, skip: bool = ModelConfig.skip,
          cell: Cell = ModelConfig.cell, bidirectional: bool = False, attention: bool = False, quantiles: str | Sequence[float] = (),
          dilations: str | Sequence[int] | None = None, train_config: TrainConfig = TrainConfig(), run_dir: str | Path | None = None,
          overwrite: bool = False, progress: ProgressFn | None = None, on_note: NoteFn | None = None,
          wait: float = 0.0, threads: int | None = None) -> TrainReport:
    """Train a global stacked LSTM on every series of a CSV and write a run directory.

    Args:
        data: CSV or Parquet file, or a pandas DataFrame (wide or long layout; a DataFrame's
            index is a column when it is named or holds times).
        horizon: steps forecast at once; default by frequency (48 hourly, 14 daily, 12 monthly...).
        lookback: input steps; default a few seasons, at least two horizons.
        cell, bidirectional, attention: the encoder's cell, whether it also reads each window
            backwards (one origin per sequence), whether the head attends over all its states.
        quantiles: levels in (0, 1), e.g. (0.1, 0.5, 0.9) or "0.1,0.5,0.9": a quantile head, calibrated.
        dilations: per layer, how many steps back it links, e.g. (1, 24) or "1,24"; "none"; None or
            "auto": the last layer dilated by the season the data show (train.defaults.pick_dilations).
        run_dir: where the run goes; default a new directory under ./runs.
        progress: called with an `EpochInfo` after every epoch.
        on_note: called with each note (what was detected or repaired) before training starts.
        wait: seconds to wait while another lstmcast writes the same run directory (`BusyError` after).
        threads: torch threads; default `train.device.choose_threads` (the free CPUs).

    Ctrl-C (KeyboardInterrupt) stops training and still writes the run, with the best
    weights so far and the state `resume` continues from; before the first epoch has
    finished there is nothing to keep, and it raises `lstmcast.errors.Interrupted` (exit
    code 130, or 143 for SIGTERM) without writing anything. A NaN or infinite loss writes
    the best weights of the epochs before it and raises `LstmcastError`.
    """
    from lstmcast.train import distributed
    from lstmcast.run import locking
    from lstmcast.run.rundir import check_target
    from lstmcast.train.workflow import train_run

    from lstmcast.train.defaults import parse_dilations

    _check_train_options(train_config, threads)  # a bad option fails before any work
    path, levels = label(data), parse_levels(quantiles)  # a bad level too
    dilated = parse_dilations(dilations)
    run_dir = Path(run_dir) if run_dir is not None else _default_run_dir(path)
    # Under torchrun only rank 0 locks and writes. The check comes before any work: a refusal after an hour helps nobody.
    with distributed.session(train_config.device) as dist, distributed.main_rank_first(
            dist, lambda: locking.hold(run_dir, wait, "run directory"), lambda: check_target(run_dir, overwrite)):
        arch = dict(hidden=hidden, layers=layers, dropout=dropout, window_norm=window_norm, skip=skip, cell=cell,
                    bidirectional=bidirectional, attention=attention, quantiles=levels, dilations=dilated)
        return train_run(data, data_config, horizon, lookback, arch, train_config, run_dir, overwrite, progress,
                         on_note, None, threads=threads)


def _check_train_options(train_config: TrainConfig, threads: int | None) -> None:
    """InputError (exit 2) for a training option that is not finite or beyond `config.TRAIN_LIMITS`."""
    from lstmcast.config import train_problem
    from lstmcast.errors import InputError

    problem = train_problem(train_config)
    if problem is not None:
        name, what = problem
        raise InputError(f"--{name.replace('_', '-')} {getattr(train_config, name)!r}: {what.split(' (')[0]}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise InputError(f"--threads {threads!r}: give a whole number of threads, at least 1")


def resume(run_dir: str | Path, *, data: Any = None, progress: ProgressFn | None = None,
           on_note: NoteFn | None = None, wait: float = 0.0, threads: int | None = None) -> TrainReport:
    """Continue a run that Ctrl-C or SIGTERM stopped, with the options it was started with.

    The result is the one the run would have reached uninterrupted (same seed, CPU).
    `data`: for a run trained on a DataFrame, that DataFrame again (a file is found by its path).
    Raises RunDirError when the run holds no resume state, InputError when its data changed.
    """
    from lstmcast.train import distributed
    from lstmcast.run import locking
    from lstmcast.train import state as state_io
    from lstmcast.train.workflow import train_run

    run_dir = Path(run_dir)
    with distributed.session(distributed.device_of_run(run_dir)) as dist, distributed.main_rank_first(
            dist, lambda: locking.hold(run_dir, wait, "run directory")):
        source, record, state = state_io.load(run_dir, data)
        model_config = record.model
        arch = {k: getattr(model_config, k) for k in ARCH_FIELDS}
        # the members still to train read what the run planned for them (run.json's recipe; older runs: one lookback)
        planned = record.recipe
        arch["member_lookbacks"] = planned.member_lookbacks if planned is not None else model_config.member_lookbacks
        return train_run(source, record.data.read_config(), model_config.horizon, model_config.lookback, arch,
                         record.train, run_dir, True, progress, on_note, state, threads=threads)


def predict(run_dir: str | Path, data: Data | None = None, horizon: int | None = None) -> PredictReport:
    """Forecast the `horizon` steps after the end of each series.

    Args:
        run_dir: a directory written by `train`.
        data: CSV or DataFrame with recent history (same columns as training); default the stored tails.
        horizon: steps to forecast; beyond the trained horizon forecasts are fed back (recursive).
    """
    import pandas as pd

    from lstmcast.forecast.batches import forecasts

    made = forecasts(run_dir, data, horizon)
    frame = pd.concat(list(made.chunks), ignore_index=True)
    return PredictReport(forecast=frame, new_series=made.new_series, notes=made.notes, history=made.history)


def predict_to_file(run_dir: str | Path, data: Data | None = None, horizon: int | None = None,
                    output: str | Path | None = None, wait: float = 0.0, whole: bool = False
                    ) -> tuple[PredictReport, Written, Path | None]:
    """Forecast and write the CSV: `output` ('-' for stdout; default forecast.csv in the run directory).

    The output is locked while it is written (`BusyError` after `wait` seconds) and replaced
    atomically, batch by batch. `whole` also keeps the whole forecast in the report (for plots).
    Returns (report, what was written, the path written or None for stdout).
    """
    from lstmcast.forecast.batches import write_forecast

    return write_forecast(run_dir, data, horizon, output, wait, whole)


def evaluate(run_dir: str | Path, data: Data, test_size: int | None = None,
             season: int | None = None, keep_forecasts: bool = False) -> Evaluation:
    """Hold out the last `test_size` points of each series of `data` (a file or DataFrame), forecast them, and score.

    Returns an `Evaluation`: the dict {"overall": {...}, "baselines": {"naive": {...},
    "seasonal_naive": {...}}, "series": {id: {...}}, "test_size": T, "season": m} (each
    metric dict holds mae, rmse, mape, smape, mase), with `.metrics` (per series) and
    `.forecasts` (per point, beside the actual values) as DataFrames. `keep_forecasts`
    also puts "forecast" and "history" in the dict for plots (not JSON).
    """
    from lstmcast.evaluate.folds import evaluate as evaluate_fn

    return _evaluation(evaluate_fn(run_dir, data, test_size=test_size, season=season),
                       keep_forecasts)


def backtest(run_dir: str | Path, data: Data, folds: int = 3, step: int | None = None,
             horizon: int | None = None, refit: bool = False, season: int | None = None,
             keep_forecasts: bool = False, on_fold: Callable[[str], None] | None = None) -> Evaluation:
    """Rolling-origin evaluation of a run on `data` (a file or DataFrame) at `folds` cut-offs `step` steps apart.

    Series too short for every fold are left out, named in a note. Returns an `Evaluation`:
    the dict `evaluate --backtest --output` writes (see `lstmcast.evaluate.folds.backtest`),
    with `.metrics` (per series and fold, with its cut-off) and `.forecasts` (the forecasts
    from every cut-off, with a fold column, beside the actual values) as DataFrames.
    """
    from lstmcast.evaluate.folds import backtest as backtest_fn

    return _evaluation(backtest_fn(run_dir, data, folds=folds, step=step, horizon=horizon, refit=refit,
                                   season=season, on_fold=on_fold), keep_forecasts)


def evaluate_to_file(run_dir: str | Path, data: Data, output: str | Path, *, backtest: bool = False,
                     wait: float = 0.0, **options: Any) -> tuple[Evaluation, Path | None]:
    """`evaluate` (or `backtest` with `backtest=True`) of `data` (a file or DataFrame), its metrics
    written as JSON to `output` ('-': stdout): the dict, not the `.metrics` and `.forecasts` DataFrames.

    The output goes through the same door as forecasts: the run's own files (its
    metrics.json too) are refused before any work, it is locked while the metrics are
    computed (`BusyError` after `wait` seconds) and replaced atomically. `options` go to
    `evaluate` or `backtest`. Returns (the result, the path written or None for stdout).
    """
    import json

    from lstmcast.run.output import Door

    door = Door(output, run_dir)
    with door.hold(wait):
        result = _backtest(run_dir, data, **options) if backtest else evaluate(run_dir, data, **options)
        plain = {k: v for k, v in result.items() if k not in ("notes", "forecast", "history")}
        with door.open() as handle:
            handle.write(json.dumps(plain, indent=2, allow_nan=False) + "\n")
    return result, None if door.stdout else door.path


_backtest = backtest  # evaluate_to_file's `backtest` flag shadows the function


def detect(run_dir: str | Path, data: Data, *, level: float | None = None, last: int | None = None,
           stride: int | None = None, window: int = DEFAULT_WINDOW, refit_every: int | None = None,
           flatline: bool | None = None, score: DetectScore | None = None, ahead: int | None = None,
           fallback: bool | None = None, on_note: NoteFn | None = None) -> DetectReport:
    """Score every point of every series of `data` after the run's lookback against its forecast.

    Each point is forecast from the values before it only (origins `stride` steps apart;
    `expected` is the mean of its forecasts made at most `ahead` steps ahead: by default, for a
    file of several series its one-step forecast (stride 1, ahead 1), for one series the mean of
    the forecasts 1 to horizon steps ahead from origins a third of the horizon apart) and scored
    against past residuals over the `window` points before it (a file of several series: each
    residual over its local spread, against those of every series on the file's time grid; one
    series: its own raw residuals): `score` in [0, 1] is one minus the conformal p-value,
    `anomaly` is score > `level`, exactly when the value lies outside [`lower`, `upper`].
    Changing a value never changes the score of an earlier point.

    Args:
        run_dir: a directory written by `train` (the target alone: no covariates).
        data: CSV or DataFrame with the run's columns; series the run never saw are scored too.
        level: the interval's level, in (0, 1).
        last: score only the newest `last` points of each series (the earlier ones still
            calibrate them).
        refit_every: retrain the run's configuration (torch) on each series' values before
            every multiple of this many positions, for the origins from there on.
        flatline: also score how long a value repeats against past runs of repeats (a stuck
            sensor; of every series of a file of several, the series' own for one), joined with
            the residual's p-value (weighted Bonferroni, 2% to the run). None: on for several
            series (planted stuck stretches found far more often, benchmarks/RESULTS.md), off for
            one series (a stream: on NAB it cost 0.2 points).
        fallback: a file of several series scored `rank`: at each position where, over the
            `window` before it, the last value (the value before each point) missed the series by
            under 0.9 times the network's one-step forecasts, the points are set against the last
            value (a point above 0.99 read, once, as the value before it by the next), scored the
            same way; the points scored stay the same. `report.last_value` counts those set against
            the last value. None: on where it applies; True elsewhere is an InputError.
        level, score: None: rank scores at 0.99 for a file of several series, multiscale scores
            at 0.9995 for one series (NAB's one threshold; `workflow.default_scoring`).
        score: `rank`, the score above; `likelihood`, NAB's numenta detector's anomaly likelihood
            of the residuals (calibration.likelihood): how far the mean of the last 10 lies above
            the means over `window` points before, as 1 - Q(z), HTM's filter, and 1 for a value
            beyond the range of all before it. `anomaly` is then score > `level`, inside
            [`lower`, `upper`] (the rank score's interval) or not. NAB 63.7 against 57.4 (level
            0.9999945), but not calibrated: a trending series is flagged at each new high.
            `multiscale`, for streams (calibration.multiscale): one minus min(1, k min_m p_m), p_m the
            conformal p-value of the mean of the last m residuals (m = 1, 10, 100) among the series' own
            past means, k the scales scored; a point above `level` within 100 points after one is
            capped at `level` (flagged where an anomaly starts); 1 for a value beyond the range of all
            before it, on the far side of its forecast, with its residual in the top tenth. `anomaly` is
            score > `level` as for the likelihood; the range check only where the series set no such record
            in the half lookback before. NAB 70.2 at level 0.9995 (rank 57.4).
        on_note: called with a line as each refit starts.

    Returns a `DetectReport`: `frame` (id, time, value, expected, lower, upper, score,
    anomaly), counts, and the flagged points.
    """
    import pandas as pd

    from lstmcast.detect.workflow import detection, report

    made = detection(run_dir, data, level=level, last=last, stride=stride, window=window, refit_every=refit_every,
                     flatline=flatline, score=score, on_note=on_note, ahead=ahead, fallback=fallback)
    return report(made, pd.concat(list(made.chunks), ignore_index=True))


def detect_to_file(run_dir: str | Path, data: Data, output: str | Path | None = None, *,
                   level: float | None = None, last: int | None = None, stride: int | None = None,
                   window: int = DEFAULT_WINDOW, refit_every: int | None = None, flatline: bool | None = None,
                   score: DetectScore | None = None, wait: float = 0.0, keep_series: int = 0,
                   ahead: int | None = None, fallback: bool | None = None, on_note: NoteFn | None = None
                   ) -> tuple[DetectReport, Path | None]:
    """`detect`, written as CSV to `output` ('-' for stdout; default anomalies.csv in the run directory).

    The output is locked while it is written (`BusyError` after `wait` seconds) and
    replaced atomically, batch by batch. The report's `frame` holds the rows of `keep_series`
    series only, for plots: those with a flagged point first, then the others, in file order. Returns (report, the path written or None).
    """
    import pandas as pd

    from lstmcast.detect.workflow import report, write_detection

    flagged: list[Any] = []  # rows of series with a flagged point, then of the others: plots show those first
    others: list[Any] = []

    def keep(frame: Any) -> None:
        ids = frame.iloc[:, 0]
        hits = ids[frame["anomaly"].to_numpy(dtype=bool)].unique()
        for kept, chosen in ((flagged, hits), (others, ids[~ids.isin(hits)].unique())):
            room = keep_series - sum(part.iloc[:, 0].nunique() for part in kept)
            if room > 0 and len(chosen):
                kept.append(frame[ids.isin(chosen[:room])])

    made, target = write_detection(run_dir, data, output, wait, keep, level=level, last=last, stride=stride,
                                   window=window, refit_every=refit_every, flatline=flatline, score=score,
                                   on_note=on_note, ahead=ahead, fallback=fallback)
    parts = flagged + others
    frame = pd.concat(parts, ignore_index=True) if parts else None
    if frame is not None:  # at most keep_series series, the flagged ones first
        first = frame.iloc[:, 0].drop_duplicates().iloc[:keep_series]
        frame = frame[frame.iloc[:, 0].isin(first)]
    return report(made, frame), target
