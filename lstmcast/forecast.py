"""Turn a trained network and series histories into forecasts in original units."""

from __future__ import annotations

import numpy as np
import torch

from lstmcast.scaling import apply, invert

_BATCH = 4096  # series forecast per forward pass


def forecast_scaled(model: torch.nn.Module, history: np.ndarray, steps: int) -> np.ndarray:
    """Forecast `steps` ahead from scaled windows [S, L] -> [S, steps].

    Beyond the trained horizon the forecasts are fed back as inputs (recursive).
    """
    lookback, horizon = model.config.lookback, model.config.horizon
    out = np.empty((len(history), steps), dtype=np.float32)
    model.eval()
    with torch.inference_mode():
        for lo in range(0, len(history), _BATCH):
            window = torch.from_numpy(np.ascontiguousarray(history[lo:lo + _BATCH, -lookback:], dtype=np.float32))
            parts, made = [], 0
            while made < steps:
                step = model(window)  # [B, H]
                parts.append(step)
                made += horizon
                window = torch.cat([window, step], dim=1)[:, -lookback:]
            out[lo:lo + _BATCH] = torch.cat(parts, dim=1)[:, :steps].numpy()
    return out


def forecast_series(model: torch.nn.Module, histories: list[np.ndarray], center: np.ndarray,
                    scale: np.ndarray, steps: int) -> np.ndarray:
    """Forecast raw histories (each at least `lookback` long) in original units: [S, steps]."""
    lookback = model.config.lookback
    scaled = np.stack([apply(h[-lookback:], c, s) for h, c, s in zip(histories, center, scale)])
    return invert(forecast_scaled(model, scaled, steps).astype(np.float64), center[:, None], scale[:, None])
