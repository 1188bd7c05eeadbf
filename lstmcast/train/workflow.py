"""The train workflow: read the file, resolve the recipe, train, score, calibrate, write the run.

    load_series ─> recipe (train.recipe: horizon, val_size, lookback ... budget) ─> scale + windows (Prepared)
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
from lstmcast.data.frames import Data, is_frame, label
from lstmcast.errors import EXIT_SIGINT, EXIT_SIGTERM, Interrupted, LstmcastError
from lstmcast.model.shapes import member_prefix
from lstmcast.train.progress import ProgressFn
from lstmcast.train.recipe import Recipe, resolve
from lstmcast.wording import names

NoteFn = Callable[[str], None]


@dataclass
class TrainReport:
    run_dir: Path
    metrics: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # what the run directory holds
    model: dict[str, Any] = field(default_factory=dict)  # the network's config, as run.json records it


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
    log: np.ndarray  # per series: modelled in logs
    naive: list[float | None]  # MASE scale of each series' training part
    offsets: np.ndarray  # where each series starts in flat
    weight: np.ndarray | None  # per-series loss weights (data.scaling.mase_weights), None: all 1
    spec: Any  # data.covariates.Spec or None
    series_records: list[Any]  # run.record.SeriesRecord per series
    # Per series: its values from its first validation target on, as read (float64): the metrics' actuals.
    # Rebuilt from the float32 scaled array, a 0 came back as 1e-7 and MAPE counted it (1.6e9 %).
    val_actual: list[np.ndarray] = field(default_factory=list)
    pads: np.ndarray | None = None  # per series: padding before it in flat (data.windows.pad_sizes)


def _short_series(ids: list[str], lengths: np.ndarray, pads: np.ndarray) -> str:
    short = [ids[k] for k in np.flatnonzero(pads)]
    return (f"{len(short)} series shorter than lookback + validation + horizon ({names(short)}; the shortest has "
            f"{int(lengths.min())} points)")


def _untrained(ids: list[str], lengths: np.ndarray, horizon: int, val_size: int) -> str:
    """The part of the padding note that names the series too short to train on (forecast all the same)."""
    from lstmcast.data.windows import MIN_INPUT

    least = horizon + val_size + MIN_INPUT
    few = [ids[k] for k in np.flatnonzero(lengths < least)]
    if not few:
        return ""
    return (f"; {len(few)} of them, under {least} points (horizon + validation + {MIN_INPUT}), are not trained on "
            f"but forecast from their padded history: {names(few)}")


def _series_records(series: Any, lookback: int, center: np.ndarray, scale: np.ndarray, log: np.ndarray,
                    cov_meta: list[dict[str, Any]], clip: bool, pads: np.ndarray) -> list[Any]:
    from lstmcast.data.windows import pad_front
    from lstmcast.run.record import SeriesRecord

    out = []
    for i, values in enumerate(series.values):
        last = series.times_after(i, len(values) - 1, 1)[0]
        extra = cov_meta[i] if cov_meta else {}
        out.append(SeriesRecord(
            id=series.ids[i], center=float(center[i]), scale=float(scale[i]), length=len(values),
            last_time=last.isoformat() if hasattr(last, "isoformat") else int(last),
            tail=np.asarray(pad_front(values, int(pads[i]))[-lookback:], dtype=np.float64),
            cov_tail=extra["cov_tail"][-lookback:] if "cov_tail" in extra else None, static=extra.get("static"),
            nonnegative=bool(clip and values.min() >= 0), log=bool(log[i]),
        ))
    return out


def _prepare(path: Path, series: Any, data_config: DataConfig, recipe: Recipe, cfg: TrainConfig,
             own: bool) -> tuple[Prepared, list[str]]:
    """Scalers, windows and covariate channels, and the notes on them; `own`: the series may be freed once
    flat holds them."""
    from lstmcast.data import covariates, scaling, windows
    from lstmcast.evaluate.metrics import mase_scale

    lookback, horizon, val_size = recipe.lookback, recipe.horizon, recipe.val_size
    spec, channels, cov_meta = covariates.prepare(path, series, data_config, val_size)
    lengths = np.array([len(v) for v in series.values], np.int64)
    pads = windows.pad_sizes(lengths, lookback, horizon, val_size)  # none with covariates (pick_lookback)
    # Scalers see only the training part: the validation tail must not leak into them (a series with
    # too few points before it has no validation window, and is scaled on all its points).
    train_parts = [v[:len(v) - val_size] if len(v) - val_size >= windows.MIN_INPUT else v for v in series.values]
    log = scaling.log_mask(series.values, series.ids, cfg.transform, path)
    center, scale = scaling.fit_scalers_of(train_parts, cfg.scaler, log)
    padded = [windows.pad_front(v, int(k)) for v, k in zip(series.values, pads)]
    flat, offsets = windows.concat_scaled(padded, center, scale, log)  # float32, no scaled float64 copy
    cov = windows.concat_shared(channels) if channels else None  # [T, C] beside flat; shared blocks once
    sizes = lengths + pads
    train_origin = windows.TrainOrigins.of(offsets, sizes, lookback, horizon, val_size, pads)  # no table of them
    val_origin, val_series = windows.val_origins(offsets, sizes, lookback, horizon, val_size, pads)
    notes = [_short_series(series.ids, lengths, pads) + " padded at the front with their first value"
             + _untrained(series.ids, lengths, horizon, val_size)] if pads.any() else []
    naive = [mase_scale(v, recipe.season) for v in train_parts]  # all the metrics need of the series
    records = _series_records(series, lookback, center, scale, log, cov_meta, data_config.nonnegative, pads)
    # the validation targets as read, in float64: metrics in original units without the float32 round trip
    val_actual = [np.array(v[max(n - val_size, 0):], dtype=np.float64) for v, n in zip(series.values, lengths)]
    weight = scaling.mase_weights(train_parts, log, scale, naive, cfg.mase_weight)
    if own:  # gone before training: `flat` holds the series (76 MB of float32 for 10,000 x 2,000 values)
        series.values = []
    prepared = Prepared(flat, cov, train_origin, val_origin, val_series, center, scale, log, naive, offsets, weight,
                        spec, records, val_actual, pads)
    described = covariates.describe(spec) if spec else None
    return prepared, notes + ([described] if described else [])


def _validation_metrics(net: Any, p: Prepared, lookback: int, horizon: int) -> dict[str, Any]:
    """Validation metrics in original units, over every validation window of each series, against the
    values as read (so a 0 is a 0, which MAPE skips, as evaluate does), of the forecasts predict would
    make (clipped at 0 for a series of counts)."""
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
        if not rows.any():  # too short for a validation window (data.windows.val_origins)
            continue
        # val_actual[s] holds the real values from n - V on; an origin's padded position less the padding is its real one
        start = (p.val_origin[rows].astype(np.int64) - p.offsets[s] - p.pads[s]
                 - (p.series_records[s].length - len(p.val_actual[s])))
        actual = p.val_actual[s][start[:, None] + np.arange(horizon)]  # [windows, H]
        fc = scaling.invert(predicted[rows], p.center[s], p.scale[s], p.log[s])
        if p.series_records[s].nonnegative:  # as predict and evaluate clip it
            fc = np.maximum(fc, 0.0)
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


def _record(path: Path, series: Any, data_config: DataConfig, model_config: ModelConfig, recipe: Recipe,
            cfg: TrainConfig, p: Prepared) -> Any:
    from lstmcast.run.record import DataRecord, RunRecord

    resolved = replace(data_config, freq=series.freq, id_col=series.id_col if series.layout == "long" else None,
                       time_col=None if series.time_kind == "row" else series.time_col,
                       target=tuple(series.target_cols),
                       # new data is read with the format training found: dates that read both ways read the same
                       date_format=data_config.date_format or (series.time_format if series.time_format not in
                                                                (None, "ISO8601") else None))
    data = DataRecord(config=resolved, source=str(path), layout=series.layout, time_kind=series.time_kind,
                      step=series.step, season=recipe.season, output_id_col=series.id_col,
                      output_time_col=series.time_col, target_given=data_config.target is not None)
    return RunRecord(model=model_config, train=cfg, data=data, series=tuple(p.series_records), covariates=p.spec,
                     created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), recipe=recipe)


def _extra_files(data: Data, series: Any, data_config: DataConfig, record: Any, result: Any,
                 metrics: dict[str, Any], notes: list[str], on_note: NoteFn | None) -> dict[str, bytes]:
    """config.toml (no data path for a DataFrame), the resume state of an interrupted run, loss.png."""
    from lstmcast import plots
    from lstmcast.run import configfile, rundir
    from lstmcast.train import state as state_io

    options = configfile.train_options(label(data), data_config, series, record.model, record.train)
    if is_frame(data):
        options["data"] = None
    extra = {rundir.CONFIG_TOML: configfile.dumps(
        "train", options, "the resolved options of this run: lstmcast train --config config.toml").encode()}
    if result.stopped == "interrupted" and result.state is not None:
        extra.update(state_io.to_files(result.state, data))
    png, why = plots.loss_file(metrics, record.train.loss.value)
    if png:
        extra[rundir.LOSS_PNG] = png
    elif why:
        notes.append(why)
        on_note(why) if on_note is not None else None
    return extra


def train_run(data: Data, data_config: DataConfig, horizon: int | None, lookback: int | None,
              arch: dict[str, Any], train_config: TrainConfig, run_dir: Path, overwrite: bool,
              progress: ProgressFn | None = None, on_note: NoteFn | None = None, start: Any = None,
              series: Any = None, threads: int | None = None, keep_budget: bool = False) -> TrainReport:
    """Train on `data`, a file or a DataFrame (or on `series` already read, for backtest refits), and
    write `run_dir`.

    `arch` holds the `config.ARCH_FIELDS`; every default is resolved once, by `train.recipe.resolve`;
    `start` a `train.state.TrainState` to resume from (its budget is kept, as is one with
    `keep_budget`, and the run's recipe says where its values came from);
    `threads` the torch threads (default: `train.device.choose_threads`). With a time limit
    in `train_config`, the clock starts here: training stops at 95% of it, which leaves the
    rest for scoring and writing the run.
    """
    import time

    began = time.monotonic()
    from lstmcast.data import widecsv
    from lstmcast.data.series import load_series
    from lstmcast.model import intervals
    from lstmcast.run import rundir
    from lstmcast.train import distributed, signals
    from lstmcast.train.device import choose_threads, pick_device

    device = pick_device(train_config.device, distributed.current())  # a bad --device fails before any work
    path = label(data)  # what messages name
    own, series = series is None, load_series(data, data_config) if series is None else series  # backtest refits
    recipe, planned = resolve(path, series, horizon, lookback, arch, train_config,
                              bool(data_config.covariates or data_config.calendar), distributed.current() is not None,
                              keep_budget or start is not None)
    if start is not None:
        recipe = recipe.kept(rundir.load_meta(run_dir).recipe)
    cfg = recipe.train_config(train_config)
    notes = list(series.notes) + planned
    p, prepared = _prepare(path, series, data_config, recipe, cfg,
                           own and not recipe.full_data)  # the full-data refit reads the series again
    notes += prepared + [recipe.note()]
    if start is not None:
        notes.append(f"resuming after epoch {start.epoch} of {recipe.epochs}")
    for note in notes if on_note is not None else ():
        on_note(note)

    import torch

    model_config = ModelConfig(lookback=recipe.lookback, horizon=recipe.horizon,
                               input_size=1 + (p.spec.channels if p.spec else 0),
                               known_size=p.spec.known if p.spec else 0,
                               **{**arch, "dilations": recipe.dilations, "member_lookbacks": ()})
    n_threads = choose_threads(threads, on_note)
    torch.set_num_threads(n_threads)
    widecsv.release_memory()  # what reading and scaling freed goes back before training's own peak
    limit = cfg.time_limit
    deadline = None if limit is None else began + 0.95 * limit
    states, results = _train_members(model_config, p, recipe, cfg, device, progress, start, deadline, run_dir, notes,
                                     on_note)
    result = results[0]
    if (dist := distributed.current()) is not None and not dist.is_main:  # rank 0 scores and writes the run
        return TrainReport(run_dir=run_dir, metrics={**asdict(result), "state": None}, notes=notes)
    validation, refit = None, None
    earlier = _earlier_members(run_dir, start.member) if start is not None and start.member else []
    if recipe.full_data and results[-1].stopped not in ("interrupted", "diverged", "time_limit"):
        # Scored before the refit: the validation metrics are those of networks that never saw the held-out points.
        validation = _validation_metrics(_net(_members(model_config, recipe, len(states)), _state(states)), p,
                                         recipe.lookback, recipe.horizon)
        # Every member trains again, those a resumed run finished before it was stopped included.
        best = [int(m.get("best_epoch", 0)) for m in earlier] + [r.best_epoch for r in results]
        refit = _train_full(path, series, data_config, recipe, cfg, model_config, best, results, device, deadline,
                            notes, on_note, own) if len(best) == len(states) else None
        if len(best) != len(states):
            notes.append("full data: the metrics of the members finished before the resume are gone; the run keeps "
                         "the networks of the held-out split")
            on_note(notes[-1]) if on_note is not None else None
        if refit is not None:
            p, states = refit[0], refit[1]
    # A signal from here on must not throw the finished training away: it is recorded, the run written.
    with signals.writing():
        model_config = _members(model_config, recipe, len(states))
        state = _state(states)
        net = _net(model_config, state)  # what predict will run
        metrics = _metrics(result, validation or _validation_metrics(net, p, recipe.lookback, recipe.horizon), device)
        if refit is not None:
            metrics["full_data"] = refit[2]
        _account(metrics, results, n_threads, recipe, cfg, time.monotonic() - began, earlier)
        record = _record(path, series, data_config, model_config, recipe, cfg, p)
        if model_config.quantiles:  # conformal corrections from the validation windows, applied by predict
            stored, metrics["intervals"] = intervals.calibrate(net, p.flat, p.val_origin, p.cov, series=len(p.center))
            record = replace(record, intervals=stored)
        last = results[-1]  # an interrupted member carries the resume state
        extra = _extra_files(data, series, data_config, record, last, metrics, notes, on_note)
        out = rundir.save_run(run_dir, state, record, metrics, overwrite=overwrite, extra=extra)
    if last.stopped == "diverged":
        raise LstmcastError(f"{last.error}; kept the best weights so far (epoch {last.best_epoch}) in {out}. "
                            "Lower --lr or check the data for extreme values")
    files = sorted(q for q in out.iterdir() if q.name in rundir.OWN_FILES)
    return TrainReport(run_dir=out, metrics=metrics, notes=notes, files=files, model=to_json_dict(model_config))


def _state(states: list[dict[str, Any]]) -> dict[str, Any]:
    """The weights file's tensors: one network's, or each member's under its prefix."""
    return states[0] if len(states) == 1 else \
        {member_prefix(k) + name: v for k, s in enumerate(states) for name, v in s.items()}


def _members(model_config: ModelConfig, recipe: Recipe, count: int) -> ModelConfig:
    """The config of an ensemble of `count` members, each reading its lookback (`Recipe.lookbacks`)."""
    return replace(model_config, members=count, member_lookbacks=recipe.lookbacks(count))


def _net(model_config: ModelConfig, state: dict[str, Any]) -> Any:
    """The numpy forecaster predict runs (the median of the members) of the weights file's tensors (`_state`)."""
    from lstmcast.model.ensemble import forecaster

    return forecaster(model_config, {k: v.numpy() for k, v in state.items()})


def _train_full(path: Path, series: Any, data_config: DataConfig, recipe: Recipe, cfg: TrainConfig,
                model_config: ModelConfig, best: list[int], results: list[Any], device: Any, deadline: float | None,
                notes: list[str], on_note: NoteFn | None, own: bool
                ) -> tuple[Prepared, list[dict[str, Any]], dict[str, Any]] | None:
    """Train each member k again on every point, for the steps of its best held-out epoch `best[k]`
    (`--full-data`); `results`, the members trained in this process, estimate the time it takes.

    Returns the data prepared without a held-out part, the new weights and what the refit cost; None
    (with a note) when it was stopped or diverged, or the time limit leaves no room: the run then
    keeps the networks of the held-out split.
    """
    import time

    from lstmcast.model.network import LSTMForecaster
    from lstmcast.train.loop import fit, seed_everything

    def say(text: str) -> None:
        notes.append(text)
        on_note(text) if on_note is not None else None

    began = time.monotonic()
    cost = sum(r.train_seconds * r.best_epoch / max(len(r.history), 1) for r in results) * len(best) / len(results)
    if deadline is not None and began + cost > deadline:
        say("full data: no time left to train again on every point; the run keeps the networks of the held-out split")
        return None
    p, _ = _prepare(path, series, data_config, replace(recipe, val_size=0), cfg, own)
    states, steps = [], 0
    ensemble = _members(model_config, recipe, len(best))
    for k, epochs in enumerate(best):
        member = replace(cfg, seed=cfg.seed + k, epochs=min(max(epochs, 1), cfg.epochs))
        seed_everything(member.seed)
        model = LSTMForecaster(ensemble.member(k))
        again = fit(model, p.flat, p.train_origin, p.val_origin, model.config.lookback, recipe.horizon, member, device,
                    None, None, p.cov, deadline, None if p.weight is None else (p.offsets, p.weight))
        if again.stopped in ("interrupted", "diverged", "time_limit"):
            say(f"full data: training again on every point was {again.stopped.replace('_', ' ')}"
                f"{' (' + again.error + ')' if again.error else ''}; the run keeps the networks of the held-out split")
            return None
        model.cpu()
        states.append({n: v.detach().contiguous() for n, v in model.state_dict().items()})
        steps += again.steps
    seconds = round(time.monotonic() - began, 3)
    say(f"full data: trained again on every point, held-out ones included, for the steps of the best held-out "
        f"epoch ({steps} steps, {seconds:.1f} s); the validation metrics are those of the held-out split")
    return p, states, {"steps": steps, "seconds": seconds}


def _train_members(model_config: ModelConfig, p: Prepared, recipe: Recipe, cfg: TrainConfig, device: Any,
                   progress: ProgressFn | None, start: Any, deadline: float | None, run_dir: Path, notes: list[str],
                   on_note: NoteFn | None) -> tuple[list[dict[str, Any]], list[Any]]:
    """Train the ensemble's members one after the other (seed, seed + 1, ...): their weights and results.

    Member k starts only while time remains for one more of the length the ones before took
    (with a time limit); an interrupted member ends the loop, and a resumed run first loads
    the members finished before the one it continues.
    """
    import time

    from lstmcast.model.network import LSTMForecaster
    from lstmcast.train.loop import fit, seed_everything

    planned, first = recipe.members, start.member if start is not None else 0
    ensemble = _members(model_config, recipe, planned)
    states: list[dict[str, Any]] = _finished_members(run_dir, first) if first else []
    results: list[Any] = []
    loop_began = time.monotonic()
    for k in range(first, planned):
        now = time.monotonic()
        if k > first and deadline is not None and now + (now - loop_began) / (k - first) > deadline:
            notes.append(f"time limit: {k} of up to {planned} ensemble members trained")
            on_note(notes[-1]) if on_note is not None else None
            break
        member_cfg = replace(cfg, seed=cfg.seed + k)
        seed_everything(member_cfg.seed)
        model = LSTMForecaster(ensemble.member(k))
        result = fit(model, p.flat, p.train_origin, p.val_origin, model.config.lookback, recipe.horizon, member_cfg,
                     device, progress, start if k == first else None, p.cov, deadline,
                     None if p.weight is None else (p.offsets, p.weight))
        if result.stopped == "diverged" and result.best_epoch == 0:
            if not states:
                raise LstmcastError(f"{result.error} before any epoch finished; no run written. "
                                    "Lower --lr or check the data for extreme values")
            notes.append(f"ensemble member {k + 1} diverged before its first epoch; left out")
            break
        if result.stopped == "interrupted" and result.best_epoch == 0:
            if not states:
                raise _nothing_to_keep(run_dir)
            notes.append(f"ensemble member {k + 1} was stopped before its first epoch; the run holds the {k} "
                         "members finished before it")
            break
        if k > 0 and result.stopped == "time_limit":  # cut short, it would pull the median towards an untrained net
            notes.append(f"time limit: ensemble member {k + 1} was cut short and is left out")
            on_note(notes[-1]) if on_note is not None else None
            break
        if result.state is not None:
            result.state.member = k
        model.cpu()
        states.append({n: v.detach().contiguous() for n, v in model.state_dict().items()})
        results.append(result)
        if result.stopped in ("interrupted", "diverged", "time_limit"):
            break
    return states, results


def _nothing_to_keep(run_dir: Path) -> Interrupted:
    """Stopped before the first epoch: no weights worth a run, no validation loss (it is inf), nothing to resume."""

    from lstmcast.run import rundir
    from lstmcast.train import signals

    signum = signals.received()
    how, code = ("SIGTERM", EXIT_SIGTERM) if signum == signal.SIGTERM else ("Ctrl-C", EXIT_SIGINT)
    kept = f"; the run already at {run_dir} is unchanged" if rundir.is_run(Path(run_dir)) else ""
    return Interrupted(f"stopped by {how} before the first epoch finished: nothing to keep yet, no run "
                       f"written{kept}; train again and let at least one epoch finish", code)


def _earlier_members(run_dir: Path, count: int) -> list[dict[str, Any]]:
    """metrics.json's entries of the first `count` members of the interrupted run being resumed."""
    import json

    from lstmcast.run.rundir import METRICS_JSON

    try:
        members = json.loads((run_dir / METRICS_JSON).read_text(encoding="utf-8")).get("members", [])
    except (OSError, ValueError, AttributeError):
        members = []
    return [m for m in members if isinstance(m, dict)][:count]


def _finished_members(run_dir: Path, count: int) -> list[dict[str, Any]]:
    """The first `count` members' weights from the interrupted run being resumed."""
    from safetensors.torch import load_file

    from lstmcast.run.rundir import WEIGHTS

    weights = load_file(run_dir / WEIGHTS)
    if not any(n.startswith(member_prefix(0)) for n in weights):
        return [weights]
    return [{n[len(member_prefix(k)):]: v for n, v in weights.items() if n.startswith(member_prefix(k))}
            for k in range(count)]


def _account(metrics: dict[str, Any], results: list[Any], threads: int, recipe: Recipe, cfg: TrainConfig,
             seconds: float, earlier: list[dict[str, Any]]) -> None:
    """How the time was spent: threads, the budget, and each member's steps and stop reason
    (`earlier`: the members a resumed run had finished before it was interrupted)."""
    metrics["threads"] = threads
    metrics["budget"] = {"batch_size": recipe.batch_size, "epoch_steps": recipe.epoch_steps, "epochs": recipe.epochs,
                         "time_limit": cfg.time_limit, "seconds": round(seconds, 3)}
    if len(results) > 1 or recipe.members > 1 or earlier:
        metrics["members"] = list(earlier) + [
            {"seed": cfg.seed + k, "steps": r.steps, "best_epoch": r.best_epoch, "stopped": r.stopped,
             "train_seconds": round(r.train_seconds, 3)} for k, r in enumerate(results, start=len(earlier))]
        metrics["steps"] = sum(r.steps for r in results) + sum(int(m.get("steps", 0)) for m in earlier)
        metrics["train_windows"] = sum(r.train_windows for r in results)
        metrics["train_seconds"] = round(sum(r.train_seconds for r in results), 3)
        metrics["windows_per_second"] = round(metrics["train_windows"] / max(metrics["train_seconds"], 1e-9), 1)
        stops = [r.stopped for r in results]
        metrics["stopped"] = next((s for s in ("interrupted", "diverged", "time_limit") if s in stops), stops[0])
