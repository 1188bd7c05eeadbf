"""Sliding windows as index arithmetic over one flat array, never a copy per window.

One series of length n, forecast origin t (the first step forecast)::

    |<------- lookback L ------->|<---- horizon H ---->|
    x[t-L]  ...          x[t-1]  x[t]   ...    x[t+H-1]

    training origins:   L <= t <= n - V - H      (targets end before the validation part)
    validation origins: n - V <= t <= n - H      (V = val_size >= H; inputs may reach back)

All series are concatenated into one flat array; a window is named by the flat
position of its origin, and a batch is gathered as `flat[origin + arange(-L, H)]`.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def window_view(values: np.ndarray, lookback: int, horizon: int) -> np.ndarray:
    """All windows of one series as a read-only view: [n - L - H + 1, L + H], no copy."""
    return sliding_window_view(values, lookback + horizon)


def concat(series: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(flat float32 array of all series, start offset of each series)."""
    lengths = np.array([len(s) for s in series], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    flat = np.concatenate(series).astype(np.float32) if series else np.zeros(0, np.float32)
    return flat, offsets


def concat_scaled(series: list[np.ndarray], center: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`concat` of the scaled series, `(x - center) / scale`, without a scaled float64 copy of
    all of them: one float32 array filled series by series (the same values, bit for bit)."""
    lengths = np.array([len(s) for s in series], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    flat = np.empty(int(lengths.sum()), dtype=np.float32)
    for values, off, c, s in zip(series, offsets, center, scale):
        flat[off:off + len(values)] = (values - c) / s
    return flat, offsets


def origins(offsets: np.ndarray, lengths: np.ndarray, lookback: int, horizon: int,
            val_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat positions of training and validation origins, and the series of each val origin.

    Returns:
        train: int64 [N_train]; val: int64 [N_val]; val_series: int64 [N_val].
    """
    train, val, val_series = [], [], []
    for s, (off, n) in enumerate(zip(offsets, lengths)):
        first, last_train = lookback, n - val_size - horizon
        if last_train >= first:
            train.append(off + np.arange(first, last_train + 1))
        v = np.arange(max(n - val_size, lookback), n - horizon + 1)
        val.append(off + v)
        val_series.append(np.full(len(v), s))
    cat = lambda parts: np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)  # noqa: E731
    return cat(train), cat(val), cat(val_series)


def gather(flat, origin, lookback: int, horizon: int):
    """Windows at `origin` positions from a flat torch tensor: (x [B, L], y [B, H])."""
    import torch

    steps = torch.arange(-lookback, horizon, device=flat.device)
    window = flat[origin.unsqueeze(1) + steps]  # [B, L + H]
    return window[:, :lookback], window[:, lookback:]
