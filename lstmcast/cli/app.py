"""The command line: parse options, build configs, call the API, print what it returns.

Heavy imports (torch, pandas, scikit-learn) happen inside the commands, so `--help`
answers at once. Every `LstmcastError` becomes one line on stderr and its exit code.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from lstmcast.config import (Cell, DataConfig, DetectScore, Device, Fill, FullData, Loss, ModelConfig, Precision,
                             ScalerKind, Schedule, Transform, TrainConfig, WindowNorm)
from lstmcast.cli.console import (Console, detect_summary, metrics_summary, print_backtest, print_detection,
                                  print_evaluation, print_train, run_app, stop_code, train_summary)
from lstmcast.errors import EXIT_ANOMALY, EXIT_INPUT, EXIT_SIGINT, InputError

EXIT_CODES_HELP = (
    "Exit codes: 0 success; 2 usage or input error (bad option, bad CSV); "
    "3 run directory unusable (missing, corrupt, unsafe, newer format); "
    "4 busy (another lstmcast is writing the same run directory or output; see --wait); "
    "5 detect --fail-on-anomaly flagged a point (the output is written); "
    "130 or 143 stopped by Ctrl-C or SIGTERM (train still writes a resumable run once an epoch has finished); "
    "141 the reader of stdout closed the pipe (| head): ended quietly, as cat does; "
    "1 anything else."
)

app = typer.Typer(
    name="lstmcast",
    help="Forecast CSV time series with a stacked LSTM.\n\n" + EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
runs_app = typer.Typer(help="List, find and prune the runs in a directory.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
CONFIG_COMMANDS = ("train", "predict", "evaluate")


def _wrong_type(param, given: object) -> str | None:
    """What is wrong with a config file's value that click would silently convert: true/false for
    a number or text (`horizon = true` is not 1), a fraction for an integer (`epochs = 2.5` is not 2)."""
    kind = _value_type(param)
    if isinstance(given, bool):
        if getattr(param, "is_flag", False) or kind is bool:
            return None
        what = {int: "an integer", float: "a number"}.get(kind, "a string")
        return f"true/false is not {what}; give {what}"
    if kind is int and isinstance(given, float) and not given.is_integer():
        return "not an integer; give a whole number"
    return None


def _value_type(param) -> object:
    """The Python type an option's value has: int, float, bool, str, an Enum... (typer's own
    parameters carry the annotation; click's carry a ParamType)."""
    described = getattr(param, "type_descriptor", None)
    if described is not None:
        return getattr(described, "annotation", None)
    name = getattr(getattr(param, "type", None), "name", "")
    return {"integer": int, "integer range": int, "float": float, "float range": float, "boolean": bool}.get(name, str)


def _load_config(ctx: typer.Context, param: typer.CallbackParam, value: Optional[Path]) -> Optional[Path]:
    """Eager: read the TOML file into the defaults of the options parsed after it."""
    if value is None:
        return value
    from lstmcast.run import configfile

    group = ctx.parent.command if ctx.parent is not None else None
    commands = getattr(group, "commands", None) or {ctx.info_name: ctx.command}
    options = {name: {q.name for q in cmd.params} for name, cmd in commands.items() if name in CONFIG_COMMANDS}
    try:
        defaults = configfile.load_defaults(value, ctx.info_name, options)
    except InputError as exc:
        raise typer.BadParameter(str(exc)) from None
    params = {q.name: q for q in ctx.command.params}
    for key, given in defaults.items():  # check types and ranges here, so the message names the file
        shown = ("true" if given else "false") if isinstance(given, bool) else repr(given)
        wrong = _wrong_type(params[key], given)
        if wrong:
            raise typer.BadParameter(f"{value}: [{ctx.info_name}] {key} = {shown}: {wrong}")
        try:
            params[key].process_value(ctx, given)
        except typer.BadParameter as exc:
            raise typer.BadParameter(f"{value}: [{ctx.info_name}] {key} = {shown}: {exc.message}") from None
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.")]
Verbose = Annotated[bool, typer.Option("--verbose", help="Add the traceback to an error message.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout: status, files written, metrics, timings (also on error).")]
Wait = Annotated[float, typer.Option(min=0.0, help="Seconds to wait while another lstmcast writes the same run directory or output; then exit 4.")]
PlotDir = Annotated[Optional[Path], typer.Option(help="Write one PNG per series into this directory: history, forecast, shaded intervals when there are q-columns, actuals where known. Needs matplotlib: in the lstmcast clone, pip install -c constraints.txt -e '.[plot]'.")]
PlotMax = Annotated[int, typer.Option(min=1, help="With --plot: plot only the first N series.")]
PLOT_MAX = 20  # plots.PLOT_MAX; not imported, so that --help loads no numpy
Config = Annotated[Optional[Path], typer.Option(
    "--config", is_eager=True, callback=_load_config,
    help="TOML file of option defaults: top-level keys, or [train]/[predict]/[evaluate] tables. Command-line options win.")]


def _columns(text: Optional[str]) -> tuple[str, ...]:
    """`a, b,c` -> ("a", "b", "c"): a comma-separated column option."""
    return tuple(t.strip() for t in text.split(",") if t.strip()) if text else ()


def _only_resume_options(ctx: typer.Context, out: Console) -> None:
    """`--resume` continues with the run's own options: any other training option is a mistake."""
    allowed = {"resume", "wait", "quiet", "verbose", "json_"}
    given = [name for name in ctx.params if name not in allowed
             and ctx.get_parameter_source(name).name in ("COMMANDLINE", "DEFAULT_MAP")]
    if given:
        out.fail(f"--resume continues with the run's own options; drop {', '.join(given)}", EXIT_INPUT)


@app.command(epilog=EXIT_CODES_HELP)
def train(
    ctx: typer.Context,
    data: Annotated[Optional[Path], typer.Argument(metavar="DATA", help="CSV file: wide (time column + one column per series) or long (id, time, value). Not with --resume.")] = None,
    id_col: Annotated[Optional[str], typer.Option(help="Series id column (long layout). Detected when unambiguous.")] = None,
    time_col: Annotated[Optional[str], typer.Option(help="Time column. Detected by name or content; without one, row order is time.")] = None,
    date_format: Annotated[Optional[str], typer.Option(help="Format of the time column's text in strftime codes, e.g. %d/%m/%Y or '%d.%m.%Y %H:%M'. Default: inferred from all its values, one format for the whole column.")] = None,
    dayfirst: Annotated[bool, typer.Option("--dayfirst", help="An inferred date format reads the day before the month (01/02/1959 is 1 February). Default: a day above 12 decides; where every date reads both ways, month first unless only day first gives regular steps (a note says which).")] = False,
    target: Annotated[Optional[str], typer.Option(help="Value column(s), comma-separated. Default: every numeric column (wide) or the one value column (long).")] = None,
    freq: Annotated[Optional[str], typer.Option(help="Frequency (pandas alias, old or new: h/H, D, W, MS, ME/M, QS, YS, 15min). Default: inferred.")] = None,
    fill: Annotated[Fill, typer.Option(help="How to fill missing values and gaps; 'error' refuses them.")] = Fill.interpolate,
    past_covariates: Annotated[Optional[str], typer.Option(help="Columns observed up to now only (comma-separated): the encoder reads them over the lookback window. Wide layout: shared by all series.")] = None,
    future_covariates: Annotated[Optional[str], typer.Option(help="Columns known for the forecast period too (planned promotions, holidays); predict --data must give the next H steps of them. Wide layout: shared by all series.")] = None,
    static: Annotated[Optional[str], typer.Option(help="Per-series attributes, numeric or categorical (one-hot), constant per series (long layout).")] = None,
    nonnegative: Annotated[bool, typer.Option("--nonnegative/--no-nonnegative", help="Clip forecasts and interval bounds at 0 for every series whose training values are all 0 or more (counts, sales, demand). --no-nonnegative keeps what the network says.")] = True,
    calendar: Annotated[bool, typer.Option("--calendar/--no-calendar", help="Calendar features of the timestamps (hour, day of week/month, month; sin/cos; chosen by the frequency). Off by default: they made the forecasts worse on most measured data sets (benchmarks/RESULTS.md).")] = False,
    horizon: Annotated[Optional[int], typer.Option(min=1, help="Steps forecast at once. Default by frequency: 48 hourly, 14 daily, 13 weekly, 12 monthly, 8 quarterly, 6 yearly, 12 otherwise.")] = None,
    lookback: Annotated[Optional[int], typer.Option(min=1, help="Input steps per window. Default: three seasons (a week for hourly data) and at least two horizons, or four horizons when there is no season (that part at most 512); capped by the shortest series.")] = None,
    val_size: Annotated[Optional[int], typer.Option(min=1, help="Last points of each series held out for validation and early stopping (and interval calibration). Default: one horizon; with --quantiles and fewer than 10 series, 20% of the shortest series (at least 10 validation windows where it is long enough).")] = None,
    hidden: Annotated[int, typer.Option(min=1, help="LSTM hidden units per layer.")] = 64,
    layers: Annotated[int, typer.Option(min=1, help="Stacked LSTM layers.")] = 2,
    dropout: Annotated[float, typer.Option(min=0.0, max=0.9, help="Dropout between LSTM layers.")] = 0.0,
    window_norm: Annotated[WindowNorm, typer.Option(help="Normalise each input window inside the model: subtract its mean and divide by its spread (revin), only subtract the mean, or neither.")] = ModelConfig.window_norm,
    skip: Annotated[bool, typer.Option("--skip/--no-skip", help="Add a linear map from the input window straight to the forecast.")] = ModelConfig.skip,
    cell: Annotated[Cell, typer.Option(help="Recurrent cell: lstm and gru (PyTorch's fused kernels), or peephole (an LSTM whose gates also see the cell state).")] = ModelConfig.cell,
    bidirectional: Annotated[bool, typer.Option("--bidirectional/--no-bidirectional", help="The encoder reads each window both ways. Trains one origin per sequence (forking 1).")] = False,
    attention: Annotated[bool, typer.Option("--attention/--no-attention", help="The head attends over all encoder states of the window, not only the last.")] = False,
    quantiles: Annotated[Optional[str], typer.Option(help="Quantile levels in (0, 1), comma-separated, e.g. 0.1,0.5,0.9: the model also learns them (pinball loss), calibrated on the validation windows; predict adds columns q0.1, q0.5, q0.9.")] = None,
    dilations: Annotated[str, typer.Option(help="Per layer, how many steps back each state links, comma-separated (dilated LSTM, as in ES-RNN): 1,24 lets the second layer carry each hour to the same hour of the next day in one step. auto: the last layer is dilated by the season the data show (the frequency's, or, for a time axis without one, the period among 4, 5, 7, 12, 24, 52 whose autocorrelation is highest, if at least 0.2), when the lookback holds seven of them (a week of days for hourly data); none: no dilation. lstm and gru cells, one direction.")] = "auto",
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Maximum epochs (default 20, or up to 100 when an epoch is under 50 steps, so that 1,000 steps are planned; with --time-limit, until early stopping or the limit). Training stops earlier when the validation loss has not improved for --patience epochs.")] = None,
    epoch_steps: Annotated[Optional[int], typer.Option(min=1, help="Optimiser steps per epoch. Default: sized to the data: each step trains --batch-size sequences of --forking origins, and an epoch covers every training window 4 times over, at least 10 and at most 50 steps.")] = None,
    max_steps: Annotated[Optional[int], typer.Option(min=1, help="Stop after this many optimiser steps.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1, help="Sequences per batch. Default: sized to the data, one per 64 training windows, a power of two from 32 to 256 (16 under 1,024 windows).")] = None,
    time_limit: Annotated[Optional[float], typer.Option(min=1.0, help="Seconds the whole training may take, reading the data included: it stops at 95% of them with the best model so far (stop reason time_limit) and writes the run. Without --epochs it trains until early stopping or the limit.")] = None,
    ensemble: Annotated[Optional[int], typer.Option(min=1, max=100, help="Train N networks with seeds --seed, --seed + 1, ... and forecast their median (one run directory, one weights file). Default: 1, and 3 reading the default lookback, 3/4 and 1/2 of it for short series (the median series has fewer than 48 training windows); with --time-limit, members are added while the time allows one more, at most 5.")] = None,
    full_data: Annotated[FullData, typer.Option(help="After early stopping on the held-out points, train the networks again on every point for the number of steps that scored best, so that they learn the newest data (on: always; off, the default: keep the networks of the held-out split; auto: when the held-out points are at least 10% of the median series). Not the default: on M3 it was within seed noise and on ETTh1 slightly worse (benchmarks/RESULTS.md). The validation metrics stay those of the held-out split.")] = TrainConfig.full_data,
    threads: Annotated[Optional[int], typer.Option(min=1, help="Torch threads, at most the CPUs this process may use (affinity, cgroup quota; a note says when more were asked for). Default: $OMP_NUM_THREADS, else those CPUs less the load of other processes, at least 1.")] = None,
    forking: Annotated[Optional[int], typer.Option(min=1, help="Forecast origins trained per sequence: one LSTM pass over lookback + K - 1 steps trains K consecutive origins (forking sequences). 1 trains one window per sequence. Default: 48, and 8 for short series (the median series has fewer than 48 training windows).")] = None,
    lr: Annotated[float, typer.Option(min=0.0, help="Adam learning rate.")] = TrainConfig.lr,
    schedule: Annotated[Schedule, typer.Option(help="Learning rate over the planned steps (epochs x batches, or --max-steps): constant, or cosine decay to a tenth of --lr.")] = TrainConfig.schedule,
    patience: Annotated[Optional[int], typer.Option(min=1, help="Stop after this many epochs without a better validation loss. Default: 5, or as many short epochs as make 100 steps (10 epochs of 10 steps on small files).")] = None,
    scaler: Annotated[ScalerKind, typer.Option(help="Per-series scaler, fitted on each series' training part.")] = ScalerKind.standard,
    transform: Annotated[Transform, typer.Option(help="What the network models of each series, before the scaler: auto, the log of every series whose values are all positive (the window is then divided by its level and the loss counts relative errors) and the values of the others; log, the log of every series; none, the values.")] = TrainConfig.transform,
    loss: Annotated[Loss, typer.Option(help="Training loss on scaled values.")] = Loss.mae,
    mase_weight: Annotated[float, typer.Option(min=0.0, max=1.0, help="How much each series' training loss is weighted as MASE counts it: 0 counts every series' errors alike in modelled units (relative errors in logs); 1 weighs each series by its level (in logs) or scale over its in-sample seasonal naive error; between, a mix of the two, each averaging 1 over the series. 0.5 beat 0 on M4 Hourly and Weekly and lost on three small held-out files, so 0 stays the default (benchmarks/RESULTS.md). A file of one series is not weighted.")] = TrainConfig.mase_weight,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, data and machine give the same forecasts.")] = 0,
    device: Annotated[Device, typer.Option(help="auto takes CUDA when present.")] = Device.auto,
    precision: Annotated[Precision, typer.Option(help="Training arithmetic: bf16 autocast (auto: where the CPU/GPU supports it) or fp32. Loss and optimizer stay fp32.")] = TrainConfig.precision,
    run_dir: Annotated[Optional[Path], typer.Option(help="Run directory to write. Default: a new directory under runs/.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run, or add a run to a non-empty directory that is not one.")] = False,
    resume: Annotated[Optional[Path], typer.Option(help="Continue the run in this directory that Ctrl-C or SIGTERM stopped, with its own options.")] = None,
    wait: Wait = 0.0,
    config: Config = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    json_: Json = False,
) -> None:
    """Train a stacked LSTM on every series of DATA and write a run directory."""
    from lstmcast.train import signals
    from lstmcast.train.distributed import env_rank

    signals.install()
    if env_rank() != 0:  # under torchrun rank 0 speaks for the job
        quiet, json_ = True, False
    out = Console("train", quiet, verbose, json_)
    if resume is not None:
        _only_resume_options(ctx, out)
    elif data is None:
        out.fail("missing argument DATA: the CSV file to train on (or --resume RUN_DIR)", EXIT_INPUT)
    data_cfg = DataConfig(id_col=id_col, time_col=time_col, freq=freq, fill=fill, target=_columns(target) or None,
                          past_covariates=_columns(past_covariates), future_covariates=_columns(future_covariates),
                          static=_columns(static), calendar=calendar, date_format=date_format, dayfirst=dayfirst,
                          nonnegative=nonnegative)
    train_cfg = TrainConfig(epochs=epochs, epoch_steps=epoch_steps, max_steps=max_steps, batch_size=batch_size, lr=lr,
                            schedule=schedule, patience=patience, val_size=val_size, scaler=scaler, transform=transform, loss=loss,
                            mase_weight=mase_weight,
                            forking=forking, seed=seed, device=device, precision=precision, time_limit=time_limit,
                            ensemble=ensemble, full_data=full_data)
    progress = None
    if not quiet:
        from lstmcast.cli.progress import PlainProgress, RichProgress

        progress = RichProgress() if sys.stderr.isatty() else PlainProgress()

    def work():
        from lstmcast import api

        try:
            if resume is not None:
                return api.resume(resume, progress=progress, on_note=out.note, wait=wait, threads=threads)
            return api.train(data, data_cfg, horizon=horizon, lookback=lookback, hidden=hidden, layers=layers,
                             dropout=dropout, window_norm=window_norm, skip=skip, cell=cell, bidirectional=bidirectional,
                             attention=attention, quantiles=quantiles, dilations=dilations, train_config=train_cfg,
                             run_dir=run_dir, overwrite=overwrite, progress=progress, on_note=out.note, wait=wait,
                             threads=threads)
        finally:
            if progress is not None:
                progress.close()

    report = out.run(work)
    m = report.metrics
    code = stop_code() or (EXIT_SIGINT if m["stopped"] == "interrupted" else 0)
    if json_:
        out.emit(train_summary(report, code))
    elif not quiet:
        print_train(report)
    if code:
        how = "SIGTERM" if code == 143 else "Ctrl-C"
        print(f"lstmcast: stopped by {how}: {report.run_dir} holds the best weights so far (epoch {m['best_epoch']}); "
              f"continue with: lstmcast train --resume {report.run_dir}", file=sys.stderr)
        raise typer.Exit(code)


@app.command(epilog=EXIT_CODES_HELP)
def predict(
    run: Annotated[Path, typer.Option("--run", help="Run directory written by train.")],
    data: Annotated[Optional[Path], typer.Option(help="CSV with recent history, same columns as training. Default: the history stored in the run.")] = None,
    horizon: Annotated[Optional[int], typer.Option(min=1, help="Steps to forecast. Default: the trained horizon. Longer horizons feed forecasts back as inputs (recursive), up to 100 x the trained horizon and at most 1,000,000 steps.")] = None,
    output: Annotated[Optional[Path], typer.Option(help="Forecast CSV to write ('-' for stdout). Default: forecast.csv in the run directory. Missing directories are created. A file is replaced atomically, keeping its mode; a device or FIFO (/dev/null, a named pipe) is written to in place; the run's own files (run.json, weights...) are refused.")] = None,
    plot: PlotDir = None,
    plot_max: PlotMax = PLOT_MAX,
    wait: Wait = 0.0,
    config: Config = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    json_: Json = False,
) -> None:
    """Forecast the steps after the end of each series; write a long CSV (id, time, forecast)."""
    from lstmcast.train import signals

    signals.install()
    out = Console("predict", quiet, verbose, json_)
    to_stdout = output is not None and str(output) == "-"
    if to_stdout and json_:
        out.fail("--output - and --json both want stdout; write the forecast to a file with --output FILE", EXIT_INPUT)

    def work():
        from lstmcast import api, plots

        if plot is not None:
            plots.require(plot)
        report, written, target = api.predict_to_file(run, data=data, horizon=horizon, output=output, wait=wait,
                                                      whole=plot is not None)
        pngs = [] if plot is None else plots.for_run(plot, run, report.forecast, report.history, plot_max)
        if pngs and data is None:
            shown = len(next(iter(report.history.values())))
            report.notes.append(f"the plots show the {shown} points of history the run stores (its lookback); "
                                "pass --data with the series' history to plot more of it")
        return report, written, target, pngs

    report, written, target, pngs = out.run(work)
    for note in report.notes:
        out.note(note)
    if json_:
        out.emit({"status": "ok", "exit_code": 0, "files": [target, *pngs], "rows": written.rows,
                  "series": written.series, "horizon": int(written.rows // max(written.series, 1)),
                  "new_series": report.new_series, "notes": report.notes, "timings": {}})
    elif target is not None and not quiet:
        print(f"wrote {written.rows} rows for {written.series} series to {target}")
        print(written.head.to_string(index=False))
    if pngs and not quiet and not json_:
        print(f"wrote {len(pngs)} PNG file{'s' * (len(pngs) != 1)} to {plot}",
              file=sys.stderr if target is None else sys.stdout)


@app.command(epilog=EXIT_CODES_HELP)
def evaluate(
    ctx: typer.Context,
    run: Annotated[Path, typer.Option("--run", help="Run directory written by train.")],
    data: Annotated[Path, typer.Option(help="CSV to evaluate on, same columns as training.")],
    test_size: Annotated[Optional[int], typer.Option(min=1, help="Last points of each series held out and forecast (with --backtest: points forecast from each cut-off). Default: the trained horizon.")] = None,
    season: Annotated[Optional[int], typer.Option(min=1, help="Season for MASE and seasonal naive. Default: from the frequency.")] = None,
    backtest: Annotated[bool, typer.Option("--backtest", help="Rolling-origin evaluation: forecast --test-size points from each of --folds cut-offs --step steps apart, the last one --test-size points before the end; score each fold and all together.")] = False,
    folds: Annotated[int, typer.Option(min=1, help="With --backtest: number of cut-offs.")] = 3,
    step: Annotated[Optional[int], typer.Option(min=1, help="With --backtest: steps between cut-offs. Default: --test-size (folds do not overlap).")] = None,
    refit: Annotated[bool, typer.Option("--refit", help="With --backtest: train a new network with the run's configuration on each fold's history alone (in a temporary directory, removed after). Default: the run as trained.")] = False,
    output: Annotated[Optional[Path], typer.Option(help="Write metrics JSON here (keys overall, baselines, series; with --backtest also folds); '-' for stdout. Missing directories are created. A file is replaced atomically, keeping its mode; a device or FIFO is written to in place; the run's own files are refused.")] = None,
    plot: PlotDir = None,
    plot_max: PlotMax = PLOT_MAX,
    wait: Wait = 0.0,
    config: Config = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    json_: Json = False,
) -> None:
    """Forecast the last points of each series from what precedes them; compare with naive baselines."""
    from lstmcast.train import signals

    signals.install()
    out = Console("evaluate", quiet, verbose, json_)
    loose = [f"--{n}" for n in ("folds", "step", "refit") if ctx.get_parameter_source(n).name != "DEFAULT"]
    if loose and not backtest:
        out.fail(f"{', '.join(loose)} only apply with --backtest; add --backtest or drop them", EXIT_INPUT)
    to_stdout = output is not None and str(output) == "-"
    if to_stdout and json_:
        out.fail("--output - and --json both want stdout; write the metrics to a file with --output FILE", EXIT_INPUT)

    def work():
        from lstmcast import api, plots

        if plot is not None:
            plots.require(plot)  # before the work, not after it
        options = dict(season=season, keep_forecasts=plot is not None)
        if backtest:
            options.update(folds=folds, step=step, horizon=test_size, refit=refit, on_fold=out.note)
        else:
            options.update(test_size=test_size)
        if output is None:
            result = api.backtest(run, data, **options) if backtest else api.evaluate(run, data, **options)
        else:  # RUN/metrics.json is the run's, not evaluate's: the door refuses it
            result, _ = api.evaluate_to_file(run, data, output, backtest=backtest, wait=wait, **options)
        pngs = [] if plot is None else plots.for_run(plot, run, result["forecast"], result["history"], plot_max)
        return result, pngs

    result, pngs = out.run(work)
    for note in result["notes"]:
        out.note(note)
    if json_:
        out.emit({"status": "ok", "exit_code": 0, "files": ([output] if output is not None else []) + pngs,
                  "metrics": metrics_summary(result), "series": len(result["folds"][0]["series"] if backtest else result["series"]),
                  "test_size": result["horizon" if backtest else "test_size"], "season": result["season"],
                  "notes": result["notes"], "timings": {}})
    elif not quiet and not to_stdout:
        print_backtest(result) if backtest else print_evaluation(result)
        for path in ([output] if output is not None else []) + ([plot] if plot is not None else []):
            print(f"wrote {path}" + (f" ({len(pngs)} PNG file{'s' * (len(pngs) != 1)})" if path == plot else ""))


DETECT_WINDOW = 5000  # detect.workflow.DEFAULT_WINDOW; not imported, so that --help loads no numpy


@app.command(epilog=EXIT_CODES_HELP)
def detect(
    run: Annotated[Path, typer.Option("--run", help="Run directory written by train (the target alone, no covariates).")],
    data: Annotated[Path, typer.Option(help="CSV to score, same columns as training. Every point after the run's lookback is scored.")],
    output: Annotated[Optional[Path], typer.Option(help="CSV to write ('-' for stdout): id, time, value, expected, lower, upper, score, anomaly. Default: anomalies.csv in the run directory. Missing directories are created. A file is replaced atomically, keeping its mode; a device or FIFO is written to in place; the run's own files are refused.")] = None,
    last: Annotated[Optional[int], typer.Option(min=1, help="Score only the newest N points of each series (the nightly job); the points before still calibrate them.")] = None,
    level: Annotated[Optional[float], typer.Option(help="Level in (0, 1): a point is an anomaly when its score exceeds it (with --score rank, exactly when the value is outside [lower, upper]). Default: 0.99 for a file of several series; 0.9995 for one series scored multiscale (NAB's one threshold).")] = None,
    stride: Annotated[Optional[int], typer.Option(min=1, help="Steps between forecast origins. Default: 1 for a file of several series (each point's one-step forecast); a third of the trained horizon for one series. 1 is slowest.")] = None,
    ahead: Annotated[Optional[int], typer.Option(min=1, help="A point's expected value is the mean of its forecasts made at most N steps ahead (at least --stride). Default: 1 for several series (one-step forecasts; with --stride S, S); the trained horizon for one series (the mean of the forecasts 1 to horizon steps ahead).")] = None,
    window: Annotated[int, typer.Option(min=1, help="Past residuals of the same series each point is compared with.")] = DETECT_WINDOW,
    refit_every: Annotated[Optional[int], typer.Option(min=1, help="Streaming: retrain the run's configuration on the values before every multiple of N positions, for the forecasts from there on (needs torch; slower).")] = None,
    flatline: Annotated[Optional[bool], typer.Option("--flatline/--no-flatline", help="Also flag a value that repeats for longer than past runs of equal values make likely (a stuck sensor), inside the band too: runs of every series of the file, or the series' own for a file of one. 2% of 1 - level goes to it. Default: on for a file of several series, off for one series (on NAB's streams it cost 0.2 points).", show_default=False)] = None,
    fallback: Annotated[Optional[bool], typer.Option("--fallback/--no-fallback", help="A file of several series scored rank: at each position where, over the --window before it, the last value (the value before each point) missed the file's series by under 0.9 times the network's one-step forecasts, set the points against the last value (a point scoring above 0.99 is read, once, as the value before it by the next). The points scored stay the same; the summary counts those set against the last value. Default: on where it applies (a short or ill-fitting run must not set the band).", show_default=False)] = None,
    score: Annotated[Optional[DetectScore], typer.Option(help="Default: rank for a file of several series, multiscale for one series (a stream). rank: one minus the conformal p-value of the point's residual among the past ones. likelihood: NAB's numenta detector's anomaly likelihood of the residuals (how far the mean of the last 10 lies above the past's, 1 - Q(z)), and 1 for a value beyond the range of all before it; the flag then ignores the band. NAB 63.7 against 57.4 with --level 0.9999945, but not calibrated: a trending series is flagged at each new high. multiscale (for streams): one minus the Bonferroni-joined conformal p-value of the means of the last 1, 10 and 100 residuals, each ranked against the series' own past means; a point above --level within 100 points after one is capped at the level; 1 for a value beyond the range of all before it, on the far side of its forecast, with its residual in the top tenth, where the series set no such record in the half lookback before (a growing series sets them every season). NAB 70.2 at --level 0.9995 (rank 57.4).")] = None,
    fail_on_anomaly: Annotated[bool, typer.Option("--fail-on-anomaly", help="Exit with code 5 when any point is flagged (after writing the output), so cron can alert.")] = False,
    plot: Annotated[Optional[Path], typer.Option(help="Write one PNG per series into this directory: values, the expected band, flagged points marked. Needs matplotlib: in the lstmcast clone, pip install -c constraints.txt -e '.[plot]'.")] = None,
    plot_max: PlotMax = PLOT_MAX,
    wait: Wait = 0.0,
    quiet: Quiet = False,
    verbose: Verbose = False,
    json_: Json = False,
) -> None:
    """Score every point of DATA against the run's causal forecast of it; flag those outside the --level interval."""
    from lstmcast.train import signals

    signals.install()
    out = Console("detect", quiet, verbose, json_)
    if output is not None and str(output) == "-" and json_:
        out.fail("--output - and --json both want stdout; write the rows to a file with --output FILE", EXIT_INPUT)

    def work():
        from lstmcast import api, plots

        if plot is not None:
            plots.require(plot)
        report, target = api.detect_to_file(run, data, output, level=level, last=last, stride=stride, window=window,
                                            refit_every=refit_every, flatline=flatline, score=score, wait=wait,
                                            keep_series=plot_max if plot is not None else 0, ahead=ahead,
                                            fallback=fallback, on_note=out.note)
        pngs = [] if plot is None or report.frame is None else plots.detection_plots(plot, report.frame, plot_max, run)
        return report, target, pngs

    report, target, pngs = out.run(work)
    for note in report.notes:
        out.note(note)
    code = EXIT_ANOMALY if fail_on_anomaly and report.anomalies else 0
    if json_:
        out.emit(detect_summary(report, [p for p in [target, *pngs] if p is not None], code))
    elif not quiet:
        print_detection(report, target, pngs, plot, sys.stderr if target is None else sys.stdout)
    if code:
        raise typer.Exit(code)


RunsDir = Annotated[Path, typer.Argument(help="Directory that holds run directories (e.g. runs).")]


@runs_app.command("list", epilog=EXIT_CODES_HELP)
def runs_list(parent: RunsDir, verbose: Verbose = False, json_: Json = False) -> None:
    """List the runs in a directory, newest first: created, how training ended, validation MAE."""
    from lstmcast.run import catalog

    out = Console("runs list", verbose=verbose, as_json=json_)
    found, notes = out.run(lambda: catalog.scan(parent))
    for note in notes:
        out.note(note)
    if json_:
        out.emit({"status": "ok", "exit_code": 0, "runs": [r.as_dict() for r in found], "notes": notes, "files": []})
        return
    for r in found:
        mae = (r.validation or {}).get("mae")
        print(f"{r.path}\t{r.created}\t{r.stopped or 'unknown'}\tbest epoch {r.best_epoch}\t"
              f"val MAE {'n/a' if mae is None else f'{mae:.4g}'}")


@runs_app.command("latest", epilog=EXIT_CODES_HELP)
def runs_latest(parent: RunsDir, verbose: Verbose = False, json_: Json = False) -> None:
    """Print the newest run whose training ran to its end (for `predict --run "$(lstmcast runs latest runs)"`)."""
    from lstmcast.run import catalog

    out = Console("runs latest", verbose=verbose, as_json=json_)
    info = out.run(lambda: catalog.latest(parent))
    if json_:
        out.emit({"status": "ok", "exit_code": 0, "run": info.as_dict(), "files": []})
    else:
        print(info.path)


@runs_app.command("prune", epilog=EXIT_CODES_HELP)
def runs_prune(
    parent: RunsDir,
    keep: Annotated[int, typer.Option(min=1, help="How many of the newest runs to keep (the newest finished run is always kept).")],
    quiet: Quiet = False,
    verbose: Verbose = False,
    json_: Json = False,
) -> None:
    """Delete all but the newest runs in a directory. Only lstmcast runs, and only the files lstmcast wrote."""
    from lstmcast.run import catalog

    out = Console("runs prune", quiet, verbose, json_)
    deleted, kept, notes = out.run(lambda: catalog.prune(parent, keep))
    for note in notes:
        out.note(note)
    if json_:
        out.emit({"status": "ok", "exit_code": 0, "deleted": deleted, "kept": kept, "notes": notes, "files": []})
    elif not quiet:
        print(f"deleted {len(deleted)} runs, kept {len(kept)} in {parent}")


def main() -> None:
    """Entry point: usage errors become one line and exit code 2."""
    # numpy's products here are small (one LSTM step over a batch): extra BLAS threads only
    # contend, and on a busy cron host they made predict ten times slower.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    run_app(app)


if __name__ == "__main__":
    main()
