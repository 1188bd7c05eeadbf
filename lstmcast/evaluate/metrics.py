"""Forecast accuracy metrics and the naive baselines they are compared with.

Per-series metrics are computed on all forecast points of a series; the overall
value is the mean over series (as M4 averages sMAPE and MASE). A metric that is
undefined for a series (MASE of a constant history, MAPE with only zero actuals)
is None and left out of the mean, never NaN.
"""

from __future__ import annotations

import numpy as np

METRICS = ("mae", "rmse", "mape", "smape", "mase")


def mase_scale(history: np.ndarray, season: int) -> float | None:
    """In-sample MAE of the seasonal naive forecast (naive when history is too short)."""
    m = season if len(history) > season else 1
    if len(history) <= m:
        return None
    scale = float(np.mean(np.abs(history[m:] - history[:-m])))
    return scale if scale > 0 else None


def series_metrics(actual: np.ndarray, forecast: np.ndarray, scale: float | None) -> dict[str, float | None]:
    """All metrics for one series; `scale` from `mase_scale` of its history."""
    err = actual - forecast
    nonzero = actual != 0
    denom = np.abs(actual) + np.abs(forecast)
    ratio = np.divide(2.0 * np.abs(err), denom, out=np.zeros_like(err), where=denom > 0)
    mae = float(np.mean(np.abs(err)))
    return {
        "mae": mae,
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mape": float(100 * np.mean(np.abs(err[nonzero] / actual[nonzero]))) if nonzero.any() else None,
        "smape": float(100 * np.mean(ratio)),
        "mase": mae / scale if scale else None,
    }


def overall(per_series: list[dict[str, float | None]]) -> dict[str, float | None]:
    """Mean of each metric over the series where it is defined."""
    out: dict[str, float | None] = {}
    for name in METRICS:
        values = [m[name] for m in per_series if m[name] is not None]
        out[name] = float(np.mean(values)) if values else None
    return out


def naive(history: np.ndarray, steps: int) -> np.ndarray:
    """The last value, repeated."""
    return np.full(steps, history[-1], dtype=np.float64)


def seasonal_naive(history: np.ndarray, steps: int, season: int) -> np.ndarray:
    """The last full season, repeated (naive when the history is shorter than a season)."""
    if season <= 1 or len(history) < season:
        return naive(history, steps)
    last = history[-season:]
    return np.resize(last, steps).astype(np.float64)
