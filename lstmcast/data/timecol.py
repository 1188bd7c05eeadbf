"""The time column of a CSV: which column it is, and how its values are read.

A text time column is read with ONE format for the whole column. The format is given
(--date-format), or inferred from all the values: a handful of candidate formats (ISO
8601, day-first and month-first dates with the usual separators and times of day,
month names, quarters, and what pandas guesses from the values) are tried on the whole
column with `pd.to_datetime(format=...)`, and the first that reads every value wins.
Candidates are pruned on the first value and on a sample first, so a column of a
million rows is parsed once or twice, never row by row in Python.

Day-first or month-first: a value with a day above 12 decides. When every value reads
both ways, month-first is assumed (as pandas does), unless only the day-first reading
puts the timestamps on a regular grid (dd/mm/yyyy monthly data: 01/02/1959,
01/03/1959, ... read month-first would be the first twelve days of each January); a
note says which was assumed. --dayfirst rules the month-first readings out.

A numeric column named like time (`TIME_NAMES`) whose values are whole numbers is an
integer time axis: integers always, floats (1871.0, 1872.0, ... as `to_csv` writes a
year) when they are also evenly spaced and increasing.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lstmcast.config import DataConfig
from lstmcast.data.columns import is_numeric, is_numeric_dtype, line
from lstmcast.errors import InputError

TIME_NAMES = {"date", "time", "timestamp", "datetime", "ds", "month", "week", "day",
              "hour", "period", "year", "quarter", "date_time", "dt"}

ISO = "ISO8601"  # pandas' ISO 8601 parser: dates, times, fractions, offsets, 2024-01 months
QUARTER = "quarter"  # 2024Q1, 2024-Q1, 2024 Q1, Q1 2024: read by `_read_quarters`

_OFFSET = r"(?:Z|[+-]\d{2}:?\d{2})$"
_QUARTER_RE = r"^(?:(?P<y1>\d{4})[-\s]?[Qq](?P<q1>[1-4])|[Qq](?P<q2>[1-4])[-\s]?(?P<y2>\d{4}))$"

_CLOCKS = ("", " %H:%M", " %H:%M:%S", " %H:%M:%S.%f", " %I:%M %p", " %I:%M:%S %p")
_NUMERIC_DATES = [f"{a}{s}{b}{s}{y}" for s in "/.-" for y in ("%Y", "%y") for a, b in (("%m", "%d"), ("%d", "%m"))]
_NUMERIC_DATES += ["%Y/%m/%d", "%Y.%m.%d"]
_NAMED_DATES = ["%d %b %Y", "%d-%b-%Y", "%d %B %Y", "%d-%b-%y", "%b %d %Y", "%b %d, %Y", "%B %d, %Y", "%B %d %Y",
                "%b %Y", "%B %Y", "%b-%Y", "%b-%y", "%Y-%b", "%Y %b"]
FORMATS = [d + c for d in _NUMERIC_DATES for c in _CLOCKS] + _NAMED_DATES
SAMPLE_HEAD, SAMPLE_TAIL, SAMPLE_SPREAD = 500, 200, 300


@dataclass
class TimeColumn:
    """The time axis of a file's rows.

    `values` is datetime64 (naive; UTC where offsets were given, or the regular local
    clock, see `_parse_zoned`), int64 (integer time) or the row numbers (kind "row").
    `raw` is the column's text as read, for messages; `fmt` the format it was read with.
    """

    name: str | None
    kind: str  # "datetime" | "integer" | "row"
    values: pd.Series
    raw: pd.Series | None = None
    fmt: str | None = None
    assumed: str = ""  # how an ambiguous day/month column was read, for messages ("" when it was not)

    def where(self, pos: int) -> str:
        """The CSV line of row position `pos`, and its text as read: "line 7 reads '05.01.2024'"."""
        label = line(self.values.index[pos])
        if self.raw is None:
            return f"line {label}"
        return f"line {label} reads {str(self.raw.iloc[pos])!r}"

    @property
    def format_may_be_wrong(self) -> bool:
        """Read from text in a format other than ISO 8601: a misread format could explain a bad timestamp."""
        return self.raw is not None and self.fmt not in (None, ISO)


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
    sample = series.dropna().astype(str).str.strip().head(50)
    if sample.empty or sample.str.fullmatch(r"[-+]?\d+(\.\d+)?").all():
        return False
    if sample.str.fullmatch(_QUARTER_RE).all():
        return True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas 3 deprecates some of what "mixed" reads (2024Q1)
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
    dtypes = dict(zip(df.columns, df.dtypes))
    for col in candidates:
        if cfg.target and col in cfg.target:
            continue
        if col.lower() not in TIME_NAMES and is_numeric_dtype(dtypes[col]):
            continue  # what looks_like_time says of it, from the dtype: df[col] of 100,000 columns costs seconds
        if looks_like_time(df[col], col):
            return col
    return None


# --- reading it -----------------------------------------------------------------------------


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
    text, fmt, assumed = None, None, ""
    if pd.api.types.is_datetime64_any_dtype(raw):
        parsed = raw if cfg.date_format is None else _reread(path, col, raw, cfg.date_format)
    else:
        text = raw.astype(str).str.strip()
        if cfg.date_format is not None:
            parsed, fmt, note = _read_given(path, col, text, cfg.date_format)
        else:
            parsed, fmt, note, assumed = _read_inferred(path, col, text, cfg.dayfirst)
        if note:
            notes.append(f"column {col!r}: {note}")
        if assumed:
            notes.append(f"column {col!r}: {assumed}")
        elif fmt not in (ISO, QUARTER) and cfg.date_format is None:
            notes.append(f"column {col!r}: dates read as {fmt} (inferred)")
    if getattr(parsed.dt, "tz", None) is not None:
        # Regular steps are defined in UTC: a daylight-saving jump is not a gap.
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return TimeColumn(col, "datetime", parsed, raw=text, fmt=fmt, assumed=assumed)


def _unique_steps(times: pd.Series) -> int:
    return int(pd.Series(np.diff(times.dropna().sort_values().to_numpy())).nunique())


def _wall_format(fmt: str) -> str:
    return fmt if fmt == ISO else fmt.replace("%z", "").replace("%Z", "").rstrip()


def _parse_zoned(text: pd.Series, fmt: str = ISO) -> tuple[pd.Series, str]:
    """Parse timestamps in `fmt` (NaT where a value does not fit); with UTC offsets that
    change (daylight saving), pick the regular clock.

    Hourly data is regular in UTC (local time skips and repeats an hour); daily data at
    local midnight is regular in local time (UTC moves by an hour). The clock with fewer
    distinct steps wins, UTC on a tie.
    """
    try:
        return pd.to_datetime(text, errors="coerce", format=fmt), ""
    except ValueError:  # offsets differ from row to row
        pass
    try:
        utc = pd.to_datetime(text, errors="coerce", format=fmt, utc=True).dt.tz_localize(None)
        wall = pd.to_datetime(text.str.replace(_OFFSET, "", regex=True).str.rstrip(), errors="coerce",
                              format=_wall_format(fmt))
    except (ValueError, OverflowError, TypeError):  # unparseable: the caller names the line
        return pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]"), ""
    if wall.notna().all() and _unique_steps(wall) < _unique_steps(utc):
        return wall, "UTC offsets change (daylight saving): used local time, which is regular"
    return utc, "UTC offsets change (daylight saving): converted to UTC"


def _read_quarters(text: pd.Series) -> pd.Series:
    parts = text.str.extract(_QUARTER_RE)
    year = parts["y1"].fillna(parts["y2"])
    quarter = parts["q1"].fillna(parts["q2"])
    ok = year.notna() & quarter.notna()
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    if ok.any():
        y, q = year[ok].astype("int64"), quarter[ok].astype("int64")
        out[ok] = pd.to_datetime(pd.DataFrame({"year": y, "month": 3 * q - 2, "day": 1}))
    return out


def _repeats(text: pd.Series) -> bool:
    """Whether a column's values repeat (1,000 distinct random positions hold under 900 distinct values)."""
    pos = np.random.default_rng(0).choice(len(text), size=1000, replace=False)
    return text.iloc[np.sort(pos)].nunique() < 900


def _read(text: pd.Series, fmt: str) -> tuple[pd.Series, str]:
    """(values in `fmt`, NaT where a value does not fit; a note on changing offsets or "")."""
    if len(text) > 1000 and _repeats(text):  # long layout: every date once per series; each text is parsed once
        codes, uniques = pd.factorize(text)
        if len(uniques) <= len(text) // 2:
            parsed, note = _read(pd.Series(uniques), fmt)
            return pd.Series(parsed.array.take(codes), index=text.index), note
    if fmt == QUARTER:
        return _read_quarters(text), ""
    return _parse_zoned(text, fmt)


def describe(fmt: str) -> str:
    return {ISO: "ISO 8601", QUARTER: "quarters like 2024Q1"}.get(fmt, fmt)


def day_month_order(fmt: str) -> str:
    """"dayfirst", "monthfirst", "yeardaymonth" or "" (no numeric day and month, or year first)."""
    if fmt in (ISO, QUARTER):
        return ""
    d, m = fmt.find("%d"), fmt.find("%m")
    if d < 0 or m < 0:
        return ""
    years = [p for p in (fmt.find("%Y"), fmt.find("%y")) if p >= 0]
    if years and min(years) < min(d, m):
        return "yeardaymonth" if d < m else ""
    return "dayfirst" if d < m else "monthfirst"


def _swap_day_month(fmt: str) -> str:
    return fmt.replace("%d", "\0").replace("%m", "%d").replace("\0", "%m")


def _sample(text: pd.Series) -> pd.Series:
    """The first, last and evenly spread values: the candidate formats are pruned on them."""
    n = len(text)
    if n <= SAMPLE_HEAD + SAMPLE_TAIL + SAMPLE_SPREAD:
        return text
    pos = np.unique(np.concatenate([np.arange(SAMPLE_HEAD), np.arange(n - SAMPLE_TAIL, n),
                                    np.linspace(0, n - 1, SAMPLE_SPREAD).astype("int64")]))
    return text.iloc[pos]


def candidates(text: pd.Series) -> list[str]:
    """Formats to try, in order of preference: ISO 8601, quarters, then the others (pandas'
    guesses from a few values first); year-day-month readings are never tried."""
    from pandas.tseries.api import guess_datetime_format

    sample = _sample(text)
    probes = [sample.iloc[0], sample.iloc[-1]]
    first_field = pd.to_numeric(sample.str.extract(r"^(\d{1,2})\D", expand=False), errors="coerce")
    if (first_field > 12).any():  # a value that shows the day comes first
        probes.append(sample[first_field > 12].iloc[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Parsing dates in %Y-%m-%d format when dayfirst=True": the guesses are tried
        guessed = [guess_datetime_format(str(v), dayfirst=first) for v in probes for first in (False, True)]
    out: list[str] = []
    for fmt in [ISO, QUARTER, *guessed, *FORMATS]:
        if fmt and fmt not in out and day_month_order(fmt) != "yeardaymonth":
            out.append(fmt)
    rank = {"": 0, "monthfirst": 1, "dayfirst": 2}  # month-first before day-first, as pandas reads them
    return sorted(out, key=lambda f: rank[day_month_order(f)])


def _fits(text: pd.Series, fmt: str) -> bool:
    try:
        return bool(_read(text, fmt)[0].notna().all())
    except (ValueError, OverflowError, TypeError):
        return False


def _regularity(times: pd.Series) -> float:
    """How much of its regular grid a set of timestamps fills: distinct times over the span
    in smallest steps (1.0: no gaps)."""
    if getattr(times.dt, "tz", None) is not None:
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    t = np.unique(times.to_numpy().astype("datetime64[ns]").astype("int64"))
    if len(t) < 3:
        return 1.0
    step = np.diff(t).min()
    return len(t) / ((t[-1] - t[0]) / step + 1)


def _read_inferred(path: Path, col: str, text: pd.Series, dayfirst: bool) -> tuple[pd.Series, str, str, str]:
    """(values, format, offsets note, ambiguity note) for the one format that reads every value."""
    first, sample = text.iloc[:1], _sample(text)
    if _fits(first, ISO):  # the usual case: no other candidate is looked at
        parsed, note = _read(text, ISO)
        if parsed.notna().all():
            return parsed, ISO, note, ""
    every = candidates(text)
    allowed = [f for f in every if not (dayfirst and day_month_order(f) == "monthfirst")]
    for fmt in allowed:
        if fmt == ISO or not _fits(first, fmt) or (len(sample) > 1 and not _fits(sample, fmt)):
            continue
        parsed, note = _read(text, fmt)
        if parsed.notna().all():
            return _settle_day_month(col, text, parsed, fmt, note, dayfirst)
    raise _no_single_format(path, col, text, allowed, every, dayfirst)


def _settle_day_month(col: str, text: pd.Series, parsed: pd.Series, fmt: str, note: str,
                      dayfirst: bool) -> tuple[pd.Series, str, str, str]:
    """Month-first dates that also all read day-first: keep month-first unless only day-first is regular."""
    if dayfirst or day_month_order(fmt) != "monthfirst" or parsed.dt.day.max() > 12:
        return parsed, fmt, note, ""
    other_fmt = _swap_day_month(fmt)
    other, other_note = _read(text, other_fmt)
    if not other.notna().all():
        return parsed, fmt, note, ""
    example = str(text.iloc[0])
    if _regularity(other) > 2 * _regularity(parsed):
        assumed = (f"dates like {example!r} read both day-first and month-first: read them day-first "
                   f"({other_fmt}), on which they are regular; pass --date-format {fmt} if the month comes first")
        return other, other_fmt, other_note, assumed
    assumed = (f"dates like {example!r} read both month-first and day-first: read them month-first ({fmt}), "
               f"as pandas does; pass --dayfirst or --date-format {other_fmt} if the day comes first")
    return parsed, fmt, note, assumed


def _no_single_format(path: Path, col: str, text: pd.Series, allowed: list[str], every: list[str],
                      dayfirst: bool) -> InputError:
    """The error for a column no single format reads: it names the first value the format
    of most values does not read, and says what else would read it."""
    sample = _sample(text)
    scores = []
    for fmt in allowed:
        try:
            scores.append(int(_read(sample, fmt)[0].notna().sum()))
        except (ValueError, OverflowError, TypeError):
            scores.append(0)
    best = allowed[int(np.argmax(scores))]
    parsed, _ = _read(text, best)
    ok = parsed.notna().to_numpy()
    bad = int(np.flatnonzero(~ok)[0])
    value, where = str(text.iloc[bad]), f"{path}: column {col!r} line {line(text.index[bad])}"
    one = text.iloc[bad:bad + 1]
    if ok.any() and any(_fits(one, f) for f in allowed if f != best):
        good = int(np.flatnonzero(ok)[0])
        return InputError(
            f"{where}: {value!r} is not in the format of line {line(text.index[good])} ({str(text.iloc[good])!r}, "
            f"{describe(best)}); a time column needs one format: make the values one format, or pass --date-format"
        )
    if dayfirst and any(_fits(one, f) for f in every if day_month_order(f) == "monthfirst"):
        return InputError(f"{where}: {value!r} does not read day-first (--dayfirst); fix the value or drop --dayfirst")
    if not ok.any() and _reads_as_some_date(one):
        return InputError(f"{where}: cannot parse {value!r} as a date/time in a format lstmcast recognises; "
                          "pass its format with --date-format (e.g. %d/%m/%Y) or the right --time-col")
    return InputError(f"{where}: cannot parse {value!r} as a date/time; fix the value or pass the right --time-col")


def _reads_as_some_date(one: pd.Series) -> bool:
    """Whether pandas reads this one value as a date in some format of its own (dateutil)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bool(pd.to_datetime(one, errors="coerce", format="mixed", utc=True).notna().all())
    except (ValueError, OverflowError, TypeError):
        return False


def _check_format(path: Path, fmt: str) -> None:
    try:
        pd.to_datetime(pd.Series(["2000-01-01"]), format=fmt, errors="coerce")
    except ValueError as exc:
        raise InputError(f"{path}: --date-format {fmt!r} is not a date format ({exc}); "
                         "use strftime codes, e.g. %d/%m/%Y or %Y-%m-%d %H:%M") from None


def _read_given(path: Path, col: str, text: pd.Series, fmt: str) -> tuple[pd.Series, str, str]:
    """(values, format, offsets note) read with --date-format."""
    _check_format(path, fmt)
    parsed, note = _read(text, fmt)
    if parsed.isna().any():
        bad = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise InputError(f"{path}: column {col!r} line {line(text.index[bad])}: {str(text.iloc[bad])!r} does not "
                         f"match --date-format {fmt!r}; fix the value or the format")
    return parsed, fmt, note


# How a reader that parses ISO 8601 itself (pyarrow) may have seen the text: --date-format rereads it.
_ISO_RENDERINGS = ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M")


def _reread(path: Path, col: str, values: pd.Series, fmt: str) -> pd.Series:
    """A column the CSV reader already parsed (ISO 8601), read again with --date-format."""
    _check_format(path, fmt)
    for rendering in _ISO_RENDERINGS:
        text = values.dt.strftime(rendering)
        if (pd.to_datetime(text, format=rendering, errors="coerce") == values).all() and _fits(text, fmt):
            return _read(text, fmt)[0]
    first = values.iloc[0]
    raise InputError(f"{path}: column {col!r} holds ISO 8601 timestamps (line {line(values.index[0])}: {first}), "
                     f"which --date-format {fmt!r} does not read; drop --date-format or fix it")
