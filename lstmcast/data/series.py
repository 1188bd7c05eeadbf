"""Read a CSV of time series into regular, gap-free float arrays, validating at the door.

Two layouts:
- wide: an optional time column and one numeric column per series;
- long: an id column, a time column and one value column.

Every problem found becomes an `InputError` naming the file, the column and the row
(as a CSV line number, header = line 1) or series, and what to do about it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lstmcast.config import DataConfig, Fill
from lstmcast.data.columns import is_numeric as _is_numeric
from lstmcast.data.columns import line as _line
from lstmcast.data.columns import numeric_columns, numeric_matrix
from lstmcast.data.csvfile import read_csv, text_column
from lstmcast.errors import InputError
from lstmcast.data.frequency import infer_freq, normalize_freq

_TIME_NAMES = {"date", "time", "timestamp", "datetime", "ds", "month", "week", "day",
               "hour", "period", "year", "quarter", "date_time", "dt"}


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


def _require(path: Path, df: pd.DataFrame, col: str, flag: str) -> None:
    if col not in df.columns:
        raise InputError(f"{path}: column {col!r} ({flag}) not found; columns are {list(df.columns)}")


def _looks_like_time(series: pd.Series, name: str) -> bool:
    if pd.api.types.is_datetime64_any_dtype(series):
        return True
    if _is_numeric(series):
        return name.lower() in _TIME_NAMES and pd.api.types.is_integer_dtype(series)
    sample = series.dropna().astype(str).head(50)
    if sample.empty or sample.str.fullmatch(r"[-+]?\d+(\.\d+)?").all():
        return False
    parsed = pd.to_datetime(sample, errors="coerce", format="mixed", utc=True)  # utc: offsets may differ
    # A column named like time may hold a bad value; parsing it later names the line.
    needed = 0.8 if name.lower() in _TIME_NAMES else 1.0
    return bool(parsed.notna().mean() >= needed)


def _detect_time_col(path: Path, df: pd.DataFrame, cfg: DataConfig) -> str | None:
    if cfg.time_col is not None:
        _require(path, df, cfg.time_col, "--time-col")
        return cfg.time_col
    named = [c for c in df.columns if c.lower() in _TIME_NAMES and c != cfg.id_col]
    candidates = named + [c for c in df.columns if c not in named and c != cfg.id_col]
    for col in candidates:
        if cfg.target and col in cfg.target:
            continue
        if _looks_like_time(df[col], col):
            return col
    return None


_OFFSET = r"(?:Z|[+-]\d{2}:?\d{2})$"


def _unique_steps(times: pd.Series) -> int:
    return int(pd.Series(np.diff(times.dropna().sort_values().to_numpy())).nunique())


def _parse_zoned(text: pd.Series) -> tuple[pd.Series, str]:
    """Parse timestamps; with UTC offsets that change (daylight saving), pick the regular clock.

    Hourly data is regular in UTC (local time skips and repeats an hour); daily data at
    local midnight is regular in local time (UTC moves by an hour). The clock with fewer
    distinct steps wins, UTC on a tie.
    """
    try:
        return pd.to_datetime(text, errors="coerce", format="mixed"), ""
    except ValueError:  # offsets differ from row to row
        pass
    try:
        utc = pd.to_datetime(text, errors="coerce", format="mixed", utc=True).dt.tz_localize(None)
        wall = pd.to_datetime(text.str.replace(_OFFSET, "", regex=True), errors="coerce", format="mixed")
    except (ValueError, OverflowError, TypeError):  # unparseable: the caller names the line
        return pd.Series(pd.NaT, index=text.index), ""
    if wall.notna().all() and _unique_steps(wall) < _unique_steps(utc):
        return wall, "UTC offsets change (daylight saving): used local time, which is regular"
    return utc, "UTC offsets change (daylight saving): converted to UTC"


def _parse_times(path: Path, df: pd.DataFrame, col: str, notes: list[str]) -> tuple[str, pd.Series]:
    """('datetime'|'integer', parsed column)."""
    raw = df[col]
    if raw.isna().any():
        row = raw.index[raw.isna()][0]
        raise InputError(f"{path}: column {col!r} line {_line(row)} has no timestamp; fill it or drop the row")
    if pd.api.types.is_integer_dtype(raw):
        return "integer", raw.astype("int64")
    if pd.api.types.is_datetime64_any_dtype(raw):
        parsed = raw
    else:
        text = raw.astype(str).str.strip()
        parsed, note = _parse_zoned(text)
        if note:
            notes.append(f"column {col!r}: {note}")
        if parsed.isna().any():
            row = parsed.index[parsed.isna()][0]
            raise InputError(
                f"{path}: column {col!r} line {_line(row)}: cannot parse {text[row]!r} as a date/time; "
                "fix the value or pass the right --time-col"
            )
    if getattr(parsed.dt, "tz", None) is not None:
        # Regular steps are defined in UTC: a daylight-saving jump is not a gap.
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return "datetime", parsed


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
                values: np.ndarray, grids: dict | None = None) -> tuple[object, np.ndarray]:
    """Put one sorted series on its regular grid, NaN where a step is missing."""
    if kind == "datetime":
        start, pos, size = _grid_positions(times, freq, {} if grids is None else grids)
        if pos is None:
            return start, values
        if (pos < 0).any():
            index = pd.DatetimeIndex(times)
            off = index[pos < 0][0]
            raise InputError(
                f"{path}: series {name!r} has timestamp {off} off the {freq} grid; "
                "pass the right --freq or fix the timestamps"
            )
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


def load_series(path: str | Path, cfg: DataConfig = DataConfig()) -> SeriesSet:
    """Read and validate `path` into a `SeriesSet`.

    Args:
        path: CSV file, wide or long layout.
        cfg: column names, frequency and fill method; None fields are detected.
    """
    path = Path(path)
    df = read_csv(path)
    notes: list[str] = []
    if cfg.id_col is not None:
        _require(path, df, cfg.id_col, "--id-col")
    for col in cfg.target or ():
        _require(path, df, col, "--target")
    time_col = _detect_time_col(path, df, cfg)

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
        layout = "long"
        if time_col is None:
            raise InputError(f"{path}: long layout needs a time column; pass --time-col (columns: {list(df.columns)})")
        targets = list(cfg.target) if cfg.target else [c for c in others if c in numeric]
        if len(targets) != 1:
            raise InputError(
                f"{path}: long layout needs exactly one value column, found {targets or 'none'}; pass --target"
            )
    else:
        layout = "wide"
        if cfg.target:
            targets = list(cfg.target)
        else:
            targets = others
            text = [c for c in targets if c not in numeric and pd.to_numeric(df[c], errors="coerce").isna().all()]
            if text and len(text) == len(targets):
                raise InputError(
                    f"{path}: no numeric column to forecast (columns: {list(df.columns)}); "
                    "pass --target, and --id-col for long layout"
                )
            if text:
                raise InputError(
                    f"{path}: column {text[0]!r} is not numeric; choose the value columns with --target "
                    "or name the id column with --id-col for long layout"
                )
        if not targets:
            raise InputError(f"{path}: no numeric column to forecast (columns: {list(df.columns)}); add one")
        if time_col is None:
            notes.append(f"no time column: row order is the time index; series {targets}")
        else:
            notes.append(f"wide layout: time column {time_col!r}, series {targets}")

    matrix = numeric_matrix(path, df, targets)  # [series (wide) or 1 (long), rows] float64

    # Parse time and put every series in order.
    if time_col is None:
        kind, times = "row", pd.Series(np.arange(len(df), dtype="int64"), index=df.index)
    else:
        kind, times = _parse_times(path, df, time_col, notes)

    groups: list[tuple[str, np.ndarray]]  # (name, row positions)
    if layout == "long":
        ids = df[id_col] = text_column(path, df, id_col)  # as written: 007, NA, " a "; only empty is missing
        if ids.isna().any():
            row = df.index[ids.isna()][0]
            raise InputError(f"{path}: column {id_col!r} line {_line(row)} has no series id; fill it or drop the row")
        codes, uniques = pd.factorize(ids, sort=False)
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
        groups = [(str(u), order[bounds[k]:bounds[k + 1]]) for k, u in enumerate(uniques)]
    else:
        every_row = np.arange(len(df))
        groups = [(c, every_row) for c in targets]

    t_all = times.to_numpy()
    sorted_note = False
    per_series: list[tuple[str, np.ndarray, np.ndarray]] = []
    for k, (name, rows) in enumerate(groups):
        vals = matrix[0][rows] if layout == "long" else matrix[k]  # wide: a view, no copy
        if layout == "wide" and per_series:  # every column has the first one's times: sorted and checked once
            per_series.append((name, per_series[0][1], vals if wide_order is None else vals[wide_order]))
            continue
        t, wide_order = t_all[rows], None
        if kind != "row":
            order = np.argsort(t, kind="stable")
            if (order != np.arange(len(order))).any():
                sorted_note = True
                t, vals, rows, wide_order = t[order], vals[order], rows[order], order
            dup = np.flatnonzero(t[1:] == t[:-1])
            if dup.size:
                row = df.index[rows[dup[0] + 1]]
                where = f"series {name!r} " if layout == "long" else ""
                raise InputError(
                    f"{path}: {where}duplicate timestamp {pd.Series(t).iloc[dup[0]]} in column {time_col!r} "
                    f"(line {_line(row)}); remove or aggregate the duplicates"
                )
        per_series.append((name, t, vals))
    covariate_source = (df, times) if cfg.covariates else (None, None)  # lstmcast.covariates reads them
    del df, matrix, times  # the frame's memory goes before the series are put on their grids
    if sorted_note:
        notes.append("rows were not in time order: sorted them")

    freq: str | None = None
    step = 1
    if kind == "datetime":
        if cfg.freq is not None:
            freq = normalize_freq(cfg.freq)
        else:
            longest = max(per_series, key=lambda s: len(s[1]))
            freq = infer_freq(pd.DatetimeIndex(longest[1]))
            if freq is None:
                raise InputError(
                    f"{path}: cannot infer the frequency of column {time_col!r}; pass --freq (e.g. h, D, W, MS)"
                )
            notes.append(f"frequency {freq} (inferred)")
    elif kind == "integer":
        diffs = np.concatenate([np.diff(t) for _, t, _ in per_series if len(t) > 1] or [np.array([1])])
        step = int(np.gcd.reduce(diffs.astype("int64"))) or 1

    out_ids, out_vals, out_starts, out_gaps, filled, grids = [], [], [], [], 0, {}
    for name, t, vals in per_series:
        if kind == "row":
            start, regular = 0, vals
        else:
            start, regular = _regularize(path, name, t, kind, freq, step, vals, grids)
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

    return SeriesSet(
        ids=out_ids, values=out_vals, starts=out_starts, time_kind=kind, freq=freq, step=step,
        layout=layout, id_col=id_col if layout == "long" else "series",
        time_col=time_col if time_col is not None else "step", target_cols=targets, notes=notes, gaps=out_gaps,
        frame=covariate_source[0], times=covariate_source[1],
    )
