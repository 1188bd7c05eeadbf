"""The time column of a CSV: which column it is, and how its values are read.

A numeric column named like time (`TIME_NAMES`) whose values are whole numbers is an
integer time axis: integers always, floats (1871.0, 1872.0, ... as `to_csv` writes a
year) when they are also evenly spaced and increasing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lstmcast.config import DataConfig
from lstmcast.data.columns import is_numeric, line
from lstmcast.errors import InputError

TIME_NAMES = {"date", "time", "timestamp", "datetime", "ds", "month", "week", "day",
              "hour", "period", "year", "quarter", "date_time", "dt"}

_OFFSET = r"(?:Z|[+-]\d{2}:?\d{2})$"


@dataclass
class TimeColumn:
    """The time axis of a file's rows.

    `values` is datetime64 (naive; UTC where offsets were given, or the regular local
    clock, see `_parse_zoned`), int64 (integer time) or the row numbers (kind "row").
    """

    name: str | None
    kind: str  # "datetime" | "integer" | "row"
    values: pd.Series

    def where(self, pos: int) -> str:
        """The CSV line of row position `pos`: "line 7"."""
        return f"line {line(self.values.index[pos])}"


def require(path: Path, df: pd.DataFrame, col: str, flag: str) -> None:
    if col not in df.columns:
        raise InputError(f"{path}: column {col!r} ({flag}) not found; columns are {list(df.columns)}")


# --- which column ---------------------------------------------------------------------------


def whole_and_evenly_spaced(values: np.ndarray) -> bool:
    """Whole numbers, strictly increasing by one constant step (1871.0, 1872.0, ...)."""
    v = np.asarray(values, dtype="float64")
    if len(v) < 2 or not np.isfinite(v).all() or (np.abs(v) >= 2.0 ** 53).any() or (v != np.round(v)).any():
        return False
    steps = np.diff(v)
    return bool(steps[0] > 0 and (steps == steps[0]).all())


def looks_like_time(series: pd.Series, name: str) -> bool:
    if pd.api.types.is_datetime64_any_dtype(series):
        return True
    if is_numeric(series):
        if name.lower() not in TIME_NAMES:
            return False
        return pd.api.types.is_integer_dtype(series) or whole_and_evenly_spaced(series.to_numpy(dtype="float64",
                                                                                               na_value=np.nan))
    sample = series.dropna().astype(str).head(50)
    if sample.empty or sample.str.fullmatch(r"[-+]?\d+(\.\d+)?").all():
        return False
    parsed = pd.to_datetime(sample, errors="coerce", format="mixed", utc=True)  # utc: offsets may differ
    # A column named like time may hold a bad value; parsing it later names the line.
    needed = 0.8 if name.lower() in TIME_NAMES else 1.0
    return bool(parsed.notna().mean() >= needed)


def detect_time_col(path: Path, df: pd.DataFrame, cfg: DataConfig) -> str | None:
    """The time column: --time-col, else the first column named like time, else by content; None if none."""
    if cfg.time_col is not None:
        require(path, df, cfg.time_col, "--time-col")
        return cfg.time_col
    named = [c for c in df.columns if c.lower() in TIME_NAMES and c != cfg.id_col]
    candidates = named + [c for c in df.columns if c not in named and c != cfg.id_col]
    for col in candidates:
        if cfg.target and col in cfg.target:
            continue
        if looks_like_time(df[col], col):
            return col
    return None


# --- reading it -----------------------------------------------------------------------------


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


def parse_time_column(path: Path, df: pd.DataFrame, col: str | None, cfg: DataConfig, notes: list[str]) -> TimeColumn:
    """Read the time column `col` (None: row order is time) into a `TimeColumn`."""
    if col is None:
        return TimeColumn(None, "row", pd.Series(np.arange(len(df), dtype="int64"), index=df.index))
    raw = df[col]
    if raw.isna().any():
        row = raw.index[raw.isna()][0]
        raise InputError(f"{path}: column {col!r} line {line(row)} has no timestamp; fill it or drop the row")
    if pd.api.types.is_integer_dtype(raw):
        return TimeColumn(col, "integer", raw.astype("int64"))
    if is_numeric(raw):
        values = raw.to_numpy(dtype="float64")
        fraction = (values != np.round(values)) | (np.abs(values) >= 2.0 ** 53)
        if fraction.any():
            row = raw.index[np.flatnonzero(fraction)[0]]
            raise InputError(f"{path}: column {col!r} line {line(row)}: cannot parse {str(raw[row])!r} as a "
                             "date/time; fix the value or pass the right --time-col")
        return TimeColumn(col, "integer", pd.Series(values.astype("int64"), index=raw.index))  # 1871.0 -> 1871
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
                f"{path}: column {col!r} line {line(row)}: cannot parse {text[row]!r} as a date/time; "
                "fix the value or pass the right --time-col"
            )
    if getattr(parsed.dt, "tz", None) is not None:
        # Regular steps are defined in UTC: a daylight-saving jump is not a gap.
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return TimeColumn(col, "datetime", parsed)
