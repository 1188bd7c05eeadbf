"""Calendar features of timestamps: where in the day, week, month and year each step falls.

Each feature is a phase in [0, 1) encoded as (sin 2 pi phase, cos 2 pi phase), so that
23:00 is next to 00:00 and December next to January. Which features a series gets
depends on its frequency: those that vary from step to step, and whose cycle is longer
than one step.

    sub-daily (h, min, s): hour of day, day of week
    daily, business daily:  day of week, day of month, month of year
    weekly, monthly:        month of year
    quarterly, yearly, integer or row time: none

They are known for any future step, so `predict` computes them itself.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

KINDS = ("hour", "dayofweek", "dayofmonth", "month")

_SUB_DAILY = {"h", "bh", "min", "s", "ms", "us", "ns"}
_MONTHLY = {"W", "MS", "ME", "BMS", "BME", "SMS", "SME", "CBMS", "CBME"}


def calendar_kinds(freq: str | None) -> tuple[str, ...]:
    """The calendar features for series of frequency `freq` (a pandas alias; None: none)."""
    if not freq:
        return ()
    offset = pd.tseries.frequencies.to_offset(freq)
    base = re.sub(r"-.*$", "", re.sub(r"^\d+", "", offset.freqstr))
    if base in _SUB_DAILY:
        return ("hour", "dayofweek")
    if base in ("D", "B", "C"):
        return ("dayofweek", "dayofmonth", "month") if offset.n == 1 else ("month",)
    if base in _MONTHLY:
        return ("month",)
    return ()


def names(kinds: tuple[str, ...]) -> list[str]:
    """Channel names, two per kind: hour_sin, hour_cos, ..."""
    return [f"{k}_{f}" for k in kinds for f in ("sin", "cos")]


def phases(times: pd.DatetimeIndex, kind: str) -> np.ndarray:
    """Phase in [0, 1) of each timestamp within the cycle of `kind`."""
    if kind == "hour":
        return (times.hour + times.minute / 60 + times.second / 3600).to_numpy(np.float64) / 24
    if kind == "dayofweek":
        return times.day_of_week.to_numpy(np.float64) / 7  # Monday = 0
    if kind == "dayofmonth":
        return (times.day.to_numpy(np.float64) - 1) / times.days_in_month.to_numpy(np.float64)
    if kind == "month":
        return (times.month.to_numpy(np.float64) - 1) / 12
    raise ValueError(f"unknown calendar feature {kind!r}; known: {KINDS}")


def features(times, kinds: tuple[str, ...]) -> np.ndarray:
    """float32 [len(times), 2 * len(kinds)]: sin and cos of each kind's phase."""
    index = pd.DatetimeIndex(times)
    out = np.empty((len(index), 2 * len(kinds)), np.float32)
    for j, kind in enumerate(kinds):
        angle = 2 * np.pi * phases(index, kind)
        out[:, 2 * j] = np.sin(angle)
        out[:, 2 * j + 1] = np.cos(angle)
    return out
