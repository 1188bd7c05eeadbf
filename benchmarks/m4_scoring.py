"""M4 competition scoring and statistical benchmarks, in pure numpy.

This module re-implements, from the M4 reference code (``Benchmarks and
Evaluation.R`` in ``Mcompetitions/M4-methods``), what is needed to score a
forecast the way M4 did:

* :func:`smape` and :func:`mase` give per-point errors; the dataset-level
  score is the mean over every series and horizon step (all M4 series of one
  frequency share the same horizon, so this is also the mean of per-series
  means).
* :func:`naive2_forecast` is the M4 "Naive2" benchmark: a naive forecast of the
  seasonally adjusted series, re-seasonalised with classical multiplicative
  decomposition when the 90% autocorrelation test finds seasonality.
* :func:`owa` is the Overall Weighted Average relative to Naive2, computed
  from the dataset-level averages, as M4 does.

The seasonality test follows the R benchmarks (all autocorrelations squared),
not ``ML_benchmarks.py``, whose ``acf(1)`` is left unsquared by mistake; the
published Naive2 scores come from the R code.

Nothing here depends on torch or pandas, so it can be imported by tests.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "Scores",
    "acf",
    "seasonality_test",
    "seasonal_indices",
    "naive_forecast",
    "seasonal_naive_forecast",
    "naive2_forecast",
    "forecast_all",
    "smape",
    "mase_scale",
    "mase",
    "owa",
    "evaluate",
]

FloatArray = NDArray[np.float64]

#: One-sided 90% critical value used by the M4 seasonality test.
_TCRIT = 1.645


# --------------------------------------------------------------------------
# Seasonality test and classical decomposition
# --------------------------------------------------------------------------


def acf(x: ArrayLike, max_lag: int) -> FloatArray:
    """Sample autocorrelations at lags ``1..max_lag`` (as R's ``acf``).

    Uses the overall mean and the full-length denominator
    ``sum((x - mean)**2)``, i.e. the biased estimator R and the M4 code use.

    Args:
        x: one series, 1-D.
        max_lag: largest lag to return; must be smaller than ``len(x)``.

    Returns:
        Array of shape ``(max_lag,)``; element ``k - 1`` is the lag-``k``
        autocorrelation. NaN where the series is constant.
    """
    xs = np.asarray(x, dtype=np.float64)
    n = xs.size
    if not 0 < max_lag < n:
        raise ValueError(f"max_lag must be in [1, {n - 1}], got {max_lag}")
    d = xs - xs.mean()
    denom = float(d @ d)
    num = np.array([d[k:] @ d[:-k] for k in range(1, max_lag + 1)])
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / denom


def seasonality_test(x: ArrayLike, m: int) -> bool:
    """M4 90% autocorrelation seasonality test.

    The series is seasonal when
    ``|acf(m)| > 1.645 * sqrt((1 + 2 * sum_{k=1}^{m-1} acf(k)**2) / n)``.
    As in the reference code, a series shorter than ``3 * m`` (or with
    ``m <= 1``, or constant) is never seasonal.

    Args:
        x: one series, 1-D.
        m: seasonal period.
    """
    xs = np.asarray(x, dtype=np.float64)
    n = xs.size
    if m <= 1 or n < 3 * m:
        return False
    r = acf(xs, m)
    limit = _TCRIT * np.sqrt((1.0 + 2.0 * np.sum(r[: m - 1] ** 2)) / n)
    return bool(np.abs(r[m - 1]) > limit)  # NaN compares False, as in R


def _centred_moving_average(x: FloatArray, m: int) -> FloatArray:
    """Centred moving average of order ``m`` (``2 x m`` MA when ``m`` is even).

    Matches R's ``filter(x, w, sides = 2)`` as called by ``decompose``: the
    ends where the window does not fit are NaN.
    """
    if m % 2 == 0:
        w = np.r_[0.5, np.ones(m - 1), 0.5] / m
    else:
        w = np.ones(m) / m
    half = w.size // 2
    out = np.full(x.size, np.nan)
    if x.size >= w.size:
        out[half : x.size - half] = np.convolve(x, w, mode="valid")
    return out


def seasonal_indices(x: ArrayLike, m: int) -> FloatArray:
    """Multiplicative seasonal indices of classical decomposition.

    Reproduces R's ``decompose(x, type = "multiplicative")`` for a series
    that starts at the first position of its cycle: the ratio of the series
    to its centred moving average is averaged per cycle position (ignoring the
    NaN ends), and the ``m`` indices are normalised to mean 1.

    Args:
        x: one series, 1-D, with at least ``2 * m`` points.
        m: seasonal period (> 1).

    Returns:
        Array of shape ``(m,)``; element ``j`` is the index of every time
        step ``t`` (0-based) with ``t % m == j``.
    """
    xs = np.asarray(x, dtype=np.float64)
    if m <= 1 or xs.size < 2 * m:
        raise ValueError("decomposition needs m > 1 and at least two full periods")
    ratio = xs / _centred_moving_average(xs, m)
    padded = np.full(-(-xs.size // m) * m, np.nan)
    padded[: xs.size] = ratio
    figure = np.nanmean(padded.reshape(-1, m), axis=0)
    return figure / figure.mean()


# --------------------------------------------------------------------------
# Benchmark forecasts
# --------------------------------------------------------------------------


def naive_forecast(x: ArrayLike, h: int) -> FloatArray:
    """Naive (random walk) forecast: the last value repeated ``h`` times."""
    xs = np.asarray(x, dtype=np.float64)
    return np.full(h, xs[-1])


def seasonal_naive_forecast(x: ArrayLike, h: int, m: int) -> FloatArray:
    """Seasonal naive forecast: the last full season repeated.

    With ``m <= 1`` this is the naive forecast, as in the M4 R code.
    """
    xs = np.asarray(x, dtype=np.float64)
    if m <= 1:
        return naive_forecast(xs, h)
    return np.resize(xs[-m:], h)


def naive2_forecast(x: ArrayLike, h: int, m: int) -> FloatArray:
    """M4 Naive2: naive forecast of the seasonally adjusted series.

    If :func:`seasonality_test` finds the series seasonal with period ``m``,
    the series is divided by its classical multiplicative seasonal indices,
    the last adjusted value is carried forward and multiplied by the indices
    of the forecast steps. Otherwise this is the plain naive forecast.
    """
    xs = np.asarray(x, dtype=np.float64)
    n = xs.size
    if m <= 1 or not seasonality_test(xs, m):
        return naive_forecast(xs, h)
    si = seasonal_indices(xs, m)
    level = xs[-1] / si[(n - 1) % m]
    return level * si[(n + np.arange(h)) % m]


def forecast_all(
    insamples: Sequence[ArrayLike], h: int, m: int, method: str
) -> FloatArray:
    """Forecast every series with one benchmark.

    Args:
        insamples: the training series (lengths may differ).
        h: forecast horizon.
        m: seasonal period.
        method: ``"naive"``, ``"snaive"`` or ``"naive2"``.

    Returns:
        Array of shape ``(len(insamples), h)``.
    """
    if method == "naive":
        return np.stack([naive_forecast(x, h) for x in insamples])
    if method == "snaive":
        return np.stack([seasonal_naive_forecast(x, h, m) for x in insamples])
    if method == "naive2":
        return np.stack([naive2_forecast(x, h, m) for x in insamples])
    raise ValueError(f"unknown benchmark method: {method!r}")


# --------------------------------------------------------------------------
# Error measures
# --------------------------------------------------------------------------


def smape(actual: ArrayLike, forecast: ArrayLike) -> FloatArray:
    """Pointwise sMAPE in percent: ``200 * |y - f| / (|y| + |f|)``.

    Inputs broadcast; take ``.mean()`` of the result for the M4 score.
    """
    y = np.asarray(actual, dtype=np.float64)
    f = np.asarray(forecast, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 200.0 * np.abs(y - f) / (np.abs(y) + np.abs(f))


def mase_scale(insample: ArrayLike, m: int) -> float:
    """In-sample MAE of the seasonal naive forecast with period ``m``.

    This is the MASE denominator: ``mean(|x[t] - x[t - m]|)`` over
    ``t = m .. n-1``. ``m`` is at least 1.
    """
    xs = np.asarray(insample, dtype=np.float64)
    lag = max(int(m), 1)
    if xs.size <= lag:
        raise ValueError(f"series of length {xs.size} too short for MASE with m={lag}")
    return float(np.mean(np.abs(xs[lag:] - xs[:-lag])))


def mase(
    insamples: Sequence[ArrayLike],
    actual: ArrayLike,
    forecast: ArrayLike,
    m: int,
) -> FloatArray:
    """Pointwise scaled absolute errors, one row per series.

    Args:
        insamples: training series, one per row of ``actual``.
        actual: array ``(n_series, h)`` of test values.
        forecast: array ``(n_series, h)`` of forecasts.
        m: seasonal period of the scaling naive forecast.

    Returns:
        Array ``(n_series, h)``; its mean is the M4 MASE (the mean of the
        per-series MASE, since all rows have the same length).
    """
    y = np.asarray(actual, dtype=np.float64)
    f = np.asarray(forecast, dtype=np.float64)
    if y.shape != f.shape or y.ndim != 2 or y.shape[0] != len(insamples):
        raise ValueError(
            f"shape mismatch: actual {y.shape}, forecast {f.shape}, "
            f"{len(insamples)} insamples"
        )
    scale = np.array([mase_scale(x, m) for x in insamples])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.abs(y - f) / scale[:, None]


def owa(
    smape_value: float, mase_value: float, smape_naive2: float, mase_naive2: float
) -> float:
    """Overall Weighted Average relative to Naive2, from dataset-level means."""
    return 0.5 * (smape_value / smape_naive2 + mase_value / mase_naive2)


@dataclass(frozen=True)
class Scores:
    """Dataset-level M4 scores of one method."""

    smape: float
    mase: float
    owa: float
    smape_naive2: float
    mase_naive2: float

    def as_dict(self) -> dict[str, float]:
        """The scores as a plain dict (for JSON)."""
        return asdict(self)


def evaluate(
    insamples: Sequence[ArrayLike],
    actual: ArrayLike,
    forecast: ArrayLike,
    m: int,
    naive2: ArrayLike | None = None,
) -> Scores:
    """Score a forecast against the test set the way M4 does.

    sMAPE is averaged over every series and step, MASE likewise (scaled per
    series by the in-sample seasonal naive MAE with period ``m``), and OWA is
    formed from those two averages and those of Naive2.

    Args:
        insamples: training series, one per row of ``actual``.
        actual: array ``(n_series, h)`` of test values.
        forecast: array ``(n_series, h)`` to score.
        m: seasonal period (used by both MASE and Naive2).
        naive2: Naive2 forecasts, computed here when not given.
    """
    y = np.asarray(actual, dtype=np.float64)
    f = np.asarray(forecast, dtype=np.float64)
    if naive2 is None:
        n2 = forecast_all(insamples, y.shape[1], m, "naive2")
    else:
        n2 = np.asarray(naive2, dtype=np.float64)
    s, s2 = float(smape(y, f).mean()), float(smape(y, n2).mean())
    q, q2 = float(mase(insamples, y, f, m).mean()), float(mase(insamples, y, n2, m).mean())
    return Scores(smape=s, mase=q, owa=owa(s, q, s2, q2), smape_naive2=s2, mase_naive2=q2)
