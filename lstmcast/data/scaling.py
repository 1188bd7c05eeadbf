"""Per-series scaling: fitted with scikit-learn on each series' training part, applied
with plain arithmetic so that prediction needs no scikit-learn import.

Every scaler is reduced to `scaled = (f(x) - center) / scale`, where f is the identity, or
the natural log for a series modelled in logs (`log_mask`: `--transform`). In logs the
network's window normalisation divides each window by its level, as ES-RNN's input does,
and an absolute error is a relative one, as sMAPE counts it (benchmarks/RESULTS.md, "Log
transform").
"""

from __future__ import annotations

import numpy as np

from lstmcast.config import ScalerKind, Transform
from lstmcast.errors import InputError

_CHUNK = 512  # series fitted per scikit-learn call, to bound the padded matrix


def fit_scalers(series: list[np.ndarray], kind: ScalerKind) -> tuple[np.ndarray, np.ndarray]:
    """(center, scale) per series, float64 [S]; scale is never zero."""
    count = len(series)
    if kind is ScalerKind.none:
        return np.zeros(count), np.ones(count)
    if kind is ScalerKind.mean:  # divide by the mean absolute level: the loss weighs relative errors
        scale = np.array([np.abs(s).mean(dtype=np.float64) if len(s) else 1.0 for s in series])
        return np.zeros(count), np.where(~np.isfinite(scale) | (scale <= 0), 1.0, scale)
    from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

    make = {ScalerKind.standard: StandardScaler, ScalerKind.minmax: MinMaxScaler,
            ScalerKind.robust: RobustScaler}[kind]
    center, scale = np.zeros(count), np.ones(count)
    for lo in range(0, count, _CHUNK):
        part = series[lo:lo + _CHUNK]
        # One fit for many series: columns are series, NaN-padded (scikit-learn ignores NaN in fit).
        matrix = np.full((max(len(s) for s in part), len(part)), np.nan)
        for j, s in enumerate(part):
            matrix[: len(s), j] = s
        scaler = make().fit(matrix)
        if kind is ScalerKind.standard:
            c, s = scaler.mean_, scaler.scale_
        elif kind is ScalerKind.robust:
            c, s = scaler.center_, scaler.scale_
        else:  # minmax: x * scale_ + min_ maps to [0, 1]
            c, s = -scaler.min_ / scaler.scale_, 1.0 / scaler.scale_
        center[lo:lo + len(part)], scale[lo:lo + len(part)] = c, s
    # scikit-learn already gives constant series scale 1; guard against anything non-finite.
    scale = np.where(~np.isfinite(scale) | (scale <= 0), 1.0, scale)
    return center, scale


def log_mask(series: list[np.ndarray], ids: list[str], transform: Transform, where: object) -> np.ndarray:
    """Per series, whether it is modelled in logs: bool [S].

    auto: the series whose values are all positive (and finite where present); log: every
    series, and an InputError naming `where` and the first series with a value <= 0.
    """
    if transform is Transform.none:
        return np.zeros(len(series), dtype=bool)
    positive = np.array([bool(len(s)) and bool(np.all(s[~np.isnan(s)] > 0)) for s in series], dtype=bool)
    if transform is Transform.log and not positive.all():
        k = int(np.flatnonzero(~positive)[0])
        raise InputError(f"{where}: series {ids[k]!r} has a value of 0 or less, which has "
                         "no logarithm; use --transform auto (logs only for positive series) or --transform none")
    return positive


def log_floor(window: np.ndarray) -> float:
    """What a series modelled in logs reads a value of 0 or less in `window` as: half the window's
    smallest positive value (NaN when it has none)."""
    positive = window[window > 0]
    return 0.5 * float(positive.min()) if len(positive) else float("nan")


def forward(values: np.ndarray, log: bool | np.ndarray = False) -> np.ndarray:
    """f(values): the log where `log` (broadcast against values), else the values."""
    if not np.any(log):
        return values
    with np.errstate(divide="ignore", invalid="ignore"):  # a value <= 0 of a log series: -inf/NaN, checked by callers
        return np.where(log, np.log(np.where(log, values, 1.0)), values)


def fit_scalers_of(series: list[np.ndarray], kind: ScalerKind, log: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`fit_scalers` of the series modelled as values; a series modelled in logs is not scaled further
    (center 0, scale 1), so that the loss counts its relative errors unweighted: on M4 at 400 steps,
    logs scaled by their standard deviation scored OWA 0.530 (Hourly) and 0.846 (Weekly), unscaled
    0.535 and 0.812 (benchmarks/RESULTS.md, "Log transform")."""
    center, scale = np.zeros(len(series)), np.ones(len(series))
    plain = np.flatnonzero(~log)
    if len(plain):
        center[plain], scale[plain] = fit_scalers([series[k] for k in plain], kind)
    return center, scale


MASE_WEIGHT_RANGE = 10.0  # a series' MASE ratio is kept within this factor of the median one


def mase_weights(train_parts: list[np.ndarray], log: np.ndarray, scale: np.ndarray,
                 naive: list[float | None], mix: float) -> np.ndarray | None:
    """Per-series loss weights, float32 [S] with mean 1, or None where they would all be 1.

    A series' loss counts its errors in modelled units: relative errors for a series in logs,
    errors over its scale for the others. MASE counts them over the in-sample seasonal naive
    error instead. The ratio r of the two units (the series' mean level in logs, or its scale,
    over `naive`) turns the one into the other; the weight is (1 - mix) + mix * r / mean(r).
    A series without a naive error (constant or too short) gets the median r, and r is kept
    within MASE_WEIGHT_RANGE of the median, so that a flat series does not take the loss over.
    """
    if mix <= 0 or len(train_parts) < 2:
        return None
    unit = np.array([float(np.mean(np.abs(v))) if lg else float(s) for v, lg, s in zip(train_parts, log, scale)])
    ratio = np.array([u / n if n else np.nan for u, n in zip(unit, naive)], dtype=np.float64)
    ratio[~np.isfinite(ratio) | (ratio <= 0)] = np.nan
    if np.isnan(ratio).all():
        return None
    median = float(np.nanmedian(ratio))
    ratio = np.clip(np.nan_to_num(ratio, nan=median), median / MASE_WEIGHT_RANGE, median * MASE_WEIGHT_RANGE)
    return ((1.0 - mix) + mix * ratio / ratio.mean()).astype(np.float32)


def apply(values: np.ndarray, center: float | np.ndarray, scale: float | np.ndarray,
          log: bool | np.ndarray = False) -> np.ndarray:
    return (forward(values, log) - center) / scale


def invert(values: np.ndarray, center: float | np.ndarray, scale: float | np.ndarray,
           log: bool | np.ndarray = False) -> np.ndarray:
    out = values * scale + center
    if not np.any(log):
        return out
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is inf: require_finite names the series
        # exp(-inf) would be a finite 0 and hide an overflow of the network: what is not finite stays so (NaN).
        return np.where(log, np.where(np.isfinite(out), np.exp(np.where(log, out, 0.0)), np.nan), out)
