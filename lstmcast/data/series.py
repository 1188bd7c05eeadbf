"""Read a CSV of time series into regular, gap-free float arrays, validating at the door.

Two layouts:
- wide: an optional time column and one numeric column per series;
- long: an id column, a time column and one value column.

`load_series` goes in four steps: choose the layout and columns (`choose_columns`),
read the time column (`lstmcast.data.timecol`), group the rows into series in time
order (`group_rows`, `order_series`), and put each series on its regular grid
(`series_frequency`, `put_on_grids`).

Every problem found becomes an `InputError` naming the file, the column and the row
(as a CSV line number, header = line 1) or series, and what to do about it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lstmcast.config import DataConfig, Fill
from lstmcast.data.columns import line as _line
from lstmcast.data.columns import numeric_columns, numeric_matrix
from lstmcast.data.windows import MIN_INPUT
from lstmcast.data.csvfile import read_table, spool, text_column
from lstmcast.data.exported import thousands_hint
from lstmcast.data.frames import Data, is_frame
from lstmcast.data.frequency import infer_freq, normalize_freq
from lstmcast.data.timecol import TimeColumn, detect_time_col, parse_time_column, require
from lstmcast.errors import InputError
from lstmcast.wording import plural


@dataclass
class SeriesSet:
    """Regular series ready for windowing.

    `values[i]` is series `ids[i]`, float64, one value per step; its k-th value is at
    `starts[i] + k * freq` (datetime), `starts[i] + k * step` (integer time) or row k.
    """

    ids: list[str]
    values: list[np.ndarray]
    starts: list[object]
    time_kind: str  # "datetime" | "integer" | "row"
    freq: str | None
    step: int
    layout: str  # "wide" | "long"
    id_col: str
    time_col: str
    target_cols: list[str]
    notes: list[str] = field(default_factory=list)
    gaps: list[np.ndarray] = field(default_factory=list)  # per series: positions the fill method filled
    frame: pd.DataFrame | None = None  # the file as read and parsed times: covariates come from them
    times: pd.Series | None = None
    time_format: str | None = None  # the format a text time column was read with ("ISO8601", "%d/%m/%Y", ...)

    def __len__(self) -> int:
        return len(self.ids)

    def times_after(self, i: int, start: int, count: int) -> list[object]:
        """Timestamps (or integer steps) of positions start .. start+count-1 of series i."""
        return times_from(self.time_kind, self.starts[i], self.freq, self.step, start, count)


def times_from(kind: str, origin: object, freq: str | None, step: int, start: int, count: int) -> list[object]:
    """Timestamps at positions start..start+count-1 counted from `origin` (position 0)."""
    if kind == "datetime":
        rng = pd.date_range(pd.Timestamp(origin), periods=start + count, freq=freq)[start:]
        return list(rng)
    return [int(origin) + (start + k) * step for k in range(count)]


def _fill(path: Path, name: str, values: np.ndarray, method: Fill) -> tuple[np.ndarray, int]:
    missing = np.isnan(values)
    count = int(missing.sum())
    if count == 0:
        return values, 0
    if count == len(values):
        raise InputError(f"{path}: series {name!r} has no values at all; drop it or fill it")
    if method is Fill.error:
        raise InputError(
            f"{path}: series {name!r} has {count} missing values or gaps; "
            "fill them, or pass --fill interpolate|ffill|zero"
        )
    s = pd.Series(values)
    if method is Fill.interpolate:
        s = s.interpolate(limit_direction="both")
    elif method is Fill.ffill:
        s = s.ffill().bfill()
    else:
        s = s.fillna(0.0)
    return s.to_numpy(dtype="float64"), count


def _grid_positions(times: np.ndarray, freq: str | None, grids: dict) -> tuple[object, np.ndarray | None, int]:
    """(start, position of each time on the regular grid or None if already regular, grid length).

    Wide files give every series the same times: `grids` remembers them, so ten thousand
    columns build one grid, not ten thousand.
    """
    key = (len(times), times.tobytes())
    if key not in grids:
        index = pd.DatetimeIndex(times)
        grid = pd.date_range(index[0], index[-1], freq=freq)
        regular = len(grid) == len(index) and bool((grid == index).all())
        grids[key] = (index[0], None if regular else grid.get_indexer(index), len(grid))
    return grids[key]


def _regularize(path: Path, name: str, times: np.ndarray, kind: str, freq: str | None, step: int,
                values: np.ndarray, grids: dict | None = None, time: TimeColumn | None = None,
                rows: np.ndarray | None = None) -> tuple[object, np.ndarray]:
    """Put one sorted series on its regular grid, NaN where a step is missing.

    `time` and `rows` (the row of each of `times`) let a message quote the line as read.
    """
    if kind == "datetime":
        start, pos, size = _grid_positions(times, freq, {} if grids is None else grids)
        if pos is None:
            return start, values
        if (pos < 0).any():
            index = pd.DatetimeIndex(times)
            k = int(np.flatnonzero(pos < 0)[0])
            where, fix = "", "pass the right --freq or fix the timestamps"
            if time is not None and rows is not None:
                where = f" ({time.where(int(rows[k]))})"
                if time.format_may_be_wrong:  # read as %d/%m/%Y, say: the format may be what is wrong
                    where = f" ({time.where(int(rows[k]))}, read as {time.fmt})"
                    fix = "pass the right --freq or --date-format, or fix the timestamps"
            raise InputError(f"{path}: series {name!r} has timestamp {index[k]}{where} off the {freq} grid; {fix}")
        out = np.full(size, np.nan, dtype=values.dtype)
        out[pos] = values
        return start, out
    ints = np.asarray(times, dtype="int64")
    if len(ints) > 1 and ((ints - ints[0]) % step).any():
        raise InputError(f"{path}: series {name!r} has integer times not on a step of {step}; fix the time column")
    pos = (ints - ints[0]) // step
    out = np.full(int(pos[-1]) + 1, np.nan, dtype=values.dtype)
    out[pos] = values
    return int(ints[0]), out


@dataclass
class Columns:
    """What `choose_columns` picked: the layout and the id, time and value columns."""

    layout: str  # "wide" | "long"
    id_col: str | None
    time_col: str | None
    targets: list[str]


def choose_columns(path: Path, df: pd.DataFrame, cfg: DataConfig, notes: list[str]) -> Columns:
    """The layout (wide or long) and the id, time and value columns: given, or detected."""
    if cfg.id_col is not None:
        require(path, df, cfg.id_col, "--id-col")
    for col in cfg.target or ():
        require(path, df, col, "--target")
    time_col = detect_time_col(path, df, cfg)

    id_col = cfg.id_col
    others = [c for c in df.columns if c not in (time_col, id_col) and c not in cfg.covariates]
    numeric = numeric_columns(df)  # from the dtypes: df[c] for 10,000 columns costs seconds
    if id_col is None and cfg.target is None:
        # Long layout without flags: one text column of repeated ids plus one numeric column.
        text_cols = [c for c in others if c not in numeric and pd.to_numeric(df[c], errors="coerce").isna().mean() > 0.5]
        numeric_cols = [c for c in others if c not in text_cols]
        if len(text_cols) == 1 and len(numeric_cols) == 1 and time_col is not None and df[text_cols[0]].nunique() < len(df):
            id_col = text_cols[0]
            notes.append(f"long layout: id column {id_col!r}, time column {time_col!r}, value column {numeric_cols[0]!r}")

    if id_col is not None:
        if time_col is None:
            raise InputError(f"{path}: long layout needs a time column; pass --time-col (columns: {list(df.columns)})")
        targets = list(cfg.target) if cfg.target else [c for c in others if c in numeric]
        if len(targets) != 1:
            raise InputError(
                f"{path}: long layout needs exactly one value column, found {targets or 'none'}; pass --target"
            )
        return Columns("long", id_col, time_col, targets)

    if cfg.target:
        targets = list(cfg.target)
    else:
        targets = others
        text = [c for c in targets if c not in numeric and pd.to_numeric(df[c], errors="coerce").isna().all()]
        if text and len(text) == len(targets):
            raise InputError(
                f"{path}: no numeric column to forecast (columns: {list(df.columns)})"
                f"{''.join(thousands_hint(df[c]) for c in text[:1])}; "
                "pass --target, and --id-col for long layout"
            )
        if text:
            raise InputError(
                f"{path}: column {text[0]!r} is not numeric{thousands_hint(df[text[0]])}; "
                "choose the value columns with --target "
                "or name the id column with --id-col for long layout"
            )
    if not targets:
        raise InputError(f"{path}: no numeric column to forecast (columns: {list(df.columns)}); add one")
    if time_col is None:
        notes.append(f"no time column: row order is the time index; series {targets}")
    else:
        notes.append(f"wide layout: time column {time_col!r}, series {targets}")
    return Columns("wide", None, time_col, targets)


def group_rows(path: Path, df: pd.DataFrame, cols: Columns) -> list[tuple[str, np.ndarray]]:
    """(series name, its row positions): long layout, one per id in order of first appearance;
    wide layout, one per value column, all rows."""
    if cols.layout == "wide":
        every_row = np.arange(len(df))
        return [(c, every_row) for c in cols.targets]
    id_col = cols.id_col
    ids = df[id_col] = text_column(path, df, id_col)  # as written: 007, NA, " a "; only empty is missing
    if ids.isna().any():
        row = df.index[ids.isna()][0]
        raise InputError(f"{path}: column {id_col!r} line {_line(row)} has no series id; fill it or drop the row")
    codes, uniques = pd.factorize(ids, sort=False)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    return [(str(u), order[bounds[k]:bounds[k + 1]]) for k, u in enumerate(uniques)]


def order_series(path: Path, cols: Columns, time: TimeColumn, groups: list[tuple[str, np.ndarray]],
                 matrix: np.ndarray) -> tuple[list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], bool]:
    """Each series' (name, sorted times, values, rows) and whether any rows had to be sorted;
    a duplicate timestamp is an error."""
    t_all = time.values.to_numpy()
    wide = cols.layout == "wide"
    sorted_any = False
    out: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
    wide_order = None
    for k, (name, rows) in enumerate(groups):
        vals = matrix[k] if wide else matrix[0][rows]  # wide: a view, no copy
        if wide and out:  # every column has the first one's times: sorted and checked once
            out.append((name, out[0][1], vals if wide_order is None else vals[wide_order], out[0][3]))
            continue
        t = t_all[rows]
        if time.kind != "row":
            order = np.argsort(t, kind="stable")
            if (order != np.arange(len(order))).any():
                sorted_any = True
                t, vals, rows, wide_order = t[order], vals[order], rows[order], order
            dup = np.flatnonzero(t[1:] == t[:-1])
            if dup.size:
                where = f"series {name!r} " if not wide else ""
                raise InputError(
                    f"{path}: {where}duplicate timestamp {pd.Series(t).iloc[dup[0]]} in column {cols.time_col!r} "
                    f"({time.where(int(rows[dup[0] + 1]))}); remove or aggregate the duplicates"
                )
        out.append((name, t, vals, rows))
    return out, sorted_any


MIN_TRAIN_POINTS = 2 + MIN_INPUT  # the least a file's longest series needs to train on: horizon 1, validation 1


def series_frequency(path: Path, cfg: DataConfig, time: TimeColumn, per_series: list, notes: list[str]
                     ) -> tuple[str | None, int]:
    """(frequency of a datetime axis or None, step of an integer axis or 1): given, or inferred."""
    if time.kind == "datetime":
        if cfg.freq is not None:
            return normalize_freq(cfg.freq), 1
        longest = max(per_series, key=lambda s: len(s[1]))
        freq = infer_freq(pd.DatetimeIndex(longest[1]))
        if freq is None and len(longest[1]) < MIN_TRAIN_POINTS:  # too short to train on, whatever its frequency
            raise InputError(
                f"{path}: the longest series, {longest[0]!r}, has {plural(len(longest[1]), 'point')}; "
                f"training needs at least {MIN_TRAIN_POINTS} "
                f"(horizon 1 + validation 1 + {MIN_INPUT}), and a longer horizon more; add history"
            )
        if freq is None:
            hint = f" ({time.assumed})" if time.assumed else ""
            raise InputError(
                f"{path}: cannot infer the frequency of column {time.name!r}; pass --freq (e.g. h, D, W, MS){hint}"
            )
        notes.append(f"frequency {freq} (inferred)")
        return freq, 1
    if time.kind == "integer":
        diffs = np.concatenate([np.diff(t) for _, t, _, _ in per_series if len(t) > 1] or [np.array([1])])
        return None, int(np.gcd.reduce(diffs.astype("int64"))) or 1
    return None, 1


def put_on_grids(path: Path, cfg: DataConfig, time: TimeColumn, per_series: list, freq: str | None, step: int,
                 notes: list[str]) -> tuple[list[str], list[np.ndarray], list[object], list[np.ndarray]]:
    """(ids, values, starts, gap positions): each series on its regular grid, trimmed to its
    own first and last values, gaps filled with --fill."""
    kind = time.kind
    out_ids, out_vals, out_starts, out_gaps, filled, grids = [], [], [], [], 0, {}
    for name, t, vals, rows in per_series:
        if kind == "row":
            start, regular = 0, vals
        else:
            start, regular = _regularize(path, name, t, kind, freq, step, vals, grids, time, rows)
        # A series that starts late or ends early (wide layout) spans only its own values.
        present = np.flatnonzero(~np.isnan(regular))
        if present.size and (present[0] > 0 or present[-1] < len(regular) - 1):
            start = times_from(kind, start, freq, step, int(present[0]), 1)[0]
            regular = regular[present[0]: present[-1] + 1]
        out_gaps.append(np.flatnonzero(np.isnan(regular)))
        regular, count = _fill(path, name, regular, cfg.fill)
        filled += count
        out_ids.append(name)
        out_vals.append(regular)
        out_starts.append(start)
    if filled:
        notes.append(f"filled {filled} missing values or gaps ({cfg.fill.value})")
    return out_ids, out_vals, out_starts, out_gaps


def load_series(data: Data, cfg: DataConfig = DataConfig()) -> SeriesSet:
    """Read and validate `data` into a `SeriesSet`.

    Args:
        data: CSV or Parquet file, or a pandas DataFrame, wide or long layout.
        cfg: column names, date format, frequency and fill method; None fields are detected.
    """
    if is_frame(data):
        return _load(data, cfg)
    with spool(data):  # a pipe is read once: its bytes serve every reader below
        return _load(data, cfg)


def _load(data: Data, cfg: DataConfig) -> SeriesSet:
    notes: list[str] = []
    path, df = read_table(data, notes)
    cols = choose_columns(path, df, cfg, notes)
    matrix = numeric_matrix(path, df, cols.targets)  # [series (wide) or 1 (long), rows] float64
    time = parse_time_column(path, df, cols.time_col, cfg, notes)
    per_series, sorted_any = order_series(path, cols, time, group_rows(path, df, cols), matrix)
    covariate_source = (df, time.values) if cfg.covariates else (None, None)  # lstmcast.covariates reads them
    del df, matrix  # the frame's memory goes before the series are put on their grids
    if sorted_any:
        notes.append("rows were not in time order: sorted them")
    freq, step = series_frequency(path, cfg, time, per_series, notes)
    ids, values, starts, gaps = put_on_grids(path, cfg, time, per_series, freq, step, notes)
    return SeriesSet(
        ids=ids, values=values, starts=starts, time_kind=time.kind, freq=freq, step=step,
        layout=cols.layout, id_col=cols.id_col if cols.layout == "long" else "series",
        time_col=cols.time_col if cols.time_col is not None else "step", target_cols=cols.targets, notes=notes,
        gaps=gaps, frame=covariate_source[0], times=covariate_source[1], time_format=time.fmt,
    )
