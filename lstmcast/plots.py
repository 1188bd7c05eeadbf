"""PNG plots: one per series (history, forecast, intervals, actuals) and the training loss.

matplotlib is optional (`INSTALL`: the `plot` extra, from the clone). It is imported here, lazily,
only when a plot is drawn, and only through `matplotlib.figure.Figure`, which renders
with the Agg backend: no pyplot, no display, no global state. PNGs, at a fixed pixel size
(WIDTH x HEIGHT), go out through `run.output.Door` like every output: their names come
from the data, so a link planted at one is refused, never followed, and in a run
directory no series takes the name of one of the run's own files.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path
from typing import Any

import numpy as np

from lstmcast.errors import InputError

# lstmcast is on no package index: the extra is installed from the clone (constraints.txt pins matplotlib).
INSTALL = "pip install -c constraints.txt -e '.[plot]' in your lstmcast clone, or pip install matplotlib"
DPI = 100
WIDTH, HEIGHT = 1200, 500  # pixels of a series plot
LOSS_WIDTH, LOSS_HEIGHT = 900, 450  # pixels of loss.png
PLOT_MAX = 20  # default --plot-max
HISTORY_TAIL = 3  # history shown: this many times one forecast's steps (at least MIN_TAIL points)
MIN_TAIL = 36

_INK, _GRID = "#222222", "#d9d9d9"
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")  # one per fold, cycled
_Q_COLUMN = re.compile(r"q(0?\.\d+|0|1)")


def _figure(width: int, height: int):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise InputError(f"--plot needs matplotlib, which is not installed: {INSTALL}") from None
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    return fig


def require(out_dir: str | Path | None = None) -> None:
    """Raise InputError (exit 2) naming the install command when matplotlib is missing, or when
    `out_dir` cannot hold the plots (a regular file where a directory of it should be)."""
    _figure(10, 10)
    if out_dir is not None:
        from lstmcast.run.output import Door

        Door(Path(out_dir) / "plot.png", chosen=True, flag="--plot").check_place()


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def file_names(ids: list[str], reserved: frozenset[str] = frozenset()) -> dict[str, str]:
    """A safe, unique PNG file name for every series id.

    Letters, digits, '.', '_' and '-' are kept (at most 80); an id that needed changes, or
    whose name another id already took (compared case-insensitively, as macOS and Windows
    do), gets a short hash of the id so that no two series share a file. So does an id
    whose file would be one of the `reserved` names (a run's own loss.png, when the plots go
    into the run directory).
    """
    names: dict[str, str] = {}
    taken: set[str] = {n.lower().removesuffix(".png") for n in reserved}
    for sid in ids:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", str(sid)).strip("._")[:80] or "series"
        name = base
        if name != str(sid) or name.lower() in taken:
            name = f"{base}-{hashlib.sha1(str(sid).encode('utf-8')).hexdigest()[:8]}"
        while name.lower() in taken:
            name += "_"
        taken.add(name.lower())
        names[sid] = name + ".png"
    return names


def interval_bands(columns: list[str]) -> list[tuple[float, str, str]]:
    """(coverage, lower column, upper column) for each symmetric pair of q-columns, widest first.

    `q0.1` and `q0.9` make the 80% band; a level without its mirror is not shaded.
    """
    levels = {float(m.group(1)): c for c in map(str, columns) if (m := _Q_COLUMN.fullmatch(c))}
    bands = []
    for low, col in levels.items():
        high = next((c for level, c in levels.items() if abs(level - (1 - low)) < 1e-9), None)
        if low < 0.5 and high is not None:
            bands.append((round(1 - 2 * low, 6), col, high))
    return sorted(bands, reverse=True)


def _history_times(first: Any, count: int, freq: str | None, step: int) -> Any:
    """The `count` times before `first` (a forecast's first time) on the series' grid."""
    import pandas as pd

    if isinstance(first, pd.Timestamp):
        return pd.date_range(end=first, periods=count + 1, freq=freq)[:-1]
    return int(first) - step * np.arange(count, 0, -1)


def _style_axes(ax, dated: bool, xlabel: str, values: np.ndarray) -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    if dated:
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

        locator = AutoDateLocator(minticks=4, maxticks=9)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=10, integer=True))
        ax.set_xlabel(xlabel, fontsize=11)
    finite = values[np.isfinite(values)]
    if finite.size and np.abs(finite).max() >= 1e4:  # 12,500 rather than 1.25 and a x1e4 offset
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.tick_params(labelsize=10)
    ax.grid(True, color=_GRID, linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def series_png(title: str, history: tuple[Any, np.ndarray], forecasts: list[Any], actual: tuple[Any, np.ndarray] | None,
               origins: list[Any], time_label: str, value_label: str = "", subtitle: str = "") -> bytes:
    """One series: its history, forecast segments, actuals.

    Args:
        history: (times, values) before the first forecast.
        forecasts: DataFrames (time, "forecast", optional q-columns), one per fold.
        actual: (times, values) observed over the forecasts, or None.
        origins: where each forecast starts from (the last time it saw): a dotted line.
    """
    fig = _figure(WIDTH, HEIGHT)
    ax = fig.add_subplot()
    hx, hy = history
    dated = hasattr(forecasts[0].iloc[0, 0], "isoformat")
    ax.plot(hx, hy, color=_INK, linewidth=1.3, label="history", zorder=3)
    if actual is not None and len(actual[0]):
        ax_, ay = list(actual[0]), list(actual[1])
        if len(hy):  # the observed series goes on without a break
            ax_, ay = [hx[-1], *ax_], [hy[-1], *ay]
        sparse = len(ay) <= 60
        ax.plot(ax_, ay, color=_INK, linewidth=1.3, marker="o" if sparse else None, markersize=3.5,
                markevery=list(range(1 if len(hy) else 0, len(ay))), label="actual", zorder=3)
    folds = len(forecasts)
    shown: list[np.ndarray] = [np.asarray(hy, dtype=float)]
    for k, part in enumerate(forecasts):
        x, color = part.iloc[:, 0], _COLORS[k % len(_COLORS)]
        for j, (coverage, lo, hi) in enumerate(interval_bands(list(part.columns))):
            ax.fill_between(x, part[lo], part[hi], color=color, alpha=0.15 + 0.12 * j, linewidth=0, zorder=1,
                            label=f"{coverage:.0%} interval" if k == 0 else None)
            shown += [part[lo].to_numpy(float), part[hi].to_numpy(float)]
        if folds == 1:
            label = "forecast"
        elif folds <= len(_COLORS):
            label = f"fold {k + 1}"
        else:
            label = f"{folds} folds" if k == 0 else None
        fx, fy = list(x), list(part["forecast"])
        if folds == 1 and len(hy) and origins and hx[-1] == origins[0]:  # the line goes on from the last point seen
            fx, fy = [hx[-1], *fx], [hy[-1], *fy]
        ax.plot(fx, fy, color=color, linewidth=2.0, label=label, zorder=2)
        shown.append(part["forecast"].to_numpy(float))
    for origin in origins:
        ax.axvline(origin, color="#8a8a8a", linewidth=0.9, linestyle=":", zorder=0)
    _style_axes(ax, bool(dated), time_label, np.concatenate(shown))
    ax.set_title(str(title), loc="left", fontsize=14, fontweight="bold")
    if subtitle:
        ax.set_title(subtitle, loc="right", fontsize=10, color="#6b6b6b")
    if value_label:
        ax.set_ylabel(value_label, fontsize=11)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper right", ncols=len(labels), fontsize=10, frameon=False)
    return _png(fig)


def forecast_plots(out_dir: str | Path, frame: Any, history: dict[str, np.ndarray], freq: str | None,
                   step: int = 1, max_plots: int = PLOT_MAX, value_label: str = "", subtitle: str = "",
                   run_dir: str | Path | None = None) -> list[Path]:
    """Write `<series>.png` into `out_dir` for the first `max_plots` series of `frame`.

    Args:
        frame: id column, time column, "forecast", optional q-columns (`q0.1`...), "actual"
            (evaluate) and "fold" (backtest: one forecast segment per fold).
        history: raw values of each series up to its first forecast time.
        freq, step: the grid of the time column (pandas alias for dates, step for integers).
        value_label, subtitle: the y axis's label (the value column) and a note beside the title (the run).
        run_dir: the run the forecasts come from; in it (or in any run) no series takes a name of its own files.
    """
    require()
    id_col, time_col = frame.columns[0], frame.columns[1]
    groups = list(frame.groupby(id_col, sort=False))[:max_plots]
    doors = _doors(out_dir, [sid for sid, _ in groups], run_dir=run_dir)
    written = []
    for sid, part in groups:
        segments = [p for _, p in part.groupby("fold", sort=True)] if "fold" in part else [part]
        segments = [p.drop(columns=[c for c in (id_col, "fold", "actual") if c in p]) for p in segments]
        span = len(segments[0])  # one forecast's steps
        past = np.asarray(history.get(sid, np.empty(0)), dtype=float)[-max(HISTORY_TAIL * span, MIN_TAIL):]
        hx = _history_times(part[time_col].min(), len(past), freq, step)
        actual = None
        if "actual" in part:
            known = part.drop_duplicates(time_col).sort_values(time_col)
            actual = (list(known[time_col]), known["actual"].to_numpy(float))
        origins = [_history_times(p.iloc[0, 0], 1, freq, step)[0] for p in segments]
        png = series_png(sid, (list(hx), past), segments, actual, origins, time_col, value_label or str(sid), subtitle)
        written.append(_write(doors[sid], png))
    return written


def _doors(out_dir: str | Path, ids: list[Any], run_dir: str | Path | None = None) -> dict[Any, Any]:
    """A checked `Door` per series' PNG in `out_dir`, every one checked before any is drawn.

    In a run directory (`run_dir`, or any lstmcast run) no series takes a name of the run's own files.
    """
    from lstmcast.run.output import Door, reserved_in

    names = file_names(ids, reserved_in(out_dir, run_dir))
    doors = {sid: Door(Path(out_dir) / names[sid], run_dir, chosen=True, flag="--plot") for sid in ids}
    for door in doors.values():
        door.check()
    return doors


def _write(door: Any, png: bytes) -> Path:
    from lstmcast.run.output import write

    write(door, png)
    return door.path


def for_run(out_dir: str | Path, run_dir: str | Path, frame: Any, history: dict[str, np.ndarray],
            max_plots: int = PLOT_MAX) -> list[Path]:
    """`forecast_plots` on the time grid of the run in `run_dir`."""
    from lstmcast.run.rundir import load_meta

    data = load_meta(run_dir).data
    # Long files name their value column; in a wide file each series is its own column.
    value = data.config.target[0] if data.layout == "long" and data.config.target else ""
    # --plot RUN: a series 'loss' must not be loss.png
    return forecast_plots(out_dir, frame, history, data.freq, data.step, max_plots, value,
                          f"run {Path(run_dir).resolve().name}", run_dir)


def loss_png(history: list[dict[str, Any]], best_epoch: int | None = None, loss: str = "") -> bytes:
    """Training and validation loss per epoch (metrics.json's "history")."""
    fig = _figure(LOSS_WIDTH, LOSS_HEIGHT)
    from matplotlib.ticker import MaxNLocator

    ax = fig.add_subplot()
    epochs = [h["epoch"] for h in history]
    marker = "o" if len(epochs) <= 40 else None
    for key, label, color in (("train_loss", "train", "#1f77b4"), ("val_loss", "validation", "#ff7f0e")):
        ys = np.array([np.nan if h.get(key) is None else h[key] for h in history], dtype=float)
        ax.plot(epochs, ys, color=color, linewidth=2, marker=marker, markersize=4, label=label)
    if best_epoch:
        ax.axvline(best_epoch, color="#9a9a9a", linewidth=1, linestyle=":", label=f"best epoch ({best_epoch})")
    values = np.array([h.get(k) for h in history for k in ("train_loss", "val_loss") if h.get(k) is not None], float)
    values = values[np.isfinite(values) & (values > 0)]
    if values.size and values.max() / values.min() > 30:
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch", fontsize=11)
    ax.set_ylabel(f"{loss} loss (scaled values)".strip(), fontsize=11)
    ax.set_title("training loss", loc="left", fontsize=14, fontweight="bold")
    ax.grid(True, color=_GRID, linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(fontsize=10, frameon=False)
    return _png(fig)


def loss_file(metrics: dict[str, Any], loss: str) -> tuple[bytes | None, str | None]:
    """(loss.png bytes, None), or (None, a note saying why there is none)."""
    if not metrics.get("history"):
        return None, None  # stopped before the first epoch ended: nothing to draw
    try:
        return loss_png(metrics["history"], metrics.get("best_epoch"), loss), None
    except InputError:
        return None, f"no loss.png: matplotlib is not installed ({INSTALL})"


def detection_png(title: str, times: list[Any], frame: Any, time_label: str) -> bytes:
    """One series scored by detect: its values, the expected value and the [lower, upper] band, flagged points marked."""
    fig = _figure(WIDTH, HEIGHT)
    ax = fig.add_subplot()
    dated = bool(len(times)) and hasattr(times[0], "isoformat")
    value = frame["value"].to_numpy(float)
    lower, upper = frame["lower"].to_numpy(float), frame["upper"].to_numpy(float)
    ax.fill_between(times, lower, upper, color=_COLORS[0], alpha=0.18, linewidth=0, zorder=1,
                    label="expected band (lower-upper)")
    ax.plot(times, frame["expected"].to_numpy(float), color=_COLORS[0], linewidth=1.4, label="expected", zorder=2)
    ax.plot(times, value, color=_INK, linewidth=1.1, label="value", zorder=3)
    hit = frame["anomaly"].to_numpy(bool)
    if hit.any():
        ax.scatter([t for t, h in zip(times, hit) if h], value[hit], color=_COLORS[3], s=36, zorder=4,
                   label=f"anomaly ({int(hit.sum())})")
    _style_axes(ax, dated, time_label, np.concatenate([value, lower, upper]))
    ax.set_title(str(title), loc="left", fontsize=14, fontweight="bold")
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper right", ncols=len(labels), fontsize=10, frameon=False)
    return _png(fig)


def detection_plots(out_dir: str | Path, frame: Any, max_plots: int = PLOT_MAX,
                    run_dir: str | Path | None = None) -> list[Path]:
    """Write `<series>.png` into `out_dir` for the first `max_plots` series of detect's rows.

    `frame`: id column, time column, value, expected, lower, upper, score, anomaly.
    `run_dir`: the run detect read (its own files are never replaced).
    """
    require()
    id_col, time_col = frame.columns[0], frame.columns[1]
    groups = list(frame.groupby(id_col, sort=False))[:max_plots]
    doors = _doors(out_dir, [sid for sid, _ in groups], run_dir=run_dir)
    return [_write(doors[sid], detection_png(sid, list(part[time_col]), part, time_col)) for sid, part in groups]
