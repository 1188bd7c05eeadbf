"""The train workflow: read the file, choose the shapes, train, score, calibrate, write the run.

    load_series ─> plan (horizon, val_size, lookback, covariates) ─> scale + windows (Prepared)
        ─> fit (train.loop) ─> score the validation windows in numpy ─> RunRecord ─> save_run

`api.train`, `api.resume` and refits in backtests (`evaluate.folds`) all come through
`train_run`; the run directory it writes is what `predict` reads.
"""

from __future__ import annotations

import datetime as dt
import signal
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from lstmcast.config import DataConfig, ModelConfig, TrainConfig, to_json_dict
from lstmcast.data.frequency import default_horizon, season_length
from lstmcast.errors import EXIT_SIGINT, EXIT_SIGTERM, InputError, Interrupted, LstmcastError
from lstmcast.train.defaults import pick_lookback
from lstmcast.train.progress import ProgressFn

NoteFn = Callable[[str], None]


@dataclass
class TrainReport:
    run_dir: Path
    metrics: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # what the run directory holds
    model: dict[str, Any] = field(default_factory=dict)  # the network's config, as run.json records it


@dataclass
class Plan:
    """The shapes chosen for this data: what the user gave, or the defaults (train.defaults)."""

    horizon: int
    lookback: int
    val_size: int
    season: int
    train_config: TrainConfig
    notes: list[str]


@dataclass
class Prepared:
    """The scaled series as one flat float32 array, and the window origins training and validation read."""

    flat: np.ndarray  # [T] all series, scaled, concatenated
    cov: Any  # [T, C] covariate channels beside flat (windows.SharedRows), or None
    train_origin: Any  # windows.TrainOrigins
    val_origin: np.ndarray  # flat positions of validation origins
    val_series: np.ndarray  # which series each validation origin belongs to
    center: np.ndarray
    scale: np.ndarray
    naive: list[float | None]  # MASE scale of each series' training part
    spec: Any  # data.covariates.Spec or None
    series_records: list[Any]  # run.record.SeriesRecord per series


def _plan(path: Path, series: Any, horizon: int | None, lookback: int | None, quantiles: tuple[float, ...],
          bidirectional: bool, train_config: TrainConfig) -> Plan:
    from lstmcast.model import intervals

    notes = list(series.notes)
    horizon = horizon or default_horizon(series.freq)
    lengths = [len(v) for v in series.values]
    val_size, why = (train_config.val_size, None) if train_config.val_size or not quantiles else \
        intervals.default_val_size(lengths, horizon, lookback)
    val_size, notes = val_size or horizon, notes + [why] * bool(why)
    if val_size < horizon:
        raise InputError(f"--val-size {val_size} is shorter than --horizon {horizon}; use at least {horizon}")
    season = season_length(series.freq)
    lookback = pick_lookback(lengths, series.ids, horizon, val_size, season, lookback, path, notes)
    if bidirectional and train_config.forking > 1:  # K origins would cost K backward passes
        notes.append(f"bidirectional: one origin per sequence (--forking {train_config.forking} -> 1)")
        train_config = replace(train_config, forking=1)
    return Plan(horizon, lookback, val_size, season, train_config, notes)


def _series_records(series: Any, lookback: int, center: np.ndarray, scale: np.ndarray,
                    cov_meta: list[dict[str, Any]]) -> list[Any]:
    from lstmcast.run.record import SeriesRecord

    out = []
    for i, values in enumerate(series.values):
        last = series.times_after(i, len(values) - 1, 1)[0]
        extra = cov_meta[i] if cov_meta else {}
        out.append(SeriesRecord(
            id=series.ids[i], center=float(center[i]), scale=float(scale[i]), length=len(values),
            last_time=last.isoformat() if hasattr(last, "isoformat") else int(last),
            tail=np.asarray(values[-lookback:], dtype=np.float64),
            cov_tail=extra["cov_tail"][-lookback:] if "cov_tail" in extra else None, static=extra.get("static"),
        ))
    return out


def _prepare(path: Path, series: Any, data_config: DataConfig, plan: Plan, own: bool) -> tuple[Prepared, str | None]:
    """Scalers, windows and covariate channels; `own`: the series may be freed once flat holds them."""
    from lstmcast.data import covariates, scaling, windows
    from lstmcast.evaluate.metrics import mase_scale

    lookback, horizon, val_size = plan.lookback, plan.horizon, plan.val_size
    spec, channels, cov_meta = covariates.prepare(path, series, data_config, val_size)
    lengths = [len(v) for v in series.values]
    # Scalers see only the training part: the validation tail must not leak into them.
    center, scale = scaling.fit_scalers([v[:-val_size] for v in series.values], plan.train_config.scaler)
    flat, offsets = windows.concat_scaled(series.values, center, scale)  # float32, no scaled float64 copy
    cov = windows.concat_shared(channels) if channels else None  # [T, C] beside flat; shared blocks once
    train_origin = windows.TrainOrigins.of(offsets, lengths, lookback, horizon, val_size)  # no table of them
    val_origin, val_series = windows.val_origins(offsets, lengths, lookback, horizon, val_size)
    naive = [mase_scale(v[:-val_size], plan.season) for v in series.values]  # all the metrics need of the series
    records = _series_records(series, lookback, center, scale, cov_meta)
    if own:  # gone before training: `flat` holds the series (76 MB of float32 for 10,000 x 2,000 values)
        series.values = []
    prepared = Prepared(flat, cov, train_origin, val_origin, val_series, center, scale, naive, spec, records)
    return prepared, covariates.describe(spec) if spec else None


def _validation_metrics(net: Any, p: Prepared, lookback: int, horizon: int) -> dict[str, Any]:
    """Validation metrics in original units, over every validation window of each series."""
    from lstmcast.data import scaling
    from lstmcast.evaluate.metrics import overall, series_metrics
    from lstmcast.forecast.recursive import forecast_scaled

    steps = np.arange(-lookback, horizon)
    val_windows = p.flat[p.val_origin[:, None] + steps]  # [N_val, L + H]
    val_cov = None if p.cov is None else p.cov[p.val_origin[:, None] + steps]
    predicted = forecast_scaled(net, val_windows[:, :lookback], horizon, val_cov).astype(np.float64)
    per_series = []
    for s in range(len(p.center)):
        rows = p.val_series == s
        actual = scaling.invert(val_windows[rows, lookback:].astype(np.float64), p.center[s], p.scale[s])
        fc = scaling.invert(predicted[rows], p.center[s], p.scale[s])
        per_series.append(series_metrics(actual.ravel(), fc.ravel(), p.naive[s]))
    return overall(per_series)


def _metrics(result: Any, validation: dict[str, Any], device: Any) -> dict[str, Any]:
    from lstmcast.train import distributed

    dist = distributed.current()
    metrics = {
        "history": result.history, "best_epoch": result.best_epoch, "best_val_loss": result.best_val_loss,
        "stopped": result.stopped, "steps": result.steps, "train_windows": result.train_windows,
        "train_seconds": round(result.train_seconds, 3),
        "windows_per_second": round(result.train_windows / max(result.train_seconds, 1e-9), 1),
        "validation": validation, "device": str(device), "precision": result.precision,
        "world_size": dist.world if dist is not None else 1,
    }
    if result.error:
        metrics["error"] = result.error
    return metrics


def _record(path: Path, series: Any, data_config: DataConfig, model_config: ModelConfig, plan: Plan,
            p: Prepared) -> Any:
    from lstmcast.run.record import DataRecord, RunRecord

    resolved = replace(data_config, freq=series.freq, id_col=series.id_col if series.layout == "long" else None,
                       time_col=None if series.time_kind == "row" else series.time_col,
                       target=tuple(series.target_cols))
    data = DataRecord(config=resolved, source=str(path), layout=series.layout, time_kind=series.time_kind,
                      step=series.step, season=plan.season, output_id_col=series.id_col,
                      output_time_col=series.time_col, target_given=data_config.target is not None)
    return RunRecord(model=model_config, train=replace(plan.train_config, val_size=plan.val_size), data=data,
                     series=tuple(p.series_records), covariates=p.spec,
                     created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))


def _extra_files(path: Path, series: Any, data_config: DataConfig, record: Any, result: Any,
                 metrics: dict[str, Any], notes: list[str], on_note: NoteFn | None) -> dict[str, bytes]:
    """config.toml, the resume state of an interrupted run, loss.png."""
    from lstmcast import plots
    from lstmcast.run import configfile, rundir
    from lstmcast.train import state as state_io

    options = configfile.train_options(path, data_config, series, record.model, record.train)
    extra = {rundir.CONFIG_TOML: configfile.dumps(
        "train", options, "the resolved options of this run: lstmcast train --config config.toml").encode()}
    if result.stopped == "interrupted" and result.state is not None:
        extra.update(state_io.to_files(result.state, path))
    png, why = plots.loss_file(metrics, record.train.loss.value)
    if png:
        extra[rundir.LOSS_PNG] = png
    elif why:
        notes.append(why)
        on_note(why) if on_note is not None else None
    return extra


def train_run(path: Path, data_config: DataConfig, horizon: int | None, lookback: int | None,
              arch: dict[str, Any], train_config: TrainConfig, run_dir: Path, overwrite: bool,
              progress: ProgressFn | None = None, on_note: NoteFn | None = None, start: Any = None,
              series: Any = None) -> TrainReport:
    """Train on `path` (or on `series` already read, for backtest refits) and write `run_dir`.

    `arch` holds the `config.ARCH_FIELDS`; `start` a `train.state.TrainState` to resume from.
    """
    from lstmcast.data import widecsv
    from lstmcast.data.series import load_series
    from lstmcast.model import intervals
    from lstmcast.run import rundir
    from lstmcast.train import distributed, signals
    from lstmcast.train.device import pick_device

    device = pick_device(train_config.device, distributed.current())  # a bad --device fails before any work
    own, series = series is None, load_series(path, data_config) if series is None else series  # backtest refits
    plan = _plan(path, series, horizon, lookback, arch["quantiles"], arch["bidirectional"], train_config)
    notes = plan.notes
    p, described = _prepare(path, series, data_config, plan, own)
    notes += [described] if described else []
    if start is not None:
        notes.append(f"resuming after epoch {start.epoch} of {plan.train_config.epochs}")
    for note in notes if on_note is not None else ():
        on_note(note)

    from lstmcast.model.network import LSTMForecaster
    from lstmcast.model.numpy_forward import NumpyForecaster
    from lstmcast.train.loop import fit, seed_everything

    model_config = ModelConfig(lookback=plan.lookback, horizon=plan.horizon,
                               input_size=1 + (p.spec.channels if p.spec else 0),
                               known_size=p.spec.known if p.spec else 0, **arch)
    seed_everything(plan.train_config.seed)
    model = LSTMForecaster(model_config)
    widecsv.release_memory()  # what reading and scaling freed goes back before training's own peak
    result = fit(model, p.flat, p.train_origin, p.val_origin, plan.lookback, plan.horizon, plan.train_config, device,
                 progress, start, p.cov)
    if (dist := distributed.current()) is not None and not dist.is_main:  # rank 0 scores and writes the run
        return TrainReport(run_dir=run_dir, metrics={**asdict(result), "state": None}, notes=notes)
    if result.stopped == "diverged" and result.best_epoch == 0:
        raise LstmcastError(f"{result.error} before any epoch finished; no run written. "
                            "Lower --lr or check the data for extreme values")
    if result.stopped == "interrupted" and result.best_epoch == 0:
        # Nothing learned yet: no weights worth a run, no validation loss (it is inf), nothing to resume.
        signum = signals.received()
        how, code = ("SIGTERM", EXIT_SIGTERM) if signum == signal.SIGTERM else ("Ctrl-C", EXIT_SIGINT)
        kept = f"; the run already at {run_dir} is unchanged" if rundir.is_run(Path(run_dir)) else ""
        raise Interrupted(f"stopped by {how} before the first epoch finished: nothing to keep yet, no run "
                          f"written{kept}; train again and let at least one epoch finish", code)
    # A signal from here on must not throw the finished training away: it is recorded, the run written.
    with signals.writing():
        model.cpu()
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        net = NumpyForecaster(model_config, {k: v.numpy() for k, v in state.items()})  # what predict will run
        metrics = _metrics(result, _validation_metrics(net, p, plan.lookback, plan.horizon), device)
        record = _record(path, series, data_config, model_config, plan, p)
        if model_config.quantiles:  # conformal corrections from the validation windows, applied by predict
            stored, metrics["intervals"] = intervals.calibrate(net, p.flat, p.val_origin, p.cov, series=len(p.center))
            record = replace(record, intervals=stored)
        extra = _extra_files(path, series, data_config, record, result, metrics, notes, on_note)
        out = rundir.save_run(run_dir, state, record, metrics, overwrite=overwrite, extra=extra)
    if result.stopped == "diverged":
        raise LstmcastError(f"{result.error}; kept the best weights so far (epoch {result.best_epoch}) in {out}. "
                            "Lower --lr or check the data for extreme values")
    files = sorted(q for q in out.iterdir() if q.name in rundir.OWN_FILES)
    return TrainReport(run_dir=out, metrics=metrics, notes=notes, files=files, model=to_json_dict(model_config))
