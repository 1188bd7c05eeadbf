"""Rolling-origin backtests, and the plain hold-out evaluation, which is their one-fold case.

For a series of n points, horizon H, K folds and step S, fold k (1..K) sees the points
before its cut-off c_k = n - H - (K - k) * S and is scored on the H points after it, so
the last fold's actuals end where the series ends:

    fold 1    ==========history==========|--H--|
    fold 2    ============history============|--H--|                 S steps later
    fold K    ==================history==================|--H--|    the series' end

No value at or after a cut-off reaches its fold. The history is cut before anything is
computed from it; a gap the fill method interpolated across the cut-off is filled again
from the history alone (interpolation reached past it); series the run never saw are
scaled on the fold's history; with `refit` a new network is trained with the run's own
configuration on the fold's histories only (its scalers fitted on them too), in a
temporary directory removed afterwards. Without `refit` the run's network and scalers
are used as trained: a run trained on the same data has seen the early folds' actuals.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lstmcast.config import ARCH_FIELDS
from lstmcast.data.frames import label
from lstmcast.errors import InputError, LstmcastError
from lstmcast.wording import plural
from lstmcast.forecast.histories import cut_histories, floors, read_like_run, scalers

FORECASTERS = ("lstmcast", "naive", "seasonal_naive")


def cutoffs(length: int, horizon: int, folds: int, step: int) -> list[int]:
    """Where each fold's history ends (points before the cut-off), oldest fold first."""
    return [length - horizon - (folds - k) * step for k in range(1, folds + 1)]



def forecast_frame(series, predicted: np.ndarray, cuts: list[int], steps: int, fold: int | None = None,
                   quant: np.ndarray | None = None, levels: tuple[float, ...] = ()):
    """Long DataFrame of forecasts from each series' cut-off: id, time, [fold], forecast, [q-columns], actual.

    `quant` [S, steps, Q] adds one column per level in `levels`, named as `predict` names them.
    """
    import pandas as pd

    from lstmcast.model.quantiles import column_name

    frames = []
    for i, sid in enumerate(series.ids):
        frame = pd.DataFrame({series.id_col: sid, series.time_col: series.times_after(i, cuts[i], steps)})
        if fold is not None:
            frame["fold"] = fold
        frame["forecast"] = predicted[i]
        for j, level in enumerate(levels if quant is not None else ()):
            frame[column_name(level)] = quant[i, :, j]
        frame["actual"] = series.values[i][cuts[i]:cuts[i] + steps]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _label(t: object) -> object:
    return t.isoformat() if hasattr(t, "isoformat") else int(t)


METRIC_NAMES = ("mase", "smape", "mape", "mae", "rmse")


def metrics_frame(series, cuts: list[int], by_series: dict[str, dict[str, Any]], fold: int | None = None):
    """Long DataFrame of each series' scores: id, [fold], cutoff (the time of the last point the
    forecast saw), mase, smape, mape, mae, rmse."""
    import pandas as pd

    rows = {series.id_col: list(series.ids)}
    if fold is not None:
        rows["fold"] = [fold] * len(series.ids)
    rows["cutoff"] = [series.times_after(i, c - 1, 1)[0] for i, c in enumerate(cuts)]
    for name in METRIC_NAMES:
        rows[name] = [by_series[sid][name] for sid in series.ids]
    return pd.DataFrame(rows)


def refit_run(run: Any, series: Any, histories: list[np.ndarray], data: Path
              ) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, Any]:
    """Train the run's configuration on these histories alone (a backtest fold, a detect refit).

    Returns (network, center, scale, log, the new run).
    """
    from lstmcast.run.rundir import load_run
    from lstmcast.train import signals
    from lstmcast.train.workflow import train_run

    record = run.record
    cfg = record.model
    cut = replace(series, values=histories, notes=[], gaps=[])
    with tempfile.TemporaryDirectory(prefix="lstmcast-refit-") as tmp:
        arch = {k: getattr(cfg, k) for k in (*ARCH_FIELDS, "member_lookbacks")}  # the members read what they read
        report = train_run(data, record.data.read_config(), cfg.horizon, cfg.lookback, arch, record.train,
                           Path(tmp) / "run", False, series=cut,
                           keep_budget=record.train.epoch_steps is None)  # a run from before sized budgets
        if report.metrics["stopped"] == "interrupted" or signals.received() is not None:
            raise KeyboardInterrupt  # Ctrl-C/SIGTERM during training, or held back while it wrote
        fold_run = load_run(report.run_dir)
    center = np.array([fold_run.record.get(i).center for i in series.ids])
    scale = np.array([fold_run.record.get(i).scale for i in series.ids])
    log = np.array([fold_run.record.get(i).log for i in series.ids], dtype=bool)
    return fold_run.model, center, scale, log, fold_run


@dataclass
class FoldScore:
    """One fold: the forecasts from each series' cut-off and their scores beside the baselines."""

    rows: dict[str, list[dict[str, Any]]]  # forecaster -> per-series metrics
    by_series: dict[str, dict[str, Any]]
    intervals: list[dict[str, Any]]  # per-series interval scores (quantile runs)
    predicted: np.ndarray  # [S, steps]
    quant: np.ndarray | None  # [S, steps, Q]


def score_fold(run: Any, net: Any, series: Any, histories: list[np.ndarray], cuts: list[int], center: np.ndarray,
               scale: np.ndarray, log: np.ndarray | None, steps: int, season: int, data: str | Path) -> FoldScore:
    """Forecast `steps` points after each cut-off with `net` and score them (MASE on the history alone).

    `run` is the run whose covariates and calibration the forecast uses (a refit's own run).
    """
    from lstmcast.data import covariates
    from lstmcast.evaluate.metrics import mase_scale, naive, seasonal_naive, series_metrics
    from lstmcast.forecast.recursive import forecast_series_all, require_finite
    from lstmcast.model import intervals

    levels = run.model_config.quantiles
    cov = covariates.for_forecast(run, series, cuts, steps, data)  # None: the target alone
    floor = floors(run, series.ids, histories)  # counts are never forecast below zero
    predicted, quant = forecast_series_all(net, histories, center, scale, steps, run.correction, cov, floor, log)
    require_finite(run.path, series.ids, predicted, quant, run.model_config.horizon)
    rows: dict[str, list] = {name: [] for name in FORECASTERS}
    by_series, fold_intervals = {}, []
    for i, sid in enumerate(series.ids):
        actual = series.values[i][cuts[i]:cuts[i] + steps]
        sc = mase_scale(histories[i], season)
        rows["lstmcast"].append(series_metrics(actual, predicted[i], sc))
        rows["naive"].append(series_metrics(actual, naive(histories[i], steps), sc))
        rows["seasonal_naive"].append(series_metrics(actual, seasonal_naive(histories[i], steps, season), sc))
        by_series[sid] = rows["lstmcast"][-1]
        if quant is not None:
            fold_intervals.append(intervals.scores(actual, quant[i], levels, sc))
            by_series[sid] = {**by_series[sid], "intervals": fold_intervals[-1]}
    return FoldScore(rows, by_series, fold_intervals, predicted, quant)


def _summary(rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    from lstmcast.evaluate.metrics import overall

    return {"overall": overall(rows["lstmcast"]),
            "baselines": {"naive": overall(rows["naive"]), "seasonal_naive": overall(rows["seasonal_naive"])}}


def _season(run: Any, season: int | None) -> int:
    return season or run.record.data.season or 1


def evaluate(run_dir: str | Path, data: str | Path, test_size: int | None = None, season: int | None = None
             ) -> dict[str, Any]:
    """Hold out the last `test_size` points of each series, forecast them, and score: one fold of a backtest.

    Returns:
        {"overall": {...}, "baselines": {"naive": {...}, "seasonal_naive": {...}},
         "series": {id: {...}}, "test_size": T, "season": m}; each metric dict holds
        mae, rmse, mape, smape, mase; and "forecast", "history" and "per_series" for plots and
        tables (DataFrames and arrays, not JSON; see `backtest`; `api.evaluate` keeps them apart).
    """
    from lstmcast.forecast.histories import histories as histories_of
    from lstmcast.model import intervals
    from lstmcast.run.rundir import load_run

    run = load_run(run_dir)
    steps = test_size or run.model_config.horizon
    if steps < 1:
        raise InputError(f"--test-size {steps}: must be at least 1")
    m = _season(run, season)
    h = histories_of(run, data, cut=steps)
    cuts = [len(v) for v in h.values]
    fold = score_fold(run, run.model, h.series, h.values, cuts, h.center, h.scale, h.log, steps, m, data)
    levels = run.model_config.quantiles
    if _inside_training(run, h.series, cuts):
        h.notes.append(f"the last {steps} points lie inside the run's training data (the last horizon was its "
                       "validation window, on which early stopping chose the weights): these scores are in-sample; "
                       "for an honest score use --backtest --refit, or evaluate on data after the training file")
    result = {**_summary(fold.rows), "series": fold.by_series, "test_size": steps, "season": m, "notes": h.notes,
              **({"intervals": intervals.overall(fold.intervals, levels)} if fold.quant is not None else {})}
    result.update(forecast=forecast_frame(h.series, fold.predicted, cuts, steps, quant=fold.quant, levels=levels),
                  history=dict(zip(h.ids, h.values)), per_series=metrics_frame(h.series, cuts, fold.by_series))
    return result


def _inside_training(run: Any, series: Any, cuts: list[int]) -> bool:
    """Whether the first held-out point of a series training saw is at or before its last training time."""
    import pandas as pd

    kind = run.record.data.time_kind
    for k, sid in enumerate(series.ids):
        stored = run.record.get(sid)
        if stored is None:
            continue
        first = series.times_after(k, cuts[k], 1)[0]
        if kind == "row":
            return cuts[k] < stored.length
        last = pd.Timestamp(stored.last_time) if kind == "datetime" else int(stored.last_time)
        return first <= last
    return False


def _long_enough(series: Any, data: Any, need: int, steps: int, folds: int, step: int, refit: bool,
                 notes: list[str]) -> Any:
    """The series with `need` points before the first cut-off; the shorter ones are named in a note and
    left out. InputError when none is long enough."""
    span = steps + (folds - 1) * step  # from the first cut-off to the end
    short = [i for i, v in enumerate(series.values) if len(v) - span < need]
    if not short:
        return series
    why = "lookback + horizon + validation that a refit trains on" if refit else "run's lookback"
    scheme = f"{plural(folds, 'fold')} of {plural(steps, 'step')}" + (f", {step} apart" if folds > 1 else "")
    least = f"at least {need + span} points ({need}, the {why}, before the first cut-off)"
    if len(short) == len(series):
        sid, n = series.ids[short[0]], len(series.values[short[0]])
        fix = "lower --folds or --step, or give longer series" if folds > 1 else "give longer series"
        if refit:
            fix += ", or backtest without --refit (the run as trained needs only its lookback)"
        raise InputError(f"{label(data)}: no series is long enough for {scheme}: each needs {least}, and series "
                         f"{sid!r} has {n} points; {fix}")
    names = [series.ids[i] for i in short]
    notes.append(f"left out {plural(len(short), 'series', 'series')} with fewer than the {need + span} points "
                 f"{scheme} need ({need}, the {why}, before the first cut-off): {names[:10]}"
                 + (f" and {len(names) - 10} more" if len(names) > 10 else ""))
    dropped = set(short)
    keep = [i for i in range(len(series)) if i not in dropped]
    pick = lambda items: [items[i] for i in keep] if items else items  # noqa: E731
    return replace(series, ids=pick(series.ids), values=pick(series.values), starts=pick(series.starts),
                   gaps=pick(series.gaps))


def backtest(run_dir: str | Path, data: str | Path, folds: int = 3, step: int | None = None,
             horizon: int | None = None, refit: bool = False, season: int | None = None,
             on_fold: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Rolling-origin evaluation of a run on `data` at `folds` cut-offs `step` steps apart.

    Args:
        folds: number of cut-offs (K).
        step: steps between consecutive cut-offs; default the horizon (folds do not overlap).
        horizon: steps forecast from each cut-off; default the trained horizon.
        refit: train a new network on each fold's history (the run's configuration) instead
            of using the run's network and scalers as trained.
        season: season for MASE and seasonal naive; default from the frequency.
        on_fold: called with a one-line message as each fold starts.

    Returns:
        {"folds": [{"fold", "cutoff", "before_end", "overall", "baselines", "series"}, ...],
         "overall", "baselines": {"naive", "seasonal_naive"}, "horizon", "step", "season",
         "refit", "notes"}; "cutoff" is the time of the last point a fold sees (null when
         the series end at different times; "before_end" counts the steps from it to the end).
        Also, not JSON (`api.backtest` keeps them apart): "forecast" (DataFrame: id, time, fold,
        forecast, actual), "history" ({id: values before the first cut-off}) for plots and
        "per_series" (DataFrame: id, fold, cutoff, the metrics: `metrics_frame`).
    """
    import pandas as pd

    from lstmcast.model import intervals
    from lstmcast.run.rundir import load_run

    run = load_run(run_dir)
    cfg = run.model_config
    steps = horizon or cfg.horizon
    step = step or steps
    for name, value in (("--folds", folds), ("--step", step), ("--horizon", steps)):
        if value < 1:
            raise InputError(f"{name} {value}: must be at least 1")
    m = _season(run, season)
    series = read_like_run(run, data)
    notes = list(series.notes)
    val_size = run.record.train.val_size or cfg.horizon
    series = _long_enough(series, data, cfg.lookback + (cfg.horizon + val_size if refit else 0), steps, folds, step,
                          refit, notes)
    if not refit:
        notes.append("the run's network and scalers are used as trained: folds inside its training data "
                     "score it on points it has seen; --refit trains each fold on its history alone")
    levels = cfg.quantiles
    pooled: dict[str, list] = {name: [] for name in FORECASTERS}
    pooled_intervals: list[dict] = []
    out_folds, frames, scored = [], [], []
    for k in range(1, folds + 1):
        before_end = steps + (folds - k) * step
        cuts = [len(v) - before_end for v in series.values]
        histories = cut_histories(run, series, cuts)
        ends = [series.times_after(i, c - 1, 1)[0] for i, c in enumerate(cuts)]
        shared = ends[0] if all(t == ends[0] for t in ends) else None
        if on_fold is not None:
            where = f"after {_label(shared)}" if shared is not None else f"{before_end} steps before the end"
            on_fold(f"fold {k}/{folds}: cut-off {where}" + (", refitting" if refit else ""))
        try:
            if refit:
                net, center, scale, log, used = refit_run(run, series, histories, label(data))
            else:
                center, scale, log, _ = scalers(run, series.ids, histories)
                net, used = run.model, run
        except LstmcastError as exc:
            raise type(exc)(f"fold {k} refit: {exc}") from None
        # A refit's intervals are calibrated on its own validation windows, inside the fold's history.
        fold = score_fold(used, net, series, histories, cuts, center, scale, log, steps, m, data)
        frames.append(forecast_frame(series, fold.predicted, cuts, steps, fold=k, quant=fold.quant, levels=levels))
        scored.append(metrics_frame(series, cuts, fold.by_series, fold=k))
        for name in FORECASTERS:
            pooled[name] += fold.rows[name]
        pooled_intervals += fold.intervals
        out_folds.append({
            "fold": k, "cutoff": None if shared is None else _label(shared), "before_end": before_end,
            **_summary(fold.rows), "series": fold.by_series,
            **({"intervals": intervals.overall(fold.intervals, levels)} if fold.quant is not None else {}),
        })
    result: dict[str, Any] = {
        "folds": out_folds, **_summary(pooled), "horizon": steps, "step": step, "season": m, "refit": refit,
        "notes": notes, **({"intervals": intervals.overall(pooled_intervals, levels)} if levels else {}),
    }
    result["forecast"] = pd.concat(frames, ignore_index=True)
    result["per_series"] = pd.concat(scored, ignore_index=True)
    first = [len(v) - steps - (folds - 1) * step for v in series.values]
    result["history"] = {sid: v[:c] for sid, v, c in zip(series.ids, series.values, first)}
    return result
