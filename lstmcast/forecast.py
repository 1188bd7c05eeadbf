"""Turn a trained network and series histories into forecasts in original units."""

from __future__ import annotations

from typing import Callable

import numpy as np

from lstmcast.scaling import apply, invert

_BATCH = 1024  # windows per forward pass: bounds memory at a few tens of MB

Net = Callable[[np.ndarray], np.ndarray]  # scaled windows [B, L] -> scaled forecasts [B, H], with .config


def forecast_scaled(net: Net, history: np.ndarray, steps: int, cov: np.ndarray | None = None) -> np.ndarray:
    """Forecast `steps` ahead from scaled windows [S, >= L] -> [S, steps].

    Beyond the trained horizon the forecasts are fed back as inputs (recursive).
    cov: the covariate channels [S, L + ceil(steps / H) * H, C] from the window's start.
    """
    lookback, horizon = net.config.lookback, net.config.horizon
    out = np.empty((len(history), steps), dtype=np.float32)
    for lo in range(0, len(history), _BATCH):
        window = np.asarray(history[lo:lo + _BATCH, -lookback:], dtype=np.float32)
        parts, made = [], 0
        while made < steps:
            step = net(window) if cov is None else net(window, cov[lo:lo + _BATCH, made:made + lookback + horizon])
            parts.append(step)
            made += horizon
            window = np.concatenate([window, step], axis=1)[:, -lookback:]
        out[lo:lo + _BATCH] = np.concatenate(parts, axis=1)[:, :steps]
    return out


def forecast_series(net: Net, histories: list[np.ndarray], center: np.ndarray,
                    scale: np.ndarray, steps: int, cov: np.ndarray | None = None) -> np.ndarray:
    """Forecast raw histories (each at least `lookback` long) in original units: [S, steps]."""
    lookback = net.config.lookback
    scaled = np.stack([apply(h[-lookback:], c, s) for h, c, s in zip(histories, center, scale)])
    return invert(forecast_scaled(net, scaled, steps, cov).astype(np.float64), center[:, None], scale[:, None])
