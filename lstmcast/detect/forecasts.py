"""Causal forecasts of every point: what the run expected each value to be, from the values before it.

Forecast origins lie `stride` steps apart on each series, on the grid lookback,
lookback + stride, ...: an origin `o` reads the `lookback` values before position `o`
and forecasts positions o .. o + span - 1 (span: the trained horizon, or `stride` when
that is longer, reached recursively). A point at position t is thus forecast by every
origin o of the grid with o <= t < o + span, from values before o <= t only, k = t - o + 1
steps ahead: horizon / stride forecasts, from one to `horizon` steps ahead. Its expected
value is their mean.

`ahead` keeps only the forecasts made at most that many steps ahead: with stride 1 and
ahead 1 each point's expected value is its one-step forecast. Which is better depends on
the data (benchmarks/RESULTS.md): on NAB's streams the mean of forecasts 1 to H steps
ahead beat one forecast per point and one-step forecasts (a value that leaves the path
the series was on misses forecasts made several steps earlier by more than the noise
does), while on files of many short series (M3, M4, ETTh1) one-step forecasts found
more planted anomalies at the same false-flag rate: a forecast 18 months ahead is
further from the value than a 3-sigma spike is. All windows of all series go through
the numpy network in batches: n / stride windows per series.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lstmcast.forecast.recursive import Net, forecast_scaled

STATES = 1 << 22  # float32 states one batch of windows holds per layer ([batch, lookback, hidden]): 16 MB


def span(net: Net, stride: int) -> int:
    """How many steps each origin forecasts."""
    return max(net.config.horizon, stride)


def first_origin(position: int, lookback: int, stride: int, steps: int) -> int:
    """The first origin of the grid whose forecasts reach `position` (no earlier than the lookback)."""
    low = max(lookback, position - steps + 1)
    return lookback + -(-(low - lookback) // stride) * stride


def forecast_sums(net: Net, scaled: Sequence[np.ndarray], firsts: Sequence[int], ends: Sequence[int],
                  stride: int, width: int, earliest: int = 0, chunk: int | None = None, ahead: int | None = None,
                  only: Sequence[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sum and count of the forecasts of each position from the grid's origins in [first origin, end).

    Args:
        scaled: each series' values scaled as trained; NaN-free up to its end.
        firsts: per series, the first position that needs its forecasts; origins start at
            the first one of the grid reaching it.
        ends: per series, origins before this position only (the series' length, or where
            the next refit takes over).
        earliest: no origin before this position (where this network, a refit, takes over).
        width: columns of the result (the longest series).
        ahead: keep the forecasts made at most this many steps ahead (None: all `span`); at
            least `stride`, so every position keeps one.
        only: per series, a boolean [len] mask: forecast from the grid's origins where it is true only.

    Returns (sums, counts), [S, width] float64 and int: sums of scaled forecasts.
    """
    lookback = net.config.lookback
    steps = span(net, stride)
    kept = steps if ahead is None else min(steps, ahead)
    if kept < stride:
        raise ValueError(f"ahead {ahead} is less than stride {stride}: some positions would have no forecast")
    hidden = net.config.hidden * (2 if net.config.bidirectional else 1)
    chunk = chunk or max(256, STATES // (lookback * hidden))
    sums = np.zeros((len(scaled), width))
    counts = np.zeros((len(scaled), width), dtype=np.int32)
    low = first_origin(max(earliest, lookback), lookback, stride, 1)  # the grid's first origin >= earliest
    grid = [np.arange(max(first_origin(int(f), lookback, stride, kept), low), int(e), stride, dtype=np.int64)
            for f, e in zip(firsts, ends)]
    if only is not None:
        grid = [g[np.asarray(m, dtype=bool)[g]] for g, m in zip(grid, only)]
    if not sum(len(g) for g in grid):
        return sums, counts
    lengths = np.array([len(v) for v in scaled], dtype=np.int64)
    flat = np.concatenate([np.asarray(v, dtype=np.float32) for v in scaled])
    offset = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    series = np.concatenate([np.full(len(g), i, dtype=np.int64) for i, g in enumerate(grid)])
    where = np.concatenate(grid)
    window = np.arange(lookback)
    for lo in range(0, len(series), chunk):
        s, o = series[lo:lo + chunk], where[lo:lo + chunk]
        made = flat[(offset[s] + o - lookback)[:, None] + window]  # [B, lookback]
        made = net(made) if steps == net.config.horizon else forecast_scaled(net, made, steps)  # [B, steps]
        for k in range(kept):  # one origin per (series, position) at each k: no index repeats
            pos = o + k
            keep = pos < lengths[s]
            sums[s[keep], pos[keep]] += made[keep, k]
            counts[s[keep], pos[keep]] += 1
    return sums, counts
