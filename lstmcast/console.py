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

from lstmcast import signals
from lstmcast.errors import EXIT_FAILURE, EXIT_SIGINT, LstmcastError

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
            self.emit({"status": "error", "exit_code": code, "error": message})
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


def metrics_line(m: dict[str, Any]) -> str:
    return (f"MAE {fmt(m['mae'])}  RMSE {fmt(m['rmse'])}  MAPE {fmt(m['mape'], True)}  "
            f"sMAPE {fmt(m['smape'], True)}  MASE {fmt(m['mase'])}")


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
    how = "per horizon step" if c["per_step"] else "one correction for all steps"
    return (f"intervals: calibrated on {c['windows']} validation windows ({how})"
            + (f"; coverage before calibration {raw}" if raw else "") + "".join(f"\n{n}" for n in c["notes"]))


def print_evaluation(result: dict[str, Any]) -> None:
    rows = [("lstmcast", result["overall"]), ("naive", result["baselines"]["naive"]),
            ("seasonal naive", result["baselines"]["seasonal_naive"])]
    if sys.stdout.isatty():
        from rich.console import Console as RichConsole
        from rich.table import Table

        table = Table(title=f"held-out last {result['test_size']} points, season {result['season']}")
        for col in ("forecast", "MAE", "RMSE", "MAPE", "sMAPE", "MASE"):
            table.add_column(col, justify="left" if col == "forecast" else "right")
        for name, m in rows:
            table.add_row(name, fmt(m["mae"]), fmt(m["rmse"]), fmt(m["mape"], True),
                          fmt(m["smape"], True), fmt(m["mase"]))
        RichConsole().print(table)
        if "intervals" in result:
            iv = result["intervals"]
            table = Table(title="prediction intervals", caption=interval_lines(iv)[-1])
            for col in ("interval", "levels", "coverage", "mean width"):
                table.add_column(col, justify="left" if col == "interval" else "right")
            for name, p in iv["intervals"].items():
                table.add_row(name, f"{p['lower']:g}-{p['upper']:g}", _pct(p["coverage"]), fmt(p["width"]))
            RichConsole().print(table)
    else:
        print(f"held-out last {result['test_size']} points, season {result['season']}")
        for name, m in rows:
            print(f"{name}: {metrics_line(m)}")
        for line in interval_lines(result["intervals"]) if "intervals" in result else ():
            print(line)
