"""Turn a trained network and series histories into forecasts in original units."""

from __future__ import annotations

from typing import Callable

import numpy as np

from lstmcast.data.scaling import apply, invert, log_floor
from lstmcast.data.windows import pad_front
from lstmcast.errors import RunDirError

_BATCH = 1024  # windows per forward pass: bounds memory at a few tens of MB

Net = Callable[[np.ndarray], np.ndarray]  # scaled windows [B, L] -> scaled forecasts [B, H], with .config


def forecast_scaled(net: Net, history: np.ndarray, steps: int, cov: np.ndarray | None = None) -> np.ndarray:
    """Forecast `steps` ahead from scaled windows [S, >= L] -> [S, steps].

    Beyond the trained horizon the forecasts are fed back as inputs (recursive).
    cov: the covariate channels [S, L + ceil(steps / H) * H, C] from the window's start.
    """
    return forecast_scaled_all(net, history, steps, cov)[0]


def forecast_scaled_all(net: Net, history: np.ndarray, steps: int, cov: np.ndarray | None = None
                        ) -> tuple[np.ndarray, np.ndarray | None]:
    """`forecast_scaled`, and the quantile head's values for the first min(steps, H) steps.

    Returns point [S, steps] and quantiles [S, min(steps, H), Q] (None without a quantile
    head). Fed-back steps get no quantiles: their uncertainty is not what the head learned.
    """
    lookback, horizon = net.config.lookback, net.config.horizon
    levels = len(getattr(net.config, "quantiles", ()))
    out = np.empty((len(history), steps), dtype=np.float32)
    quant = np.empty((len(history), min(steps, horizon), levels), dtype=np.float32) if levels else None
    for lo in range(0, len(history), _BATCH):
        window = np.asarray(history[lo:lo + _BATCH, -lookback:], dtype=np.float32)
        parts, made = [], 0
        while made < steps:
            c = None if cov is None else cov[lo:lo + _BATCH, made:made + lookback + horizon]
            step, q = net.forward_all(window, c) if levels and made == 0 else (net(window, c), None)  # [B, H]
            if q is not None:
                quant[lo:lo + _BATCH] = q[:, :steps]
            parts.append(step)
            made += horizon
            window = np.concatenate([window, step], axis=1)[:, -lookback:]
        out[lo:lo + _BATCH] = np.concatenate(parts, axis=1)[:, :steps]
    return out, quant


def forecast_series(net: Net, histories: list[np.ndarray], center: np.ndarray,
                    scale: np.ndarray, steps: int, cov: np.ndarray | None = None,
                    log: np.ndarray | None = None) -> np.ndarray:
    """Forecast raw histories (at least one value each; padded to `lookback`) in original units: [S, steps]."""
    return forecast_series_all(net, histories, center, scale, steps, cov=cov, log=log)[0]


def _floored(window: np.ndarray) -> np.ndarray:
    """A log series' window with values of 0 or less read as `scaling.log_floor` (`histories.check_logs`
    notes them; a window without a positive value stays as it is, and its forecast is not finite)."""
    floor = log_floor(window)
    return window if np.all(window > 0) or np.isnan(floor) else np.maximum(window, floor)


def forecast_series_all(net: Net, histories: list[np.ndarray], center: np.ndarray, scale: np.ndarray,
                        steps: int, correction: np.ndarray | None = None, cov: np.ndarray | None = None,
                        floor: np.ndarray | None = None, log: np.ndarray | None = None
                        ) -> tuple[np.ndarray, np.ndarray | None]:
    """Point forecasts [S, steps] and calibrated quantiles [S, steps, Q] in original units.

    Quantiles beyond the trained horizon are NaN; `correction` [Q, H] is the run's
    calibration in scaled units (`intervals.stored_correction`). Quantiles are None
    without a quantile head. `floor` [S] clips each series' forecasts and quantiles from
    below (0 for counts; -inf leaves a series as it is). `log` [S]: the series modelled in logs
    (`scaling.apply`); their quantiles are calibrated in logs and so are relative.
    """
    from lstmcast.model import intervals

    lookback = net.config.lookback
    log = np.zeros(len(histories), dtype=bool) if log is None else log
    # A history shorter than the lookback is padded at the front with its first value, as training padded it.
    tails = [pad_front(h, lookback - len(h))[-lookback:] for h in histories]
    scaled = np.stack([apply(_floored(h) if m else h, c, s, m) for h, c, s, m in zip(tails, center, scale, log)])
    # Overflow is not warned about: the caller checks the result (`require_finite`) and names the series.
    with np.errstate(over="ignore", invalid="ignore"):
        point, quant = forecast_scaled_all(net, scaled, steps, cov)
        point = invert(point.astype(np.float64), center[:, None], scale[:, None], log[:, None])
        if floor is not None:  # a value that is not finite stays so: require_finite names it, clipping would hide it
            point = np.where(np.isfinite(point), np.maximum(point, floor[:, None]), point)
        if quant is None:
            return point, None
        full = np.full((len(scaled), steps, quant.shape[-1]), np.nan)
        calibrated = intervals.apply(quant.astype(np.float64), correction)
        full[:, : quant.shape[1]] = invert(calibrated, center[:, None, None], scale[:, None, None], log[:, None, None])
        if floor is not None:
            part = full[:, : quant.shape[1]]
            full[:, : quant.shape[1]] = np.where(np.isfinite(part), np.maximum(part, floor[:, None, None]), part)
    return point, full


def require_finite(run_dir: object, ids: list[str], point: np.ndarray, quant: np.ndarray | None = None,
                   horizon: int | None = None) -> None:
    """RunDirError naming the run and the first series whose forecast is not a finite number.

    The run's weights and scalers are checked when it is loaded, but finite weights can still
    overflow (a weight of 1e30 times a window); such a forecast is an error, never a CSV of NaN.
    `quant` is checked over its first `horizon` steps (after them it is empty by design).
    """
    bad = ~np.isfinite(point).all(axis=1)
    if quant is not None:
        bad |= ~np.isfinite(quant[:, :horizon]).all(axis=(1, 2))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise RunDirError(f"{run_dir}: the forecast of series {ids[k]!r} is not a finite number (the run's weights "
                          f"overflow on its history); retrain the run")
