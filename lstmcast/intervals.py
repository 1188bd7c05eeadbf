"""Calibrated prediction intervals: conformal corrections from the validation windows, and their scores.

After training, the quantile head is run on every validation window (targets the
optimiser never saw) and each level gets an additive correction in scaled units, per
horizon step when there are enough windows:

* a symmetric pair (tau, 1 - tau), the central interval of coverage 1 - 2 tau, is
  widened or narrowed by the same amount at both ends (conformalised quantile
  regression, Romano, Patterson & Candes 2019): with the conformity scores
  E = max(q_lo - y, y - q_hi), the correction is E's ceil((n + 1)(1 - 2 tau))-th
  smallest of n, which gives at least the nominal coverage on exchangeable data;
* a level without a partner (e.g. the median) is shifted so that a fraction tau of the
  validation values fall below it (one-sided: the tau-quantile of y - q).

A second form, "width" (CQR-r, the relative variant: Kivaranovic, Johnson & Leeb 2020;
Sesia & Candes 2020), divides the scores by the head's own width of the interval, so the
correction is a multiple of that width and grows with the step and the level as the head
does. `predict` applies either (run.json "intervals.form"; runs without it are
additive). `train` writes the additive form: on single real series, with the validation
span below, it came closer to nominal (benchmarks/RESULTS.md).

Per step: errors grow with the step, and the head's learned widths need not be off by
the same amount at step 1 and step 48, so with at least `MIN_PER_STEP` windows each step
gets its own correction (its own calibration set: one window per origin). With fewer,
one correction serves all steps (all scores pooled). The corrected levels are sorted
again, so that they can never cross.

Few series: one validation window of one series is one stretch of it, and its errors
say little about the next (one window gave 30-99% on held-out data). A quantile run
on fewer than `FEW_WINDOWS` series therefore holds out `VAL_FRACTION` of the shortest
series by default (`default_val_size`), and a run calibrated on fewer than
`FEW_WINDOWS` windows says that its intervals are uncertain.

Only numpy: `predict` and `evaluate` use it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lstmcast.errors import RunDirError
from lstmcast.quantiles import interval_name, pinball, symmetric_pairs

METHOD = "split-conformal (CQR)"  # additive corrections (form "additive"; runs without "form" store these)
WIDTH_METHOD = "split-conformal (CQR-r: scores relative to the head's interval width)"
MIN_PER_STEP = 50  # validation windows for a correction per horizon step
FEW_WINDOWS = 10  # fewer validation windows than this: the run says its calibration is noisy
VAL_FRACTION = 0.2  # default --val-size of quantile runs on fewer than FEW_WINDOWS series
_MIN_WIDTH = 1e-6  # scaled units: widths below it count as this (scores stay finite)


@dataclass(frozen=True)
class Calibration:
    """A run's stored correction [Q, H] and how it applies.

    form "additive" (runs before CQR-r): q + correction, in scaled units.
    form "width": q + correction * the head's reference width of that level (`reference_widths`).
    """

    correction: np.ndarray
    form: str = "additive"
    levels: tuple[float, ...] = ()


def default_val_size(lengths: Sequence[int], horizon: int, lookback: int | None) -> tuple[int, str | None]:
    """--val-size for a quantile run that did not set it: (size, note or None).

    One horizon (the default of every run) when the series give at least `FEW_WINDOWS`
    validation windows with it (one per series). Fewer series: `VAL_FRACTION` of the
    shortest series, so that the calibration sees many origins over a long stretch (one
    window of one series is one stretch of it, and says little about the next: see
    benchmarks/RESULTS.md), when that leaves the shortest series room for
    `lookback` (two horizons when not given) besides the validation and one horizon.
    """
    if len(lengths) >= FEW_WINDOWS or not lengths:
        return horizon, None
    size = max(horizon, int(VAL_FRACTION * min(lengths)))
    if size == horizon or min(lengths) - size - horizon < max(lookback or 0, 2 * horizon):
        return horizon, None
    return size, (f"--val-size {size} ({VAL_FRACTION:.0%} of the shortest series): {len(lengths)} series give few "
                  f"validation windows to calibrate the intervals on; set --val-size to choose")


def reference_widths(quant: np.ndarray, levels: Sequence[float]) -> np.ndarray | None:
    """The width each level's correction is measured in, [..., Q]; None when no level has a partner.

    A level of a symmetric pair: that pair's width q_hi - q_lo (the head's own, before any
    correction); a level without a partner (the median): the widest pair's width.
    """
    pairs = symmetric_pairs(levels)
    if not pairs:
        return None
    width = lambda i, j: np.maximum(quant[..., j] - quant[..., i], _MIN_WIDTH)  # noqa: E731
    out = np.repeat(width(*pairs[0])[..., None], len(levels), axis=-1)
    for i, j in pairs:
        out[..., i] = out[..., j] = width(i, j)
    return out


def conformal_quantile(scores: np.ndarray, coverage: float) -> tuple[np.ndarray, bool]:
    """The ceil((n + 1) coverage)-th smallest score along axis 0, and whether n sufficed.

    With too few scores for the level (k > n) the largest is taken: the guarantee needs more data.
    """
    n = len(scores)
    k = math.ceil((n + 1) * coverage - 1e-9)
    return np.sort(scores, axis=0)[min(max(k, 1), n) - 1], k <= n


def corrections(quant: np.ndarray, actual: np.ndarray, levels: Sequence[float],
                form: str = "additive") -> tuple[np.ndarray, dict]:
    """Corrections [Q, H] from the validation forecasts, in the units of `form`.

    Args:
        quant: the head's quantiles on the validation windows, scaled units [N, H, Q].
        actual: the validation targets, scaled units [N, H].
        form: "additive" (CQR, scaled units; what `train` uses) or "width" (CQR-r: scores
            divided by each window's reference width, so the correction is a multiple of the
            width; falls back to "additive" when no level has a partner). Both were measured
            on single real series (benchmarks/RESULTS.md): with the default validation
            span the additive form came closer to nominal, so it stays the default.
    Returns:
        (correction [Q, H], info for run.json: form, per_step, windows, notes).
    """
    n, horizon, count = quant.shape
    per_step = n >= MIN_PER_STEP
    out = np.zeros((count, horizon))
    notes: list[str] = []
    unit = reference_widths(quant, levels) if form == "width" else None
    form = "width" if unit is not None else "additive"
    unit = np.ones_like(quant) if unit is None else unit

    def pool(scores: np.ndarray) -> np.ndarray:  # [N, H] -> what the quantile is taken over
        return scores if per_step else scores.reshape(-1, 1)

    paired = set()
    for i, j in symmetric_pairs(levels):
        coverage = levels[j] - levels[i]
        scores = np.maximum(quant[..., i] - actual, actual - quant[..., j]) / unit[..., j]  # > 0: y outside
        c, enough = conformal_quantile(pool(scores), coverage)
        if not enough:
            notes.append(f"{interval_name(levels[i], levels[j])} interval: {pool(scores).shape[0]} validation "
                         f"values are too few for its calibration guarantee; use a longer --val-size")
        out[i], out[j] = -c, c
        paired.update((i, j))
    for i in (i for i in range(count) if i not in paired):
        out[i] = np.quantile(pool((actual - quant[..., i]) / unit[..., i]), levels[i], axis=0)
    if n < FEW_WINDOWS:
        notes.append(f"intervals calibrated on only {n} validation window{'s' * (n != 1)}: their coverage on "
                     f"new data is uncertain; with one or a few series hold out about {VAL_FRACTION:.0%} of "
                     f"each series (--val-size; at least {FEW_WINDOWS - 1 + horizon} points)")
    return out, {"form": form, "per_step": per_step, "windows": n, "notes": notes}


def calibrate(net: Any, flat: np.ndarray, val_origin: np.ndarray, cov: np.ndarray | None = None) -> tuple[dict, dict]:
    """Calibrate a quantile network on the validation windows of the scaled `flat` array.

    Only the windows at `val_origin` are read: their inputs and targets (never a
    training target beyond them), and their covariate channels `cov` [T, C] when the run has
    any. Returns (run.json "intervals", metrics "intervals").
    """
    cfg = net.config
    levels = list(cfg.quantiles)
    idx = val_origin[:, None] + np.arange(-cfg.lookback, cfg.horizon)
    window = flat[idx]  # [N, L + H]
    channels = None if cov is None else cov[idx]  # [N, L + H, C]
    actual = window[:, cfg.lookback:].astype(np.float64)
    quant = np.concatenate([net.forward_all(window[lo:lo + 1024, :cfg.lookback],
                                            None if channels is None else channels[lo:lo + 1024])[1]
                            for lo in range(0, len(window), 1024)]).astype(np.float64)  # [N, H, Q]
    correction, info = corrections(quant, actual, levels)
    method = WIDTH_METHOD if info["form"] == "width" else METHOD
    raw = {interval_name(levels[i], levels[j]): float(np.mean((quant[..., i] <= actual) & (actual <= quant[..., j])))
           for i, j in symmetric_pairs(levels)}
    stored = {"method": method, "form": info["form"], "levels": levels, "per_step": info["per_step"],
              "windows": info["windows"], "correction": [[float(v) for v in row] for row in correction]}
    summary = {"method": method, "form": info["form"], "windows": info["windows"], "per_step": info["per_step"],
               "raw_validation_coverage": raw, "notes": info["notes"]}
    return stored, summary


def stored_correction(meta: dict[str, Any], config: Any, path: Any = "run.json") -> Calibration | None:
    """The calibration a run stores, checked against its model config; None without quantiles.

    Runs written before CQR-r store no "form": their corrections are additive, as then.
    """
    if not config.quantiles:
        return None
    stored = meta.get("intervals")
    try:
        levels = [float(v) for v in stored["levels"]]
        correction = np.array(stored["correction"], dtype=np.float64)
        form = stored.get("form", "additive")
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise RunDirError(f"{path}: missing or corrupt interval calibration ({type(exc).__name__}); "
                          "retrain the run") from None
    if levels != list(config.quantiles) or correction.shape != (len(levels), config.horizon) \
            or not np.isfinite(correction).all():
        raise RunDirError(f"{path}: interval calibration does not match the model's quantiles "
                          f"{list(config.quantiles)} and horizon {config.horizon}; retrain the run")
    if form not in ("additive", "width") or (form == "width" and not symmetric_pairs(levels)):
        raise RunDirError(f"{path}: unknown interval calibration form {form!r}; retrain the run")
    return Calibration(correction, form, tuple(levels))


def apply(quant: np.ndarray, calibration: Calibration | np.ndarray | None) -> np.ndarray:
    """Calibrated quantiles [S, H', Q] (H' <= H, scaled units), sorted so that levels never cross.

    `calibration`: a run's `Calibration`, or a bare additive correction [Q, H] (None: none).
    """
    if isinstance(calibration, np.ndarray):
        calibration = Calibration(calibration)
    if calibration is not None:
        shift = calibration.correction.T[None, : quant.shape[1]]
        if calibration.form == "width":
            shift = shift * reference_widths(quant, calibration.levels)
        quant = quant + shift
    return np.sort(quant, axis=-1)


def scores(actual: np.ndarray, quant: np.ndarray, levels: Sequence[float], scale: float | None) -> dict[str, Any]:
    """Interval scores of one series: actual [T], quantiles [T, Q] (NaN rows, beyond the trained horizon, skipped).

    Returns pinball (mean over points and levels, original units), scaled_pinball (by the
    MASE scale, None without one) and per central interval its coverage and mean width.
    """
    known = np.isfinite(quant).all(axis=1)
    y, q = actual[known], quant[known]
    if len(y) == 0:
        return {"pinball": None, "scaled_pinball": None, "points": 0, "intervals": {}}
    loss = float(np.mean(pinball(y[:, None], q, np.asarray(levels))))
    intervals = {interval_name(levels[i], levels[j]): {
        "lower": levels[i], "upper": levels[j],
        "coverage": float(np.mean((q[:, i] <= y) & (y <= q[:, j]))), "width": float(np.mean(q[:, j] - q[:, i])),
    } for i, j in symmetric_pairs(levels)}
    return {"pinball": loss, "scaled_pinball": loss / scale if scale else None, "points": int(len(y)),
            "intervals": intervals}


def overall(per_series: list[dict[str, Any]], levels: Sequence[float]) -> dict[str, Any]:
    """Means over series of `scores` (coverage, width, pinball), as `metrics.overall` averages."""
    def mean(values: list) -> float | None:
        values = [v for v in values if v is not None]
        return float(np.mean(values)) if values else None

    scored = [s for s in per_series if s["points"]]
    intervals = {interval_name(levels[i], levels[j]): {
        "lower": levels[i], "upper": levels[j],
        "coverage": mean([s["intervals"][interval_name(levels[i], levels[j])]["coverage"] for s in scored]),
        "width": mean([s["intervals"][interval_name(levels[i], levels[j])]["width"] for s in scored]),
    } for i, j in symmetric_pairs(levels)}
    return {"levels": list(levels), "pinball": mean([s["pinball"] for s in scored]),
            "scaled_pinball": mean([s["scaled_pinball"] for s in scored]),
            "points_per_series": max((s["points"] for s in scored), default=0), "intervals": intervals}
