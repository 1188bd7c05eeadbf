"""The plain Python API: `train`, `predict`, `evaluate`. The CLI is a thin layer over these.

Compute returns data; only the CLI renders tables or writes forecast files.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from lstmcast.config import (ARCH_FIELDS, Cell, DataConfig, Fill, ModelConfig, TrainConfig, WindowNorm, from_json_dict,
                             to_json_dict)
from lstmcast.errors import InputError, LstmcastError
from lstmcast.data.frequency import default_horizon, season_length
from lstmcast.train.defaults import MAX_DEFAULT_LOOKBACK, pick_lookback  # noqa: F401 (MAX_DEFAULT_LOOKBACK: API)
from lstmcast.model.quantiles import parse_levels


@dataclass
class TrainReport:
    run_dir: Path
    metrics: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # what the run directory holds
    model: dict[str, Any] = field(default_factory=dict)  # the network's config, as run.json records it


@dataclass
class PredictReport:
    forecast: Any  # pandas.DataFrame: id column, time column, "forecast"
    new_series: list[str]
    notes: list[str] = field(default_factory=list)
    history: dict[str, Any] = field(default_factory=dict)  # id -> values before the forecast (for plots)


def _series_meta(series, lookback: int, center: np.ndarray, scale: np.ndarray) -> list[dict[str, Any]]:
    out = []
    for i, values in enumerate(series.values):
        last = series.times_after(i, len(values) - 1, 1)[0]
        out.append({
            "id": series.ids[i], "center": float(center[i]), "scale": float(scale[i]), "length": len(values),
            "last_time": last.isoformat() if hasattr(last, "isoformat") else int(last),
            "tail": [float(v) for v in values[-lookback:]],
        })
    return out


def _default_run_dir(path: Path) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path("runs") / f"{stamp}-{path.stem}"
    while run_dir.exists():
        run_dir = run_dir.with_name(run_dir.name + "-1")
    return run_dir


def train(data: str | Path, data_config: DataConfig = DataConfig(), *, horizon: int | None = None,
          lookback: int | None = None, hidden: int = 64, layers: int = 2, dropout: float = 0.0,
          window_norm: WindowNorm = ModelConfig.window_norm, skip: bool = ModelConfig.skip,
          cell: Cell = ModelConfig.cell, bidirectional: bool = False, attention: bool = False, quantiles=(),
          train_config: TrainConfig = TrainConfig(), run_dir: str | Path | None = None,
          overwrite: bool = False, progress=None, on_note=None, wait: float = 0.0) -> TrainReport:
    """Train a global stacked LSTM on every series of a CSV and write a run directory.

    Args:
        data: CSV file (wide or long layout).
        horizon: steps forecast at once; default by frequency (48 hourly, 14 daily, 12 monthly...).
        lookback: input steps; default a few seasons, at least two horizons.
        cell, bidirectional, attention: the encoder's cell, whether it also reads each window
            backwards (one origin per sequence), whether the head attends over all its states.
        quantiles: levels in (0, 1), e.g. (0.1, 0.5, 0.9) or "0.1,0.5,0.9": a quantile head, calibrated.
        run_dir: where the run goes; default a new directory under ./runs.
        progress: called with an `EpochInfo` after every epoch.
        on_note: called with each note (what was detected or repaired) before training starts.
        wait: seconds to wait while another lstmcast writes the same run directory (`BusyError` after).

    Ctrl-C (KeyboardInterrupt) stops training and still writes the run, with the best
    weights so far and the state `resume` continues from; a NaN or infinite loss writes
    the best weights of the epochs before it and raises `LstmcastError`.
    """
    from lstmcast.train import distributed
    from lstmcast.run import locking
    from lstmcast.run.rundir import check_target

    path, levels = Path(data), parse_levels(quantiles)  # a bad level fails before any work
    run_dir = Path(run_dir) if run_dir is not None else _default_run_dir(path)
    # Under torchrun only rank 0 locks and writes. The check comes before any work: a refusal after an hour helps nobody.
    with distributed.session(train_config.device) as dist, distributed.main_rank_first(
            dist, lambda: locking.hold(run_dir, wait, "run directory"), lambda: check_target(run_dir, overwrite)):
        arch = dict(hidden=hidden, layers=layers, dropout=dropout, window_norm=window_norm, skip=skip, cell=cell,
                    bidirectional=bidirectional, attention=attention, quantiles=levels)
        return _train(path, data_config, horizon, lookback, arch, train_config, run_dir, overwrite, progress,
                      on_note, None)


def resume(run_dir: str | Path, *, progress=None, on_note=None, wait: float = 0.0) -> TrainReport:
    """Continue a run that Ctrl-C or SIGTERM stopped, with the options it was started with.

    The result is the one the run would have reached uninterrupted (same seed, CPU).
    Raises RunDirError when the run holds no resume state, InputError when its data changed.
    """
    from lstmcast.train import distributed
    from lstmcast.run import locking
    from lstmcast.train import state as state_io

    run_dir = Path(run_dir)
    with distributed.session(distributed.device_of_run(run_dir)) as dist, distributed.main_rank_first(
            dist, lambda: locking.hold(run_dir, wait, "run directory")):
        source, data_config, model_config, train_config, state = state_io.load(run_dir)
        arch = {k: getattr(model_config, k) for k in ARCH_FIELDS}
        return _train(source, data_config, model_config.horizon, model_config.lookback, arch, train_config,
                      run_dir, True, progress, on_note, state)


def _train(path: Path, data_config: DataConfig, horizon: int | None, lookback: int | None, arch: dict[str, Any],
           train_config: TrainConfig, run_dir: Path, overwrite: bool, progress, on_note, start,
           series=None) -> TrainReport:
    from lstmcast.run import rundir
    from lstmcast.run import configfile
    from lstmcast.data import covariates
    from lstmcast.train import distributed
    from lstmcast.model import intervals
    from lstmcast import plots
    from lstmcast.data import scaling
    from lstmcast.train import signals
    from lstmcast.data import widecsv
    from lstmcast.data import windows
    from lstmcast.train import state as state_io
    from lstmcast.data.series import load_series
    from lstmcast.evaluate.metrics import mase_scale, overall, series_metrics
    from lstmcast.train.device import pick_device

    device = pick_device(train_config.device)  # a bad --device fails before any work
    own, series = series is None, load_series(path, data_config) if series is None else series  # backtest refits
    notes = list(series.notes)
    horizon = horizon or default_horizon(series.freq)
    val_size, why = (train_config.val_size, None) if train_config.val_size or not arch["quantiles"] else \
        intervals.default_val_size([len(v) for v in series.values], horizon, lookback)
    val_size, notes = val_size or horizon, notes + [why] * bool(why)
    if val_size < horizon:
        raise InputError(f"--val-size {val_size} is shorter than --horizon {horizon}; use at least {horizon}")
    season = season_length(series.freq)
    lengths = [len(v) for v in series.values]
    lookback = pick_lookback(lengths, series.ids, horizon, val_size, season, lookback, path, notes)
    if arch["bidirectional"] and train_config.forking > 1:  # K origins would cost K backward passes
        notes.append(f"bidirectional: one origin per sequence (--forking {train_config.forking} -> 1)")
        train_config = replace(train_config, forking=1)
    spec, channels, cov_meta = covariates.prepare(path, series, data_config, val_size)
    notes += [covariates.describe(spec)] if spec else []
    if start is not None:
        notes.append(f"resuming after epoch {start.epoch} of {train_config.epochs}")

    for note in notes if on_note is not None else ():
        on_note(note)

    # Scalers see only the training part: the validation tail must not leak into them.
    center, scale = scaling.fit_scalers([v[:-val_size] for v in series.values], train_config.scaler)
    flat, offsets = windows.concat_scaled(series.values, center, scale)  # float32, no scaled float64 copy
    cov = windows.concat_shared(channels) if channels else None  # [T, C] beside flat; shared blocks once
    train_origin = windows.TrainOrigins.of(offsets, lengths, lookback, horizon, val_size)  # no table of them
    val_origin, val_series = windows.val_origins(offsets, lengths, lookback, horizon, val_size)
    naive = [mase_scale(v[:-val_size], season) for v in series.values]  # all the metrics need of the series
    series_meta = _series_meta(series, lookback, center, scale)
    if own:  # gone before training: `flat` holds the series (76 MB of float32 for 10,000 x 2,000 values)
        series.values = []

    from lstmcast.forecast.recursive import forecast_scaled
    from lstmcast.model.numpy_forward import NumpyForecaster
    from lstmcast.model.network import LSTMForecaster
    from lstmcast.train.loop import fit, seed_everything

    model_config = ModelConfig(lookback=lookback, horizon=horizon, input_size=1 + (spec.channels if spec else 0),
                               known_size=spec.known if spec else 0, **arch)
    seed_everything(train_config.seed)
    model = LSTMForecaster(model_config)
    widecsv.release_memory()  # what reading and scaling freed goes back before training's own peak
    result = fit(model, flat, train_origin, val_origin, lookback, horizon, train_config, device, progress, start, cov)
    if (dist := distributed.current()) is not None and not dist.is_main:  # rank 0 scores and writes the run
        return TrainReport(run_dir=run_dir, metrics={**asdict(result), "state": None}, notes=notes)
    if result.stopped == "diverged" and result.best_epoch == 0:
        raise LstmcastError(f"{result.error} before any epoch finished; no run written. "
                            "Lower --lr or check the data for extreme values")
    # A signal from here on must not throw the finished training away: it is recorded, the run written.
    with signals.writing():
        model.cpu()
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        net = NumpyForecaster(model_config, {k: v.numpy() for k, v in state.items()})  # what predict will run

        # Validation metrics in original units, over every validation window of each series.
        steps = np.arange(-lookback, horizon)
        val_windows = flat[val_origin[:, None] + steps]  # [N_val, L + H]
        val_cov = None if cov is None else cov[val_origin[:, None] + steps]
        predicted = forecast_scaled(net, val_windows[:, :lookback], horizon, val_cov).astype(np.float64)
        per_series = []
        for s in range(len(series)):
            rows = val_series == s
            actual = scaling.invert(val_windows[rows, lookback:].astype(np.float64), center[s], scale[s])
            fc = scaling.invert(predicted[rows], center[s], scale[s])
            per_series.append(series_metrics(actual.ravel(), fc.ravel(), naive[s]))

        metrics = {
            "history": result.history, "best_epoch": result.best_epoch, "best_val_loss": result.best_val_loss,
            "stopped": result.stopped, "steps": result.steps, "train_windows": result.train_windows,
            "train_seconds": round(result.train_seconds, 3),
            "windows_per_second": round(result.train_windows / max(result.train_seconds, 1e-9), 1),
            "validation": overall(per_series), "device": str(device), "precision": result.precision,
            "world_size": dist.world if dist is not None else 1,
        }
        if result.error:
            metrics["error"] = result.error
        resolved = replace(data_config, freq=series.freq)
        meta = {
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "model": to_json_dict(model_config), "train": to_json_dict(replace(train_config, val_size=val_size)),
            "data": {
                **to_json_dict(resolved), "source": str(path), "layout": series.layout,
                "id_col": series.id_col if series.layout == "long" else None,
                "time_col": None if series.time_kind == "row" else series.time_col,
                "target": series.target_cols, "target_given": data_config.target is not None,
                "time_kind": series.time_kind, "step": series.step,
                "season": season, "output_id_col": series.id_col, "output_time_col": series.time_col,
            },
            "series": covariates.store(series_meta, cov_meta, lookback),
            **({"covariates": spec.to_json()} if spec else {}),
        }
        if model_config.quantiles:  # conformal corrections from the validation windows, applied by predict
            meta["intervals"], metrics["intervals"] = intervals.calibrate(net, flat, val_origin, cov,
                                                                          series=len(lengths))
        options = configfile.train_options(path, data_config, series, model_config,
                                           replace(train_config, val_size=val_size))
        extra = {rundir.CONFIG_TOML: configfile.dumps(
            "train", options, "the resolved options of this run: lstmcast train --config config.toml").encode()}
        if result.stopped == "interrupted" and result.state is not None:
            extra.update(state_io.to_files(result.state, path))
        png, why = plots.loss_file(metrics, train_config.loss.value)
        if png:
            extra[rundir.LOSS_PNG] = png
        elif why:
            notes.append(why)
            on_note(why) if on_note is not None else None
        out = rundir.save_run(run_dir, state, meta, metrics, overwrite=overwrite, extra=extra)
    if result.stopped == "diverged":
        raise LstmcastError(f"{result.error}; kept the best weights so far (epoch {result.best_epoch}) in {out}. "
                            "Lower --lr or check the data for extreme values")
    files = sorted(p for p in out.iterdir() if p.name in rundir.OWN_FILES)
    return TrainReport(run_dir=out, metrics=metrics, notes=notes, files=files, model=meta["model"])


def _read_like_run(run, data: str | Path):
    """Read `data` with the columns, frequency and fill method the run was trained with."""
    from lstmcast.data.series import load_series

    d = run.meta["data"]
    cfg = from_json_dict(DataConfig, d)
    # Wide files read as in training; columns were chosen with --target or all are series.
    pinned = d.get("layout") == "long" or d.get("target_given", True)
    cfg = replace(cfg, id_col=d.get("id_col"), time_col=d.get("time_col"),
                  target=tuple(d["target"]) if pinned and d.get("target") else None,
                  fill=Fill(d.get("fill", "interpolate")))
    return load_series(Path(data), cfg)


def _histories(run, data: str | Path | None, cut: int = 0):
    """(ids, raw histories, center, scale, origin times, new ids, notes) for forecasting.

    `cut` drops that many points from the end of each series (evaluation hold-out).
    """
    from lstmcast.data import scaling
    from lstmcast.evaluate.folds import fold_history

    lookback = run.model_config.lookback
    known = {s["id"]: s for s in run.meta["series"]}
    if data is None:
        ids = list(known)
        histories = [np.asarray(known[i]["tail"], dtype=np.float64) for i in ids]
        center = np.array([known[i]["center"] for i in ids])
        scale = np.array([known[i]["scale"] for i in ids])
        return ids, histories, center, scale, None, [], []
    series = _read_like_run(run, data)
    fill, gaps = Fill(run.meta["data"].get("fill", "interpolate")), series.gaps or [np.empty(0, np.int64)] * len(series)
    histories = [fold_history(v, g, len(v) - cut, fill) for v, g in zip(series.values, gaps)]  # nothing after the cut
    short = [(i, len(h)) for i, h in zip(series.ids, histories) if len(h) < lookback]
    if short:
        raise InputError(
            f"{data}: series {short[0][0]!r} has {short[0][1]} points before the forecast start, "
            f"fewer than the run's lookback {lookback}; give more history"
        )
    new = [i for i in series.ids if i not in known]
    center = np.array([known[i]["center"] if i in known else np.nan for i in series.ids])
    scale = np.array([known[i]["scale"] if i in known else np.nan for i in series.ids])
    if new:
        # Series the run never saw are scaled on their own history.
        pos = [k for k, i in enumerate(series.ids) if i not in known]
        kind = from_json_dict(TrainConfig, run.meta["train"]).scaler
        c, s = scaling.fit_scalers([histories[k] for k in pos], kind)
        center[pos], scale[pos] = c, s
    return series.ids, histories, center, scale, series, new, list(series.notes)


def predict(run_dir: str | Path, data: str | Path | None = None, horizon: int | None = None) -> PredictReport:
    """Forecast the `horizon` steps after the end of each series.

    Args:
        run_dir: a directory written by `train`.
        data: CSV with recent history (same columns as training); default the stored tails.
        horizon: steps to forecast; beyond the trained horizon forecasts are fed back (recursive).
    """
    import pandas as pd

    from lstmcast.forecast.batches import forecasts

    made = forecasts(run_dir, data, horizon)
    frame = pd.concat(list(made.chunks), ignore_index=True)
    return PredictReport(forecast=frame, new_series=made.new_series, notes=made.notes, history=made.history)


def evaluate(run_dir: str | Path, data: str | Path, test_size: int | None = None,
             season: int | None = None, keep_forecasts: bool = False) -> dict[str, Any]:
    """Hold out the last `test_size` points of each series, forecast them, and score.

    Returns:
        {"overall": {...}, "baselines": {"naive": {...}, "seasonal_naive": {...}},
         "series": {id: {...}}, "test_size": T, "season": m}; each metric dict holds
        mae, rmse, mape, smape, mase. `keep_forecasts` adds "forecast" and "history" for
        plots (a DataFrame and arrays, not JSON; see `backtest.backtest`).
    """
    from lstmcast.data import covariates
    from lstmcast.model import intervals
    from lstmcast.run.rundir import load_run
    from lstmcast.forecast.recursive import forecast_series_all
    from lstmcast.evaluate.metrics import mase_scale, naive, overall, seasonal_naive, series_metrics

    run = load_run(run_dir)
    steps = test_size or run.model_config.horizon
    if steps < 1:
        raise InputError(f"--test-size {steps}: must be at least 1")
    m = season or run.meta["data"].get("season") or 1
    ids, histories, center, scale, series, _, notes = _histories(run, data, cut=steps)
    cov = covariates.for_forecast(run, series, [len(h) for h in histories], steps, data)
    levels = run.model_config.quantiles
    values, quant = forecast_series_all(run.model, histories, center, scale, steps, run.correction, cov)
    model_rows, naive_rows, snaive_rows, by_series, interval_rows = [], [], [], {}, []
    for k, sid in enumerate(ids):
        actual = series.values[k][-steps:]
        sc = mase_scale(histories[k], m)
        row = series_metrics(actual, values[k], sc)
        model_rows.append(row)
        naive_rows.append(series_metrics(actual, naive(histories[k], steps), sc))
        snaive_rows.append(series_metrics(actual, seasonal_naive(histories[k], steps, m), sc))
        if quant is not None:
            interval_rows.append(intervals.scores(actual, quant[k], levels, sc))
        by_series[sid] = {**row, "intervals": interval_rows[-1]} if quant is not None else row
    extra = {"intervals": intervals.overall(interval_rows, levels)} if quant is not None else {}
    result = {
        "overall": overall(model_rows),
        "baselines": {"naive": overall(naive_rows), "seasonal_naive": overall(snaive_rows)},
        "series": by_series, "test_size": steps, "season": m, "notes": notes, **extra,
    }
    if keep_forecasts:
        from lstmcast.evaluate.folds import forecast_frame

        result.update(forecast=forecast_frame(series, values, [len(h) for h in histories], steps, quant=quant,
                                              levels=levels),
                      history=dict(zip(ids, histories)))
    return result
