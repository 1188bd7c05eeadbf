"""What the commands print: messages to stderr, data or a summary to stdout.

`Console` carries one command's output settings: `--quiet`, `--verbose`, `--json`.
Errors become one line on stderr (`lstmcast: error: ...`, plus the traceback with
`--verbose`) and an exit code; with `--json` stdout also gets one JSON object
`{"command", "status": "error", "exit_code", "error"}`, as it gets the summary on success.
"""

from __future__ import annotations

import json
import math
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer

from lstmcast.train import signals
from lstmcast.errors import EXIT_FAILURE, EXIT_INPUT, EXIT_PIPE, EXIT_SIGINT, EXIT_SIGTERM, LstmcastError
from lstmcast.wording import plural

T = TypeVar("T")


def _plain(value: Any) -> Any:
    """JSON-ready: paths as strings, NaN/inf as null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def stop_code() -> int | None:
    """128 + the signal number when SIGINT or SIGTERM stopped this process."""
    signum = signals.received()
    return None if signum is None else 128 + int(signum)


class Console:
    def __init__(self, command: str, quiet: bool = False, verbose: bool = False, as_json: bool = False) -> None:
        self.command, self.quiet, self.verbose, self.as_json = command, quiet, verbose, as_json
        self.started = time.monotonic()

    def note(self, message: str) -> None:
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)

    def fail(self, message: str, code: int) -> NoReturn:
        print(f"lstmcast: error: {message}", file=sys.stderr, flush=True)
        if self.as_json:
            status = "interrupted" if code in (EXIT_SIGINT, EXIT_SIGTERM) else "error"
            self.emit({"status": status, "exit_code": code, "error": message})
        raise typer.Exit(code)

    def run(self, fn: Callable[[], T]) -> T:
        """Call `fn`, turning errors into one stderr line and an exit code."""
        try:
            return fn()
        except LstmcastError as exc:
            if self.verbose:
                traceback.print_exc()
            self.fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            code = stop_code() or EXIT_SIGINT
            self.fail("interrupted by SIGTERM" if code == 143 else "interrupted", code)
        except BrokenPipeError:
            pipe_closed()
        except MemoryError:
            self.fail("out of memory; use a smaller file, --batch-size or --lookback", EXIT_FAILURE)
        except Exception as exc:  # noqa: BLE001 -- a bug or an OS error: one line, traceback on request
            if self.verbose:
                traceback.print_exc()
            detail = str(exc).splitlines()[0] if str(exc) else ""
            self.fail(f"{type(exc).__name__}: {detail} (rerun with --verbose for the traceback)", EXIT_FAILURE)

    def emit(self, summary: dict[str, Any]) -> None:
        """Print the `--json` summary: one object, one line, on stdout."""
        obj = {"command": self.command, **summary}
        obj.setdefault("timings", {})["total_seconds"] = round(time.monotonic() - self.started, 3)
        print(json.dumps(_plain(obj), allow_nan=False), flush=True)


def fmt(value: float | None, pct: bool = False) -> str:
    """Numbers for people: 14,763.2 rather than 1.476e+04; exponents only for the extremes."""
    if value is None:
        return "n/a"
    if pct:
        return f"{value:.2f}%"
    size = abs(value)
    if size != 0 and (size >= 1e9 or size < 1e-3):
        return f"{value:.4g}"
    return f"{value:,.1f}" if size >= 100 else f"{value:.4g}"


MEANS_NOTE = "(MAE, RMSE: means over series)"


def metrics_line(m: dict[str, Any], means_note: bool = True) -> str:
    """Scale-free metrics first: MAE and RMSE are means over series, which may be in different units."""
    return (f"MASE {fmt(m['mase'])}  sMAPE {fmt(m['smape'], True)}  MAPE {fmt(m['mape'], True)}  "
            f"MAE {fmt(m['mae'])}  RMSE {fmt(m['rmse'])}" + (f" {MEANS_NOTE}" if means_note else ""))


def _pct(share: float | None) -> str:
    return "n/a" if share is None else f"{100 * share:.1f}%"


def interval_lines(iv: dict[str, Any]) -> list[str]:
    """evaluate's interval scores as lines: one per central interval, then the pinball loss."""
    lines = [f"{name} interval ({p['lower']:g}-{p['upper']:g}): coverage {_pct(p['coverage'])}  "
             f"mean width {fmt(p['width'])}" for name, p in iv["intervals"].items()]
    levels = ", ".join(f"{q:g}" for q in iv["levels"])
    return lines + [f"pinball loss over levels {levels} (CRPS estimate): {fmt(iv['pinball'])}  "
                    f"scaled by the MASE scale: {fmt(iv['scaled_pinball'])}"]


def calibration_line(c: dict[str, Any]) -> str:
    """train's summary of the interval calibration."""
    raw = ", ".join(f"{name} {_pct(v)}" for name, v in c["raw_validation_coverage"].items())
    after = ", ".join(f"{name} {_pct(v)}" for name, v in c.get("validation_coverage", {}).items())
    how = "per horizon step" if c["per_step"] else "one correction for all steps"
    return (f"intervals: calibrated on {c['windows']} validation windows ({how})"
            + (f"; validation coverage before calibration {raw}" if raw else "")
            + (f", after {after}" if after else "") + "".join(f"\n{n}" for n in c["notes"]))


def train_summary(report: Any, code: int) -> dict[str, Any]:
    """train's `--json` summary of a `TrainReport` (`code`: the exit code it ends with)."""
    m = report.metrics
    return {
        "status": "interrupted" if code else "ok", "exit_code": code, "run_dir": report.run_dir,
        "files": report.files, "notes": report.notes, "model": report.model,
        "metrics": {k: m[k] for k in ("validation", "best_epoch", "best_val_loss", "stopped", "steps", "intervals")
                    if k in m} | {"epochs": len(m["history"])},
        "timings": {"train_seconds": m["train_seconds"], "windows_per_second": m["windows_per_second"]},
        "world_size": m.get("world_size", 1),
    }


def print_train(report: Any) -> None:
    """train's summary for people: the run, how training went, the validation metrics."""
    m = report.metrics
    print(f"run: {report.run_dir}")
    print(f"best epoch {m['best_epoch']} ({m['stopped']}), {m['steps']} steps, {m['train_seconds']:.1f} s, "
          f"{m['windows_per_second']:.0f} windows/s on {m['device']} ({m['precision']})")
    print(f"validation: {metrics_line(m['validation'])}")
    if "intervals" in m:
        print(calibration_line(m["intervals"]))


def _rows(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [("lstmcast", result["overall"]), ("naive", result["baselines"]["naive"]),
            ("seasonal naive", result["baselines"]["seasonal_naive"])]


def _cells(m: dict[str, Any]) -> list[str]:
    return [fmt(m["mase"]), fmt(m["smape"], True), fmt(m["mape"], True), fmt(m["mae"]), fmt(m["rmse"])]


def _table(title: str, sections: list[tuple[list[str], dict[str, Any]]], first: list[str] = ()) -> None:
    """A rich table with one section (lstmcast, naive, seasonal naive rows) per result."""
    from rich.console import Console as RichConsole
    from rich.table import Table

    table = Table(title=title, caption="MAE and RMSE are means over series (each in its own units)")
    for col in [*first, "forecast", "MASE", "sMAPE", "MAPE", "MAE", "RMSE"]:
        table.add_column(col, justify="left" if col in (*first, "forecast") else "right", no_wrap=col in first)
    for k, (labels, result) in enumerate(sections):
        for j, (name, m) in enumerate(_rows(result)):
            table.add_row(*(labels if j == 0 else [""] * len(labels)), name, *_cells(m),
                          end_section=j == 2 and k < len(sections) - 1)
    RichConsole().print(table)


def print_evaluation(result: dict[str, Any]) -> None:
    title = f"held-out last {result['test_size']} points, season {result['season']}"
    if sys.stdout.isatty():
        _table(title, [([], result)])
        if "intervals" in result:
            from rich.console import Console as RichConsole
            from rich.table import Table
            iv = result["intervals"]
            table = Table(title="prediction intervals", caption=interval_lines(iv)[-1])
            for col in ("interval", "levels", "coverage", "mean width"):
                table.add_column(col, justify="left" if col == "interval" else "right")
            for name, p in iv["intervals"].items():
                table.add_row(name, f"{p['lower']:g}-{p['upper']:g}", _pct(p["coverage"]), fmt(p["width"]))
            RichConsole().print(table)
    else:
        print(f"{title} {MEANS_NOTE}")
        for name, m in _rows(result):
            print(f"{name}: {metrics_line(m, means_note=False)}")
        for line in interval_lines(result["intervals"]) if "intervals" in result else ():
            print(line)


def _when(value: Any) -> str:
    """A cut-off for people: '1958-12-01' or '2024-01-05 11:00' rather than ISO with T and seconds."""
    text = str(value).replace("T", " ")
    return text[:10] if text.endswith(" 00:00:00") else text[:16] if text.endswith(":00") else text


def _cutoff(fold: dict[str, Any]) -> str:
    return _when(fold["cutoff"]) if fold["cutoff"] is not None else f"{fold['before_end']} before the end"


def print_backtest(result: dict[str, Any]) -> None:
    """Per fold and over all folds: lstmcast beside naive and seasonal naive."""
    folds = result["folds"]
    title = (f"backtest: {plural(len(folds), 'fold')} of {plural(result['horizon'], 'step')}, {result['step']} apart, "
             f"season {result['season']}, " + ("refit per fold" if result["refit"] else "run as trained"))
    sections = [([str(f["fold"]), _cutoff(f)], f) for f in folds] + [(["all", ""], result)]
    if sys.stdout.isatty():
        _table(title, sections, first=["fold", "cut-off"])
        if "intervals" in result:
            _backtest_intervals(sections)
        return
    print(f"{title} {MEANS_NOTE}")
    for (fold, cutoff), part in sections:
        print(f"fold {fold}, cut-off {cutoff}" if cutoff else "all folds")
        for name, m in _rows(part):
            print(f"  {name}: {metrics_line(m, means_note=False)}")
        for line in interval_lines(part["intervals"]) if "intervals" in part else ():
            print(f"  {line}")


def _backtest_intervals(sections: list[tuple[list[str], dict[str, Any]]]) -> None:
    """Coverage and width of each central interval per fold and over all folds, and the pinball loss."""
    from rich.console import Console as RichConsole
    from rich.table import Table

    table = Table(title="prediction intervals per fold")
    names = list(sections[-1][1]["intervals"]["intervals"])
    for col in ["fold", "cut-off", *(f"{n} coverage" for n in names), *(f"{n} width" for n in names), "pinball"]:
        table.add_column(col, justify="left" if col in ("fold", "cut-off") else "right", no_wrap=True)
    for labels, part in sections:
        iv = part["intervals"]
        table.add_row(*labels, *(_pct(iv["intervals"][n]["coverage"]) for n in names),
                      *(fmt(iv["intervals"][n]["width"]) for n in names), fmt(iv["pinball"]))
    RichConsole().print(table)


def _label(t: Any) -> Any:
    return t.isoformat() if hasattr(t, "isoformat") else int(t)


def detect_summary(report: Any, files: list[Path], code: int) -> dict[str, Any]:
    """detect's `--json` summary: counts, the series flagged and when (at most 1,000 points listed)."""
    flagged: dict[str, list[Any]] = {}
    for f in report.flagged:
        flagged.setdefault(f.id, []).append(_label(f.time))
    return {
        "status": "ok", "exit_code": code, "files": files, "series": report.series, "rows": report.rows,
        "scored": report.scored, "level": report.level, "anomalies": report.anomalies,
        "series_flagged": len(report.flagged_series), "flagged_per_series": report.flagged_series,
        "flagged": flagged, "flagged_listed": len(report.flagged), "score": report.score, "stride": report.stride,
        "ahead": report.ahead, "window": report.window, "last_value": report.last_value,
        "refits": report.refits, "new_series": report.new_series, "notes": report.notes, "timings": {},
    }


def print_detection(report: Any, target: Path | None, pngs: list[Path], plot: Path | None, stream: Any) -> None:
    """detect's summary for people: what was scored and flagged, the highest scores, the files written."""
    flagged = len(report.flagged_series)
    print(f"scored {plural(report.scored, 'point')} of {plural(report.series, 'series', 'series')} at level {report.level:g} ({report.score}): "
          f"{report.anomalies} flagged in {flagged} series", file=stream)
    if report.last_value:
        print(f"  {plural(report.last_value, 'point')} set against the last value before {'it' if report.last_value == 1 else 'them'}: "
              "the run's one-step forecasts missed more (--no-fallback: the run's forecasts)", file=stream)
    for f in sorted(report.flagged, key=lambda f: -f.score)[:10]:
        print(f"  {f.id}  {_when(_label(f.time))}  value {fmt(f.value)}  expected {fmt(f.expected)}  "
              f"score {f.score:.6f}", file=stream)
    if target is not None:
        print(f"wrote {report.rows} rows to {target}", file=stream)
    if pngs:
        print(f"wrote {len(pngs)} PNG file{'s' * (len(pngs) != 1)} to {plot}", file=stream)


def metrics_summary(result: dict[str, Any]) -> dict[str, Any]:
    """evaluate's `--json` metrics: overall and baselines, and each fold's for a backtest."""
    out = {k: result[k] for k in ("overall", "baselines", "intervals") if k in result}
    if "folds" in result:
        keys = ("fold", "cutoff", "before_end", "overall", "baselines", "intervals")
        out["folds"] = [{k: f[k] for k in keys if k in f} for f in result["folds"]]
    return out


def pipe_closed() -> NoReturn:
    """The reader of stdout closed the pipe (`lstmcast predict --output - | head -1`): a reader
    that has read enough is normal in a shell. End quietly with 141, as cat does (128 + SIGPIPE);
    stdout goes to /dev/null first, so the interpreter's last flush finds no broken pipe either."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    sys.exit(EXIT_PIPE)


def run_app(app: typer.Typer) -> NoReturn:
    """Run the Typer app: usage errors become one line on stderr and exit code 2."""
    # click's UsageError and ClickException, whether typer vendors click or depends on it.
    usage_error, click_error = typer.BadParameter.__mro__[1:3]

    def json_error(message: str, code: int) -> None:
        if "--json" in sys.argv[1:]:
            command = next((a for a in sys.argv[1:] if not a.startswith("-")), "lstmcast")
            Console(command, as_json=True).emit({"status": "error", "exit_code": code, "error": message})

    try:
        code = app(standalone_mode=False)
    except usage_error as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `lstmcast`: show the help
            print(exc.format_message())
            sys.exit(0)
        ctx = getattr(exc, "ctx", None)
        name = ctx.command_path if ctx is not None else "lstmcast"
        print(f"lstmcast: error: {exc.format_message()} (see '{name} --help')", file=sys.stderr)
        json_error(exc.format_message(), EXIT_INPUT)
        sys.exit(EXIT_INPUT)
    except click_error as exc:
        print(f"lstmcast: error: {exc.format_message()}", file=sys.stderr)
        json_error(exc.format_message(), exc.exit_code)
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        pipe_closed()
    except SystemExit:
        if type(sys.stdout).__name__ == "PacifyFlushWrapper":  # typer's own exit on EPIPE, printing a summary
            pipe_closed()
        raise
    except (typer.Abort, KeyboardInterrupt):
        code = stop_code() or EXIT_SIGINT
        print("lstmcast: error: interrupted", file=sys.stderr)
        sys.exit(code)
    except LstmcastError as exc:  # raised while options were parsed (an option's callback)
        print(f"lstmcast: error: {exc}", file=sys.stderr)
        json_error(str(exc), exc.exit_code)
        sys.exit(exc.exit_code)
    except Exception as exc:  # noqa: BLE001 -- a bug while parsing options: still one line, no traceback
        if "--verbose" in sys.argv[1:]:
            traceback.print_exc()
        detail = str(exc).splitlines()[0] if str(exc) else ""
        message = f"{type(exc).__name__}: {detail} (rerun with --verbose for the traceback)"
        print(f"lstmcast: error: {message}", file=sys.stderr)
        json_error(message, EXIT_FAILURE)
        sys.exit(EXIT_FAILURE)
    sys.exit(code if isinstance(code, int) else 0)
