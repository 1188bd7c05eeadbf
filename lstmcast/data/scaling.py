"""Per-series scaling: fitted with scikit-learn on each series' training part, applied
with plain arithmetic so that prediction needs no scikit-learn import.

Every scaler is reduced to `scaled = (x - center) / scale`.
"""

from __future__ import annotations

import numpy as np

from lstmcast.config import ScalerKind

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


def apply(values: np.ndarray, center: float, scale: float) -> np.ndarray:
    return (values - center) / scale


def invert(values: np.ndarray, center: float | np.ndarray, scale: float | np.ndarray) -> np.ndarray:
    return values * scale + center
