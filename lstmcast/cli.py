"""The command line: parse options, build configs, call the API, print what it returns.

Heavy imports (torch, pandas, scikit-learn) happen inside the commands, so `--help`
answers at once. Every `LstmcastError` becomes one line on stderr and its exit code.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from lstmcast.config import (DataConfig, Device, Fill, Loss, ModelConfig, Precision, ScalerKind, Schedule, TrainConfig,
                             WindowNorm)
from lstmcast.errors import EXIT_FAILURE, EXIT_INPUT, LstmcastError

EXIT_CODES_HELP = (
    "Exit codes: 0 success; 2 usage or input error (bad option, bad CSV); "
    "3 run directory unusable (missing, corrupt, unsafe, newer format); 1 anything else."
)

app = typer.Typer(
    name="lstmcast",
    help="Forecast CSV time series with a stacked LSTM.\n\n" + EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.")]
Verbose = Annotated[bool, typer.Option("--verbose", help="Show the traceback of unexpected errors.")]


def _fail(message: str, code: int) -> None:
    print(f"lstmcast: error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def _run(fn, verbose: bool) -> Any:
    """Call `fn`, turning errors into one stderr line and an exit code."""
    try:
        return fn()
    except LstmcastError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except MemoryError:
        _fail("out of memory; use a smaller file, --batch-size or --lookback", EXIT_FAILURE)
    except Exception as exc:  # a bug or an OS error: one line, traceback on request
        if verbose:
            traceback.print_exc()
        detail = str(exc).splitlines()[0] if str(exc) else ""
        _fail(f"{type(exc).__name__}: {detail} (rerun with --verbose for the traceback)", EXIT_FAILURE)


def _note(message: str, quiet: bool) -> None:
    if not quiet:
        print(message, file=sys.stderr)


def _fmt(value: float | None, pct: bool = False) -> str:
    """Numbers for people: 14,763.2 rather than 1.476e+04; exponents only for the extremes."""
    if value is None:
        return "n/a"
    if pct:
        return f"{value:.2f}%"
    size = abs(value)
    if size != 0 and (size >= 1e9 or size < 1e-3):
        return f"{value:.4g}"
    return f"{value:,.1f}" if size >= 100 else f"{value:.4g}"


def _metrics_line(m: dict[str, Any]) -> str:
    return (f"MAE {_fmt(m['mae'])}  RMSE {_fmt(m['rmse'])}  MAPE {_fmt(m['mape'], True)}  "
            f"sMAPE {_fmt(m['smape'], True)}  MASE {_fmt(m['mase'])}")


@app.command(epilog=EXIT_CODES_HELP)
def train(
    data: Annotated[Path, typer.Argument(help="CSV file: wide (time column + one column per series) or long (id, time, value).")],
    id_col: Annotated[Optional[str], typer.Option(help="Series id column (long layout). Detected when unambiguous.")] = None,
    time_col: Annotated[Optional[str], typer.Option(help="Time column. Detected by name or content; without one, row order is time.")] = None,
    target: Annotated[Optional[str], typer.Option(help="Value column(s), comma-separated. Default: every numeric column (wide) or the one value column (long).")] = None,
    freq: Annotated[Optional[str], typer.Option(help="Frequency (pandas alias, old or new: h/H, D, W, MS, ME/M, QS, YS, 15min). Default: inferred.")] = None,
    fill: Annotated[Fill, typer.Option(help="How to fill missing values and gaps; 'error' refuses them.")] = Fill.interpolate,
    horizon: Annotated[Optional[int], typer.Option(min=1, help="Steps forecast at once. Default by frequency: 48 hourly, 14 daily, 13 weekly, 12 monthly, 8 quarterly, 6 yearly, 12 otherwise.")] = None,
    lookback: Annotated[Optional[int], typer.Option(min=1, help="Input steps per window. Default: three seasons (a week for hourly data) and at least two horizons, or four horizons when there is no season (that part at most 512); capped by the shortest series.")] = None,
    val_size: Annotated[Optional[int], typer.Option(min=1, help="Last points of each series held out for validation and early stopping. Default: one horizon.")] = None,
    hidden: Annotated[int, typer.Option(min=1, help="LSTM hidden units per layer.")] = 64,
    layers: Annotated[int, typer.Option(min=1, help="Stacked LSTM layers.")] = 2,
    dropout: Annotated[float, typer.Option(min=0.0, max=0.9, help="Dropout between LSTM layers.")] = 0.0,
    window_norm: Annotated[WindowNorm, typer.Option(help="Normalise each input window inside the model: subtract its mean and divide by its spread (revin), only subtract the mean, or neither.")] = ModelConfig.window_norm,
    skip: Annotated[bool, typer.Option("--skip/--no-skip", help="Add a linear map from the input window straight to the forecast.")] = ModelConfig.skip,
    epochs: Annotated[int, typer.Option(min=1, help="Maximum epochs. An epoch is a pass over the training windows in random order, at least 20 and at most 200 batches.")] = TrainConfig.epochs,
    max_steps: Annotated[Optional[int], typer.Option(min=1, help="Stop after this many optimiser steps.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Sequences per batch.")] = TrainConfig.batch_size,
    forking: Annotated[int, typer.Option(min=1, help="Forecast origins trained per sequence: one LSTM pass over lookback + K - 1 steps trains K consecutive origins (forking sequences). 1 trains one window per sequence.")] = TrainConfig.forking,
    lr: Annotated[float, typer.Option(min=0.0, help="Adam learning rate.")] = TrainConfig.lr,
    schedule: Annotated[Schedule, typer.Option(help="Learning rate over the planned steps (epochs x batches, or --max-steps): constant, or cosine decay to a tenth of --lr.")] = TrainConfig.schedule,
    patience: Annotated[int, typer.Option(min=1, help="Stop after this many epochs without a better validation loss.")] = TrainConfig.patience,
    scaler: Annotated[ScalerKind, typer.Option(help="Per-series scaler, fitted on each series' training part.")] = ScalerKind.standard,
    loss: Annotated[Loss, typer.Option(help="Training loss on scaled values.")] = Loss.mae,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, data and machine give the same forecasts.")] = 0,
    device: Annotated[Device, typer.Option(help="auto takes CUDA when present.")] = Device.auto,
    precision: Annotated[Precision, typer.Option(help="Training arithmetic: bf16 autocast (auto: where the CPU/GPU supports it) or fp32. Loss and optimizer stay fp32.")] = TrainConfig.precision,
    run_dir: Annotated[Optional[Path], typer.Option(help="Run directory to write. Default: a new directory under runs/.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run directory.")] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Train a stacked LSTM on every series of DATA and write a run directory."""
    data_cfg = DataConfig(id_col=id_col, time_col=time_col, freq=freq, fill=fill,
                          target=tuple(t.strip() for t in target.split(",") if t.strip()) if target else None)
    train_cfg = TrainConfig(epochs=epochs, max_steps=max_steps, batch_size=batch_size, lr=lr, schedule=schedule, patience=patience,
                            val_size=val_size, scaler=scaler, loss=loss, forking=forking, seed=seed, device=device, precision=precision)
    progress = None
    if not quiet:
        from lstmcast.progress import PlainProgress, RichProgress

        progress = RichProgress() if sys.stderr.isatty() else PlainProgress()

    def work():
        from lstmcast.api import train as train_fn

        try:
            return train_fn(data, data_cfg, horizon=horizon, lookback=lookback, hidden=hidden, layers=layers,
                            dropout=dropout, window_norm=window_norm, skip=skip, train_config=train_cfg, run_dir=run_dir, overwrite=overwrite,
                            progress=progress, on_note=lambda note: _note(note, quiet))
        finally:
            if progress is not None:
                progress.close()

    report = _run(work, verbose)
    if not quiet:
        m = report.metrics
        print(f"run: {report.run_dir}")
        print(f"best epoch {m['best_epoch']} ({m['stopped']}), {m['steps']} steps, {m['train_seconds']:.1f} s, "
              f"{m['windows_per_second']:.0f} windows/s on {m['device']} ({m['precision']})")
        print(f"validation: {_metrics_line(m['validation'])}")


@app.command(epilog=EXIT_CODES_HELP)
def predict(
    run: Annotated[Path, typer.Option("--run", help="Run directory written by train.")],
    data: Annotated[Optional[Path], typer.Option(help="CSV with recent history, same columns as training. Default: the history stored in the run.")] = None,
    horizon: Annotated[Optional[int], typer.Option(min=1, help="Steps to forecast. Default: the trained horizon. Longer horizons feed forecasts back as inputs (recursive).")] = None,
    output: Annotated[Optional[Path], typer.Option(help="Forecast CSV to write ('-' for stdout). Default: forecast.csv in the run directory.")] = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Forecast the steps after the end of each series; write a long CSV (id, time, forecast)."""

    def work():
        from lstmcast.api import predict as predict_fn
        from lstmcast.io import write_text

        report = predict_fn(run, data=data, horizon=horizon)
        text = report.forecast.to_csv(index=False, lineterminator="\n")
        if output is not None and str(output) == "-":
            sys.stdout.write(text)
            return report, None
        target = output or (run / "forecast.csv")
        write_text(target, text)
        return report, target

    report, target = _run(work, verbose)
    for note in report.notes:
        _note(note, quiet)
    if target is not None and not quiet:
        frame = report.forecast
        n_series = frame.iloc[:, 0].nunique()
        print(f"wrote {len(frame)} rows for {n_series} series to {target}")
        print(frame.head(min(len(frame), 6)).to_string(index=False))


def _print_evaluation(result: dict[str, Any]) -> None:
    rows = [("lstmcast", result["overall"]), ("naive", result["baselines"]["naive"]),
            ("seasonal naive", result["baselines"]["seasonal_naive"])]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"held-out last {result['test_size']} points, season {result['season']}")
        for col in ("forecast", "MAE", "RMSE", "MAPE", "sMAPE", "MASE"):
            table.add_column(col, justify="left" if col == "forecast" else "right")
        for name, m in rows:
            table.add_row(name, _fmt(m["mae"]), _fmt(m["rmse"]), _fmt(m["mape"], True),
                          _fmt(m["smape"], True), _fmt(m["mase"]))
        Console().print(table)
    else:
        print(f"held-out last {result['test_size']} points, season {result['season']}")
        for name, m in rows:
            print(f"{name}: {_metrics_line(m)}")


@app.command(epilog=EXIT_CODES_HELP)
def evaluate(
    run: Annotated[Path, typer.Option("--run", help="Run directory written by train.")],
    data: Annotated[Path, typer.Option(help="CSV to evaluate on, same columns as training.")],
    test_size: Annotated[Optional[int], typer.Option(min=1, help="Last points of each series held out and forecast. Default: the trained horizon.")] = None,
    season: Annotated[Optional[int], typer.Option(min=1, help="Season for MASE and seasonal naive. Default: from the frequency.")] = None,
    output: Annotated[Optional[Path], typer.Option(help="Write metrics JSON here (keys overall, baselines, series).")] = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Forecast the last points of each series from what precedes them; compare with naive baselines."""

    def work():
        from lstmcast.api import evaluate as evaluate_fn
        from lstmcast.io import write_json

        result = evaluate_fn(run, data, test_size=test_size, season=season)
        if output is not None:
            write_json(output, {k: v for k, v in result.items() if k != "notes"})
        return result

    result = _run(work, verbose)
    for note in result["notes"]:
        _note(note, quiet)
    if not quiet:
        _print_evaluation(result)
        if output is not None:
            print(f"wrote {output}")


def main() -> None:
    """Entry point: usage errors become one line and exit code 2."""
    # numpy's products here are small (one LSTM step over a batch): extra BLAS threads only
    # contend, and on a busy cron host they made predict ten times slower.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # click's UsageError and ClickException, whether typer vendors click or depends on it.
    usage_error, click_error = typer.BadParameter.__mro__[1:3]
    try:
        code = app(standalone_mode=False)
    except usage_error as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `lstmcast`: show the help
            print(exc.format_message())
            sys.exit(0)
        ctx = getattr(exc, "ctx", None)
        name = ctx.command_path if ctx is not None else "lstmcast"
        print(f"lstmcast: error: {exc.format_message()} (see '{name} --help')", file=sys.stderr)
        sys.exit(EXIT_INPUT)
    except click_error as exc:
        print(f"lstmcast: error: {exc.format_message()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("lstmcast: error: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
