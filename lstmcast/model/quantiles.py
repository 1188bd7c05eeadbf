"""Quantile levels, the pinball loss, and the non-crossing quantile head's arithmetic.

With `train --quantiles 0.1,0.5,0.9` the network emits, beside its point forecast, Q
values per horizon step. They are built so they cannot cross::

    raw    = head(state)                      # [..., H, Q], unconstrained
    offset = cumsum([raw_1, softplus(raw_2), ..., softplus(raw_Q)])   # non-decreasing in Q
    q      = point + offset                   # around the point forecast, in window units

then mapped back by the window's spread (> 0) and the series' scale (> 0), which keep
the order. Levels are trained with the pinball (quantile) loss averaged over levels
(Koenker & Bassett, 1978), whose mean over levels estimates the CRPS.

This module imports neither torch nor pandas: `predict` uses it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from lstmcast.errors import InputError

_PAIR_TOL = 1e-9  # levels a and b are a symmetric pair when a + b == 1 up to this


def parse_levels(value: str | Iterable[float] | None) -> tuple[float, ...]:
    """Quantile levels from '0.1,0.5,0.9' (or a sequence): sorted, unique, each in (0, 1).

    Raises InputError with one line saying what is wrong.
    """
    if value is None:
        return ()
    parts = [p.strip() for p in value.split(",")] if isinstance(value, str) else list(value)
    hint = "give levels strictly between 0 and 1, comma-separated, e.g. --quantiles 0.1,0.5,0.9"
    levels = []
    for part in parts:
        if isinstance(part, str) and part == "":
            continue
        try:
            level = float(part)
        except (TypeError, ValueError):
            raise InputError(f"--quantiles: {part!r} is not a number; {hint}") from None
        if isinstance(part, bool) or not 0 < level < 1:
            raise InputError(f"--quantiles: {part!r} is not strictly between 0 and 1; {hint}")
        levels.append(level)
    if isinstance(value, str) and not levels:
        raise InputError(f"--quantiles: no levels in {value!r}; {hint}")
    return tuple(sorted(set(levels)))


def column_name(level: float) -> str:
    """Forecast column of a level: 0.1 -> 'q0.1', 0.025 -> 'q0.025'."""
    return f"q{level:g}"


def symmetric_pairs(levels: Sequence[float]) -> list[tuple[int, int]]:
    """Index pairs (i, j), i < j, with levels[i] + levels[j] == 1: the central intervals, widest first."""
    pairs = []
    for i, low in enumerate(levels):
        for j in range(len(levels) - 1, i, -1):
            if low < 0.5 and abs(low + levels[j] - 1) < _PAIR_TOL:
                pairs.append((i, j))
    return pairs


def interval_name(low: float, high: float) -> str:
    """'80%' for the pair 0.1 / 0.9."""
    return f"{round(100 * (high - low), 6):g}%"


def pinball(actual: np.ndarray, quantile: np.ndarray, level: float | np.ndarray) -> np.ndarray:
    """Elementwise pinball loss rho_tau(y - q) = (y - q) * (tau - 1[y < q]); works on numpy and torch."""
    u = actual - quantile
    below = (u < 0).astype(u.dtype) if isinstance(u, np.ndarray) else (u < 0).to(u.dtype)
    return u * (level - below)


def monotone_np(raw: np.ndarray) -> np.ndarray:
    """Non-decreasing offsets along the last axis: the first raw value, then softplus increments."""
    steps = np.concatenate([raw[..., :1], np.logaddexp(0.0, raw[..., 1:])], axis=-1)
    return np.cumsum(steps, axis=-1)


def monotone_torch(raw):
    """`monotone_np` for torch tensors (training)."""
    import torch
    from torch.nn import functional

    return torch.cat([raw[..., :1], functional.softplus(raw[..., 1:])], dim=-1).cumsum(dim=-1)


def pinball_loss(quant, target, levels, weight=None):
    """Mean pinball loss over levels (torch): quant [..., H, Q], target [..., H], weight [..., 1] or None.

    The mean over levels of the pinball loss is a discrete estimate of the CRPS (up to a factor 2).
    """
    losses = pinball(target.unsqueeze(-1), quant, levels)  # [..., H, Q]
    if weight is None:
        return losses.mean()
    per = losses.mean(dim=-1)  # [..., H]
    return (per * weight).sum() / (weight.sum() * per.shape[-1])
