"""Frequencies: pandas aliases old and new, inference, season and default horizon."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd

from lstmcast.errors import InputError

# pandas 2.2 renamed these; both spellings are accepted and the new one is used.
_OLD_ALIASES = {
    "H": "h", "BH": "bh", "T": "min", "S": "s", "L": "ms", "U": "us", "N": "ns",
    "M": "ME", "BM": "BME", "SM": "SME", "CBM": "CBME",
    "Q": "QE", "BQ": "BQE", "A": "YE", "Y": "YE", "BA": "BYE", "BY": "BYE",
    "AS": "YS", "BAS": "BYS",
}
_ALIAS_RE = re.compile(r"^(\d*)([A-Za-z]+)(-[A-Za-z]+)?$")


def normalize_freq(freq: str) -> str:
    """Return the current pandas spelling of `freq` ('H' -> 'h', 'M' -> 'ME'); raise if unknown."""
    text = freq.strip()
    match = _ALIAS_RE.match(text)
    if match:
        mult, base, anchor = match.group(1), match.group(2), match.group(3) or ""
        base = _OLD_ALIASES.get(base, base)
        text = f"{mult}{base}{anchor}"
    try:
        return pd.tseries.frequencies.to_offset(text).freqstr
    except ValueError:
        raise InputError(
            f"--freq {freq!r} is not a pandas frequency; use e.g. h, D, W, MS, ME, QS, YS, 15min"
        ) from None


def infer_freq(index: pd.DatetimeIndex) -> str | None:
    """Infer the frequency of sorted timestamps, tolerating a few gaps."""
    if len(index) < 3:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas 4 will return an offset; we take its string
            freq = pd.infer_freq(index)
    except (TypeError, ValueError):
        freq = None
    if freq is not None and not isinstance(freq, str):
        freq = freq.freqstr
    if freq:
        return pd.tseries.frequencies.to_offset(freq).freqstr
    # Gaps defeat infer_freq: try the most common spacing.
    diffs = pd.Series(np.diff(index.values))  # timedelta64 in the index's own resolution
    step = pd.Timedelta(diffs.mode().iloc[0])
    days = step / pd.Timedelta(days=1)
    if 27 <= days <= 31:
        return "MS" if (index.day == 1).all() else ("ME" if index.is_month_end.all() else None)
    if 89 <= days <= 92:
        return "QS" if (index.day == 1).all() else ("QE" if index.is_quarter_end.all() else None)
    if 365 <= days <= 366:
        return "YS" if (index.day == 1).all() else ("YE" if index.is_year_end.all() else None)
    seconds = step.total_seconds()
    if seconds <= 0 or seconds != int(seconds):
        return None
    seconds = int(seconds)
    if seconds == 7 * 86400:
        return f"W-{index[0].day_name()[:3].upper()}"
    for unit, size in (("D", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds % size == 0:
            count = seconds // size
            return normalize_freq(f"{count if count > 1 else ''}{unit}")
    return None


def _base_and_mult(freq: str) -> tuple[str, int]:
    offset = pd.tseries.frequencies.to_offset(freq)
    base = re.sub(r"-.*$", "", re.sub(r"^\d+", "", offset.freqstr))
    return base, int(offset.n)


def season_length(freq: str | None) -> int:
    """The dominant seasonal period in steps (1 when there is none)."""
    if freq is None:
        return 1
    base, mult = _base_and_mult(freq)
    per_day = {"h": 24, "min": 1440, "s": 86400}.get(base)
    if per_day is not None:
        return max(1, per_day // mult) if per_day % mult == 0 else 1
    return {"D": 7, "B": 5, "W": 52, "MS": 12, "ME": 12, "BMS": 12, "BME": 12,
            "QS": 4, "QE": 4, "BQS": 4, "BQE": 4}.get(base, 1) if mult == 1 else 1


def default_horizon(freq: str | None) -> int:
    """M4-style horizons per frequency; 12 steps when the time axis is plain integers."""
    if freq is None:
        return 12
    base, mult = _base_and_mult(freq)
    if base in ("h", "min", "s"):
        return max(1, 2 * season_length(freq)) if season_length(freq) > 1 else 48
    return {"D": 14, "B": 10, "W": 13, "MS": 12, "ME": 12, "QS": 8, "QE": 8, "YS": 6, "YE": 6}.get(base, 12)
