"""Rolling-origin backtests: forecast from K cut-offs S steps apart and score every fold.

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
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lstmcast.config import ARCH_FIELDS, DataConfig, Fill, TrainConfig, from_json_dict
from lstmcast.errors import InputError, LstmcastError

FORECASTERS = ("lstmcast", "naive", "seasonal_naive")


def cutoffs(length: int, horizon: int, folds: int, step: int) -> list[int]:
    """Where each fold's history ends (points before the cut-off), oldest fold first."""
    return [length - horizon - (folds - k) * step for k in range(1, folds + 1)]


def fold_history(values: np.ndarray, gaps: np.ndarray, cut: int, fill: Fill) -> np.ndarray:
    """`values[:cut]` as the fold may see it.

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


def _as_trained(run, ids: list[str], histories: list[np.ndarray]):
    """The run's network and scalers; series it never saw scaled on their fold history."""
    from lstmcast.data import scaling

    known = {s["id"]: s for s in run.meta["series"]}
    center = np.array([known[i]["center"] if i in known else np.nan for i in ids])
    scale = np.array([known[i]["scale"] if i in known else np.nan for i in ids])
    pos = [k for k, i in enumerate(ids) if i not in known]
    if pos:
        kind = from_json_dict(TrainConfig, run.meta["train"]).scaler
        center[pos], scale[pos] = scaling.fit_scalers([histories[k] for k in pos], kind)
    return run.model, center, scale


def _refit(run, series, histories: list[np.ndarray], data: Path):
    """Train the run's configuration on the fold's histories alone; (network, center, scale)."""
    from lstmcast.train import signals
    from lstmcast.api import _train
    from lstmcast.run.rundir import load_run

    cfg = run.model_config
    train_config = from_json_dict(TrainConfig, run.meta["train"])
    # Runs from before calendar features had none: absent means off.
    data_config = replace(from_json_dict(DataConfig, run.meta["data"]), calendar=run.meta["data"].get("calendar", False))
    cut = replace(series, values=histories, notes=[], gaps=[])
    with tempfile.TemporaryDirectory(prefix="lstmcast-refit-") as tmp:
        arch = {k: getattr(cfg, k) for k in ARCH_FIELDS}
        report = _train(data, data_config, cfg.horizon, cfg.lookback, arch, train_config, Path(tmp) / "run", False,
                        None, None, None, series=cut)
        if report.metrics["stopped"] == "interrupted" or signals.received() is not None:
            raise KeyboardInterrupt  # Ctrl-C/SIGTERM during training, or held back while it wrote
        fold_run = load_run(report.run_dir)
    meta = {s["id"]: s for s in fold_run.meta["series"]}
    center = np.array([meta[i]["center"] for i in series.ids])
    scale = np.array([meta[i]["scale"] for i in series.ids])
    return fold_run.model, center, scale, fold_run


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


def backtest(run_dir: str | Path, data: str | Path, folds: int = 3, step: int | None = None,
             horizon: int | None = None, refit: bool = False, season: int | None = None,
             keep_forecasts: bool = False, on_fold: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Rolling-origin evaluation of a run on `data` at `folds` cut-offs `step` steps apart.

    Args:
        folds: number of cut-offs (K).
        step: steps between consecutive cut-offs; default the horizon (folds do not overlap).
        horizon: steps forecast from each cut-off; default the trained horizon.
        refit: train a new network on each fold's history (the run's configuration) instead
            of using the run's network and scalers as trained.
        season: season for MASE and seasonal naive; default from the frequency.
        keep_forecasts: add "forecast" (DataFrame: id, time, fold, forecast, actual) and
            "history" ({id: values before the first cut-off}) for plots; these are not JSON.
        on_fold: called with a one-line message as each fold starts.

    Returns:
        {"folds": [{"fold", "cutoff", "before_end", "overall", "baselines", "series"}, ...],
         "overall", "baselines": {"naive", "seasonal_naive"}, "horizon", "step", "season",
         "refit", "notes"}; "cutoff" is the time of the last point a fold sees (null when
         the series end at different times; "before_end" counts the steps from it to the end).
    """
    import pandas as pd

    from lstmcast.data import covariates
    from lstmcast.model import intervals
    from lstmcast.api import _read_like_run
    from lstmcast.run.rundir import load_run
    from lstmcast.forecast.recursive import forecast_series_all
    from lstmcast.evaluate.metrics import mase_scale, naive, overall, seasonal_naive, series_metrics

    run = load_run(run_dir)
    cfg = run.model_config
    steps = horizon or cfg.horizon
    step = step or steps
    for name, value in (("--folds", folds), ("--step", step), ("--horizon", steps)):
        if value < 1:
            raise InputError(f"{name} {value}: must be at least 1")
    m = season or run.meta["data"].get("season") or 1
    fill = Fill(run.meta["data"].get("fill", "interpolate"))
    series = _read_like_run(run, data)
    notes = list(series.notes)
    val_size = from_json_dict(TrainConfig, run.meta["train"]).val_size or cfg.horizon
    need = cfg.lookback + (cfg.horizon + val_size if refit else 0)
    for sid, values in zip(series.ids, series.values):
        first = cutoffs(len(values), steps, folds, step)[0]
        if first < need:
            why = "lookback + horizon + validation that a refit trains on" if refit else "run's lookback"
            raise InputError(
                f"{data}: series {sid!r} has {len(values)} points; {folds} folds {step} steps apart with horizon "
                f"{steps} leave {max(first, 0)} before the first cut-off, fewer than the {why} ({need}); "
                "lower --folds or --step, or drop short series"
            )
    if not refit:
        notes.append("the run's network and scalers are used as trained: folds inside its training data "
                     "score it on points it has seen; --refit trains each fold on its history alone")
    gaps = series.gaps or [np.empty(0, dtype=np.int64)] * len(series)
    levels = cfg.quantiles
    pooled: dict[str, list] = {name: [] for name in FORECASTERS}
    pooled_intervals: list[dict] = []
    out_folds, frames = [], []
    for k in range(1, folds + 1):
        before_end = steps + (folds - k) * step
        cuts = [len(v) - before_end for v in series.values]
        histories = [fold_history(v, g, c, fill) for v, g, c in zip(series.values, gaps, cuts)]
        ends = [series.times_after(i, c - 1, 1)[0] for i, c in enumerate(cuts)]
        shared = ends[0] if all(t == ends[0] for t in ends) else None
        if on_fold is not None:
            where = f"after {_label(shared)}" if shared is not None else f"{before_end} steps before the end"
            on_fold(f"fold {k}/{folds}: cut-off {where}" + (", refitting" if refit else ""))
        try:
            net, center, scale, used = _refit(run, series, histories, Path(data)) if refit else \
                (*_as_trained(run, series.ids, histories), run)
        except LstmcastError as exc:
            raise type(exc)(f"fold {k} refit: {exc}") from None
        cov = covariates.for_forecast(used, series, cuts, steps, data)  # None: the target alone
        # A refit's intervals are calibrated on its own validation windows, inside the fold's history.
        predicted, quant = forecast_series_all(net, histories, center, scale, steps, used.correction, cov)
        rows: dict[str, list] = {name: [] for name in FORECASTERS}
        by_series, fold_intervals = {}, []
        for i, sid in enumerate(series.ids):
            actual = series.values[i][cuts[i]:cuts[i] + steps]
            sc = mase_scale(histories[i], m)
            rows["lstmcast"].append(series_metrics(actual, predicted[i], sc))
            rows["naive"].append(series_metrics(actual, naive(histories[i], steps), sc))
            rows["seasonal_naive"].append(series_metrics(actual, seasonal_naive(histories[i], steps, m), sc))
            by_series[sid] = rows["lstmcast"][-1]
            if quant is not None:
                fold_intervals.append(intervals.scores(actual, quant[i], levels, sc))
                by_series[sid] = {**by_series[sid], "intervals": fold_intervals[-1]}
        if keep_forecasts:
            frames.append(forecast_frame(series, predicted, cuts, steps, fold=k, quant=quant, levels=levels))
        for name in FORECASTERS:
            pooled[name] += rows[name]
        pooled_intervals += fold_intervals
        out_folds.append({
            "fold": k, "cutoff": None if shared is None else _label(shared), "before_end": before_end,
            "overall": overall(rows["lstmcast"]),
            "baselines": {"naive": overall(rows["naive"]), "seasonal_naive": overall(rows["seasonal_naive"])},
            "series": by_series,
            **({"intervals": intervals.overall(fold_intervals, levels)} if quant is not None else {}),
        })
    result: dict[str, Any] = {
        "folds": out_folds, "overall": overall(pooled["lstmcast"]),
        "baselines": {"naive": overall(pooled["naive"]), "seasonal_naive": overall(pooled["seasonal_naive"])},
        "horizon": steps, "step": step, "season": m, "refit": refit, "notes": notes,
        **({"intervals": intervals.overall(pooled_intervals, levels)} if levels else {}),
    }
    if keep_forecasts:
        result["forecast"] = pd.concat(frames, ignore_index=True)
        first = [len(v) - steps - (folds - 1) * step for v in series.values]
        result["history"] = {sid: v[:c] for sid, v, c in zip(series.ids, series.values, first)}
    return result
