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

What `train` writes for fewer than `FEW_WINDOWS` series is form "blend" (`form_for`; more
series keep the CQR corrections above, form "additive"): for each pair the mean of two
split-conformal intervals, both computed from the same validation windows,

* the CQR interval above, which keeps the head's own widths (wider where the head
  expects more spread), and
* a constant-width interval around the middle of the head's interval, (q_lo + q_hi) / 2
  +- the ceil((n + 1)(1 - 2 tau))-th smallest of |y - middle| (split conformal on
  absolute residuals), which ignores them.

Their mean is the head's interval shrunk by a quarter of its width at each end, widened
by the mean of the two corrections: it trusts the head's widths half-way. On single real
series the head's widths carried real information on some (births: CQR closer to 80%)
and misled on others (sunspots: 73-76% with CQR, 79.8-81.7% with the absolute residuals);
the mean was within 5 points of 80% in every run on births, sunspots, temperatures and
ETTh1 (benchmarks/RESULTS.md, "Interval calibration: which form"). Each of the two holds
at least the nominal share on exchangeable data; their mean holds every value both hold.
Runs written before "blend" store form "additive" or no form: CQR corrections.

Per step: errors grow with the step, and the head's learned widths need not be off by
the same amount at step 1 and step 48, so with at least `MIN_PER_STEP` windows each step
gets its own correction (its own calibration set: one window per origin). With fewer,
one correction serves all steps (all scores pooled). The corrected levels are sorted
again, so that they can never cross.

Few series: one validation window of one series is one stretch of it, and its errors
say little about the next (one window gave 30-99% on held-out data). A quantile run
on fewer than `FEW_WINDOWS` series therefore holds out `VAL_FRACTION` of the shortest
series, and at least `FEW_WINDOWS` windows of it, by default (`default_val_size`), and a
run calibrated on fewer than `FEW_WINDOWS` windows says that its intervals are uncertain.

Only numpy: `predict` and `evaluate` use it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lstmcast.errors import RunDirError
from lstmcast.model.quantiles import interval_name, pinball, symmetric_pairs

METHOD = "split-conformal (mean of the CQR and absolute-residual intervals)"  # form "blend": few series
ADDITIVE_METHOD = "split-conformal (CQR)"  # form "additive": many series, and runs without "form"
FORMS = ("blend", "additive")
MIN_PER_STEP = 50  # validation windows for a correction per horizon step
FEW_WINDOWS = 10  # fewer validation windows than this: the run says its calibration is noisy
VAL_FRACTION = 0.2  # default --val-size of quantile runs on fewer than FEW_WINDOWS series


@dataclass(frozen=True)
class Calibration:
    """A run's stored correction [Q, H] (scaled units) and how it applies.

    form "additive": q + correction.
    form "blend": q + correction + `shrinks` (each end of a pair a quarter of its width inwards).
    """

    correction: np.ndarray
    form: str = "additive"
    levels: tuple[float, ...] = ()


def default_val_size(lengths: Sequence[int], horizon: int, lookback: int | None) -> tuple[int, str | None]:
    """--val-size for a quantile run that did not set it: (size, why; None for one horizon).

    One horizon (the default of every run) when the series give at least `FEW_WINDOWS`
    validation windows with it (one per series). Fewer series: `VAL_FRACTION` of the
    shortest series, and at least `FEW_WINDOWS` windows of it (horizon + 9 points), so that
    the calibration sees many origins over a long stretch (one window of one series is one
    stretch of it, and says little about the next: see benchmarks/RESULTS.md). The windows
    rule applies when it leaves the shortest series `FEW_WINDOWS` training windows (with
    `lookback`, or two horizons when not given); the 20% when it leaves one.
    """
    if len(lengths) >= FEW_WINDOWS or not lengths:
        return horizon, None
    shortest = min(lengths)
    fraction = int(VAL_FRACTION * shortest)
    training = lambda size: shortest - size - horizon - max(lookback or 0, 2 * horizon) + 1  # noqa: E731
    size = max(fraction, horizon + FEW_WINDOWS - 1)
    if training(size) < FEW_WINDOWS:
        size = fraction
    if size <= horizon or training(size) < 1:
        return horizon, None
    return size, (f"{VAL_FRACTION:.0%} of the shortest series" if size == fraction else
                  f"{FEW_WINDOWS} validation windows of the shortest series")


def shrinks(quant: np.ndarray, levels: Sequence[float]) -> np.ndarray:
    """[..., Q]: a quarter of each pair's own width inwards (+ at its lower end, - at its upper), 0 elsewhere.

    With the mean of the two corrections added, q + shrink + correction is the mean of the CQR
    interval (q_lo - c1, q_hi + c1) and the constant-width one (middle -+ c2).
    """
    out = np.zeros_like(quant)
    for i, j in symmetric_pairs(levels):
        quarter = (quant[..., j] - quant[..., i]) / 4
        out[..., i], out[..., j] = quarter, -quarter
    return out


def conformal_quantile(scores: np.ndarray, coverage: float) -> tuple[np.ndarray, bool]:
    """The ceil((n + 1) coverage)-th smallest score along axis 0, and whether n sufficed.

    With too few scores for the level (k > n) the largest is taken: the guarantee needs more data.
    """
    n = len(scores)
    k = math.ceil((n + 1) * coverage - 1e-9)
    return np.sort(scores, axis=0)[min(max(k, 1), n) - 1], k <= n


def corrections(quant: np.ndarray, actual: np.ndarray, levels: Sequence[float],
                form: str = "blend") -> tuple[np.ndarray, dict]:
    """Corrections [Q, H] from the validation forecasts, in scaled units.

    Args:
        quant: the head's quantiles on the validation windows, scaled units [N, H, Q].
        actual: the validation targets, scaled units [N, H].
        form: "blend" (what `train` writes: a pair's correction is the mean of the CQR one and
            the absolute-residual one around the pair's middle, applied after `shrinks`) or
            "additive" (plain CQR). Without a symmetric pair both are the same: "additive".
    Returns:
        (correction [Q, H], info for run.json: form, per_step, windows, notes).
    """
    if form not in FORMS:
        raise ValueError(f"unknown calibration form {form!r}")
    n, horizon, count = quant.shape
    per_step = n >= MIN_PER_STEP
    out = np.zeros((count, horizon))
    notes: list[str] = []
    form = form if symmetric_pairs(levels) else "additive"

    def pool(scores: np.ndarray) -> np.ndarray:  # [N, H] -> what the quantile is taken over
        return scores if per_step else scores.reshape(-1, 1)

    paired = set()
    for i, j in symmetric_pairs(levels):
        coverage = levels[j] - levels[i]
        scores = np.maximum(quant[..., i] - actual, actual - quant[..., j])  # > 0: y outside the head's interval
        c, enough = conformal_quantile(pool(scores), coverage)
        if form == "blend":  # the constant-width interval around the pair's middle
            middle = (quant[..., i] + quant[..., j]) / 2
            c = (c + conformal_quantile(pool(np.abs(actual - middle)), coverage)[0]) / 2
        if not enough:
            notes.append(f"{interval_name(levels[i], levels[j])} interval: {pool(scores).shape[0]} validation "
                         f"values are too few for its calibration guarantee; use a longer --val-size")
        out[i], out[j] = -c, c
        paired.update((i, j))
    for i in (i for i in range(count) if i not in paired):
        out[i] = np.quantile(pool(actual - quant[..., i]), levels[i], axis=0)
    if n < FEW_WINDOWS:
        notes.append(f"intervals calibrated on only {n} validation window{'s' * (n != 1)}: their coverage on "
                     f"new data is uncertain; with one or a few series hold out about {VAL_FRACTION:.0%} of "
                     f"each series (--val-size; at least {FEW_WINDOWS - 1 + horizon} points)")
    return out, {"form": form, "per_step": per_step, "windows": n, "notes": notes}


def form_for(series: int) -> str:
    """The calibration form `train` writes for a run on `series` series.

    "blend" below `FEW_WINDOWS` series: the head's widths vary only with the stretch of one
    series, and trusting them fully misled on some real series (sunspots). From
    `FEW_WINDOWS` series on, "additive": the head's widths also tell series apart (a noisy
    series from a smooth one), which a constant width would throw away (M4 Weekly: interval
    score 1.248 additive, 1.371 blend; benchmarks/RESULTS.md).
    """
    return "blend" if series < FEW_WINDOWS else "additive"


def calibrate(net: Any, flat: np.ndarray, val_origin: np.ndarray, cov: np.ndarray | None = None, *,
              series: int) -> tuple[dict, dict]:
    """Calibrate a quantile network on the validation windows of the scaled `flat` array.

    Only the windows at `val_origin` are read: their inputs and targets (never a
    training target beyond them), and their covariate channels `cov` [T, C] when the run has
    any. `series`: how many series the run has (`form_for`). Returns (run.json "intervals",
    metrics "intervals").
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
    correction, info = corrections(quant, actual, levels, form_for(series))
    method = METHOD if info["form"] == "blend" else ADDITIVE_METHOD
    calibrated = apply(quant, Calibration(correction, info["form"], tuple(levels)))

    def coverage(q: np.ndarray) -> dict[str, float]:
        return {interval_name(levels[i], levels[j]): float(np.mean((q[..., i] <= actual) & (actual <= q[..., j])))
                for i, j in symmetric_pairs(levels)}

    stored = {"method": method, "form": info["form"], "levels": levels, "per_step": info["per_step"],
              "windows": info["windows"], "correction": [[float(v) for v in row] for row in correction]}
    summary = {"method": method, "form": info["form"], "windows": info["windows"], "per_step": info["per_step"],
               "raw_validation_coverage": coverage(quant), "validation_coverage": coverage(calibrated),
               "notes": info["notes"]}
    return stored, summary


def stored_correction(stored: Any, config: Any, path: Any = "run.json") -> Calibration | None:
    """The calibration a run stores, checked against its model config; None without quantiles.

    Runs written before "form" existed store none: their corrections are additive, as then.
    """
    if not config.quantiles:
        return None
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
    if form not in FORMS:
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
        if calibration.form == "blend":
            shift = shift + shrinks(quant, calibration.levels)
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
