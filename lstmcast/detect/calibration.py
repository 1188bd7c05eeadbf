"""Anomaly scores: each point's residual against recent past residuals (split conformal).

The nonconformity of a point is a = |value - expected| (in the run's scaled units).
Positions are cut into blocks of `refresh` (block b: [b refresh, (b + 1) refresh)); a
point of block b is set against the finite a of the same series over the `window`
positions before the block, n of them, so only values before the point reach its score:

    p = (#{past a >= a} + 1) / (n + 1)                        a within the past values
    p = exp(-(a - max) / beta) / (n + 1)                      a beyond all of them
    score = 1 - p

p is the conformal p-value: on residuals whose distribution does not change, a point
whose value follows the same distribution gets p <= 1 - level with probability at most
1 - level, so `score > level` flags at most a share 1 - level of normal points. Beyond
the largest past residual an exponential tail fitted to the top tenth of them
(beta: their mean excess over its 0.9 quantile; peaks over threshold) keeps scores
apart: a spike twice as large scores higher, and no window is too short for a level.

`lower`/`upper` are expected -/+ the half-width q(level): score > level exactly when the
value lies outside [lower, upper]. Fewer than `min_residuals` past residuals: no score.

A stuck sensor repeats its last value while the forecasts, fed that flat line, follow
it: its residuals stay small. So `detect --flatline` scores a second statistic the same
way, the length of the run of equal values a point ends (`repeats`), against the same
series' past runs, and joins the two p-values by weighted Bonferroni (`joined`): p =
min(1, p_residual / (1 - share), p_run / share), still a valid p-value. The interval is
then the residual's at level 1 - (1 - share)(1 - level), so a value outside it still
scores above the level; a point inside it scores above the level only when its run of
repeats is much longer than the past makes likely.

Residuals as `detect` scores them (`residual_scores`): raw residuals are not exchangeable,
and short series have too few of them. Measured with benchmarks/detect_calibration.py
(nothing planted, level 0.999): M3 yearly flagged 12.8% of the points after the training
span, M3 monthly 3.6% inside it, M4 Weekly 1.5%, against 0.1% promised. Two causes:
levels and seasonal swings grow, so recent residuals are ranked against smaller old
ones; and a p-value below 1 / (n + 1) from 20-50 past residuals rests on a tail fitted
to their largest two or three. So each residual is divided by its local spread, the mean
of the series' last `SPREAD` finite residuals before it (at least `MIN_SPREAD` of them):

    z_t = a_t / mean(a_{t-SPREAD} .. a_{t-1})

which is unit-free and follows the series' scale as it changes, and a point's z is
ranked against the z of every series of the batch over the window before its block
(`pooled`): one global network, residuals of one kind, thousands where one short series
has twenty. The half-width is then the pooled z quantile times the point's spread.
A file of one series has nothing to pool, and there raw ranks won: every spread tried
scored worse on NAB (57.4 raw; 34-46 with spreads of 16 to all past residuals), so
`detect` ranks its raw residuals against its own past ones (`pooled=False`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TAIL = 0.9  # the exponential tail is fitted to the past residuals above this quantile
MIN_RESIDUALS = 20  # fewer past residuals in the window: no score (NaN) and no flag
MIN_BETA = 1e-6  # least tail scale, in scaled units: residuals of a perfectly flat past
SPREAD = 16  # a residual is divided by the mean of this many residuals before it (flagged at 0.99 after the training
# span: M3 monthly 0.92% with 16, 1.47% with 32, 1.55% with 64; M3 yearly 0.29%, 1.61%, 1.76%)
MIN_SPREAD = 8  # fewer finite residuals among those: no local spread, no score
MIN_SPREAD_VALUE = 1e-9  # least spread, in scaled units: a series forecast perfectly so far
POOL_MAX = 200_000  # pooled past values a block is ranked against, at most (an even stride through them beyond)


@dataclass
class Scores:
    """Per point [S, T]: score in [0, 1] (NaN: not scored) and the half-width of the level's interval."""

    score: np.ndarray
    half_width: np.ndarray


@dataclass
class _Past:
    """Past values [S, W] set up for ranking: sorted (finite first), counted, with the tail fitted beyond the top."""

    ordered: np.ndarray
    n: np.ndarray
    top: np.ndarray
    beta: np.ndarray


def _fit(past: np.ndarray, tail_floor: float = 0.0) -> _Past:
    """The past values [S, W] (NaN: none) sorted, with the exponential tail beyond the largest (see the module)."""
    ordered = np.sort(np.where(np.isfinite(past), past, np.inf), axis=1)  # the finite values first
    n = np.isfinite(past).sum(axis=1)
    rows = np.arange(len(past))
    top = ordered[rows, np.maximum(n - 1, 0)]
    at_u = np.floor(TAIL * np.maximum(n - 1, 0)).astype(np.int64)
    u = ordered[rows, at_u]
    cols = np.arange(past.shape[1])[None, :]
    upper = (cols >= at_u[:, None]) & (cols < n[:, None])
    with np.errstate(invalid="ignore"):
        beta = np.where(upper, ordered - u[:, None], 0.0).sum(axis=1) / np.maximum(upper.sum(axis=1), 1)
    beta = np.maximum(np.maximum(beta, MIN_BETA), tail_floor * np.where(np.isfinite(top), top, 0.0))
    return _Past(ordered, n, top, beta)


def _ranked(fit: _Past, cur: np.ndarray, min_residuals: int) -> np.ndarray:
    """Scores [S, B] of `cur` against the fitted past values of the same rows (NaN: too few of them, or no value)."""
    n = fit.n
    at_least = np.zeros(cur.shape, dtype=np.int64)  # past values >= each point
    for i in np.flatnonzero(n >= min_residuals):
        at_least[i] = n[i] - np.searchsorted(fit.ordered[i, :n[i]], cur[i], side="left")
    with np.errstate(over="ignore", invalid="ignore"):
        tail = np.exp(-(cur - fit.top[:, None]) / fit.beta[:, None])
    p = np.where(at_least > 0, at_least + 1.0, tail) / (n[:, None] + 1.0)
    ok = (n >= min_residuals)[:, None] & np.isfinite(cur)
    return np.where(ok, 1.0 - p, np.nan)


def _half_width(fit: _Past, level: float, min_residuals: int) -> np.ndarray:
    """Per row [S]: the half-width of the level's interval; values above it, and only they, score above the level."""
    n = fit.n
    c = (1.0 - level) * (n + 1.0) - 1.0  # flagged: fewer than c past values at or above the point
    m = np.ceil(c).astype(np.int64) - 1  # the most such values a flagged point may have
    inside = np.clip(n - m - 1, 0, np.maximum(n - 1, 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        beyond = fit.top + fit.beta * np.maximum(0.0, -np.log((1.0 - level) * (n + 1.0)))
    half = np.where(m >= 1, fit.ordered[np.arange(len(n)), inside], beyond)
    return np.where(n >= min_residuals, half, np.nan)


def _block(past: np.ndarray, cur: np.ndarray, level: float, min_residuals: int, tail_floor: float = 0.0
           ) -> tuple[np.ndarray, np.ndarray]:
    """Scores [S, B] of `cur` against the finite values of `past` [S, W], and the half-widths [S]."""
    fit = _fit(past, tail_floor)
    return _ranked(fit, cur, min_residuals), _half_width(fit, level, min_residuals)


def score(nonconformity: np.ndarray, firsts: np.ndarray, level: float, window: int, refresh: int,
          min_residuals: int = MIN_RESIDUALS, tail_floor: float = 0.0, pooled: bool = False) -> Scores:
    """Score the points of [S, T] `nonconformity` (NaN: none) from position firsts[i] on.

    Blocks are counted from position 0, so a point's score does not depend on where
    scoring started (`--last`), only on the values before its block. `tail_floor`:
    the tail's scale is at least this share of the largest past value. `pooled`: each
    block is ranked against the past values of all series together, not each its own.
    """
    n_series, width = nonconformity.shape
    out = np.full((n_series, width), np.nan)
    half = np.full((n_series, width), np.nan)
    if not n_series or not width:
        return Scores(out, half)
    firsts = np.asarray(firsts, dtype=np.int64)
    start = (int(firsts.min()) // refresh) * refresh
    wanted = np.arange(width)[None, :] >= firsts[:, None]
    for lo in range(max(start, refresh), width, refresh):
        hi = min(lo + refresh, width)
        if not wanted[:, lo:hi].any():
            continue
        past, cur = nonconformity[:, max(0, lo - window):lo], nonconformity[:, lo:hi]
        if pooled:
            past = _pool(past)
            s, h = _block(past, cur.reshape(1, -1), level, min_residuals, tail_floor)
            s, h = s.reshape(cur.shape), np.repeat(h, len(cur))
        else:
            s, h = _block(past, cur, level, min_residuals, tail_floor)
        keep = wanted[:, lo:hi]
        out[:, lo:hi] = np.where(keep, s, np.nan)
        half[:, lo:hi] = np.where(keep & np.isfinite(s), h[:, None], np.nan)
    return Scores(np.clip(out, 0.0, 1.0), half)


def _pool(past: np.ndarray) -> np.ndarray:
    """The finite values of [S, W] as one row [1, n]: an even stride through them when more than POOL_MAX."""
    flat = past[np.isfinite(past)]
    if not len(flat):
        return np.full((1, 1), np.nan)
    step = -(-len(flat) // POOL_MAX) if len(flat) > POOL_MAX else 1
    return flat[::step][None, :]


def trailing(values: np.ndarray, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per point t of [S, T]: (count, sum, sum of squares) of the finite values at t + start .. t + stop - 1."""
    finite = np.isfinite(values)
    zero = np.zeros((len(values), 1))
    v = np.where(finite, values, 0.0)
    cums = [np.concatenate([zero, np.cumsum(x, axis=1)], axis=1) for x in (finite.astype(np.float64), v, v * v)]
    t = np.arange(values.shape[1])
    lo, hi = np.clip(t + start, 0, len(t)), np.clip(t + stop, 0, len(t))
    return tuple(c[:, hi] - c[:, lo] for c in cums)  # type: ignore[return-value]


def local_spread(nonconformity: np.ndarray, span: int = SPREAD, least: int = MIN_SPREAD) -> np.ndarray:
    """Per point of [S, T]: the mean of the finite values among the `span` before it (NaN: fewer than `least`)."""
    n, total, _ = trailing(nonconformity, -span, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = total / n
    return np.where(n >= least, np.maximum(spread, MIN_SPREAD_VALUE), np.nan)


def residual_scores(nonconformity: np.ndarray, firsts: np.ndarray, level: float, window: int, refresh: int,
                    span: int = SPREAD, pooled: bool = True) -> Scores:
    """Scores of absolute residuals [S, T]: divided by their local spread, ranked against all series' past ones.

    `span`: the spread is the mean of the finite residuals among the `span` before each point.
    The half-width is in the residuals' units (the pooled quantile times each point's spread).
    `pooled` False: each series' raw residuals against its own past ones (`score`), as for a
    file of one series, where NAB measured every division by a spread worse (57.4 to 34-46).
    """
    if not pooled:
        return score(nonconformity, firsts, level, window, refresh)
    spread = local_spread(nonconformity, span)
    got = score(nonconformity / spread, firsts, level, window, refresh, pooled=True)
    return Scores(got.score, got.half_width * spread)


def repeats(values: np.ndarray) -> np.ndarray:
    """Per point of [S, T] values: how many equal values the run it ends holds (1: it differs from the one before)."""
    n_series, width = values.shape
    pos = np.arange(width)[None, :].repeat(n_series, axis=0)
    change = np.ones((n_series, width), dtype=bool)
    change[:, 1:] = values[:, 1:] != values[:, :-1]
    start = np.maximum.accumulate(np.where(change, pos, 0), axis=1)
    return (pos - start + 1).astype(np.float64)


def residual_level(level: float, share: float = 0.5) -> float:
    """The level of the residual's interval when two p-values are joined, `share` of 1 - level going to the run's."""
    return 1.0 - (1.0 - level) * (1.0 - share)


def joined(residual: Scores, run: Scores, share: float = 0.5) -> Scores:
    """Weighted Bonferroni: score = 1 - min(1, p_residual / (1 - share), p_run / share); the residual's interval.

    Still a valid p-value: the flags of both parts together are at most a share 1 - level of
    normal points. A small `share` keeps nearly all of the level for the residual.
    """
    p_run = 1.0 - np.nan_to_num(run.score, nan=0.0)
    p = np.minimum(1.0, np.minimum((1.0 - residual.score) / (1.0 - share), p_run / share))
    return Scores(np.where(np.isfinite(residual.score), 1.0 - p, np.nan), residual.half_width)


# The anomaly likelihood (Ahmad, Lavin, Purdy, Agha 2017; NAB's numenta detector): not how large a point's
# residual is, but how far the mean of the SHORT residuals ending at it lies above the mean of such means
# over the `window` points before it, in their standard deviations (a Gaussian fitted to them):
#
#     m_t = mean(a_{t-SHORT+1} .. a_t)       mu_t, sd_t = mean, sd of m_{t-window} .. m_{t-1}
#     likelihood_t = 1 - Q((m_t - mu_t) / sd_t)
#
# then, as HTM's, `filtered`: a likelihood at or above RED right after one at or above RED drops to YELLOW,
# so a lasting rise is flagged where it starts, not at every point of it; and as NAB's numenta detector, a
# value beyond the range of every value before it (by RANGE_TOLERANCE of the range) scores 1 (`beyond_range`).
# NAB standard (benchmarks/RESULTS.md, "Anomaly likelihood"): 63.7 at threshold 0.9999945 (ranks: 57.4); the
# likelihood of the residuals alone 31.8, filtered 56.8, of the rank scores 11.4. The range check flags every new
# high of a trending series: M3 other at 0.9999945, 11.9% of the points in the training span (0.5% without it).
SHORT = 10  # residuals averaged, ending at the point (NAB's numenta detector: 10)
MIN_SD = 1e-3  # least standard deviation of the means, as a share of their mean: a flat past scores any blip 1
RED, YELLOW = 0.99999, 0.999  # HTM's filter: a red point right after a red one is shown yellow
RANGE_TOLERANCE = 0.05  # a value beyond the range of all before it by this share of the range scores 1 (NAB's numenta)


def likelihood(raw: np.ndarray, firsts: np.ndarray, window: int, short: int = SHORT,
               least: int = MIN_RESIDUALS) -> np.ndarray:
    """The anomaly likelihood [S, T] in [0, 1] of nonnegative raw scores [S, T] (NaN: none), from firsts[i] on.

    A point's likelihood reads the raw scores up to it and none after. NaN where fewer than
    half of its `short` raw scores or fewer than `least` past means (within `window`) are finite.
    Only a rise counts: means below the past's score below 0.5. Unfiltered (see `filtered`).
    """
    means = _means(raw, short)
    k, s1, s2 = trailing(means, -window, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = s1 / k
        sd = np.maximum(np.sqrt(np.maximum(s2 / k - mu * mu, 0.0)), np.maximum(MIN_SD * np.abs(mu), MIN_BETA))
        z = (means - mu) / sd
    out = np.full(raw.shape, np.nan)
    ok = np.isfinite(z) & (k >= least) & (np.arange(raw.shape[1])[None, :] >= np.asarray(firsts)[:, None])
    out[ok] = 1.0 - 0.5 * _erfc(z[ok] / np.sqrt(2.0)).astype(np.float64)  # 1 - Q(z)
    return out


def filtered(likelihoods: np.ndarray, red: float = RED, yellow: float = YELLOW) -> np.ndarray:
    """HTM's filter of [S, T] likelihoods: one at or above `red` right after one at or above `red` becomes `yellow`."""
    out = likelihoods.copy()
    repeat = np.zeros(likelihoods.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        repeat[:, 1:] = (likelihoods[:, 1:] >= red) & (likelihoods[:, :-1] >= red)
    out[repeat] = yellow
    return out


def _extremes_before(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per point of [S, T] values (NaN: none): the largest and the smallest finite value before it (-inf, inf: none)."""
    finite = np.isfinite(values)
    high = np.maximum.accumulate(np.where(finite, values, -np.inf), axis=1)
    low = np.minimum.accumulate(np.where(finite, values, np.inf), axis=1)
    return (np.concatenate([np.full((len(values), 1), -np.inf), high[:, :-1]], axis=1),
            np.concatenate([np.full((len(values), 1), np.inf), low[:, :-1]], axis=1))


def beyond_range(values: np.ndarray, tolerance: float = RANGE_TOLERANCE) -> np.ndarray:
    """Per point of [S, T] values (NaN: none): above the largest or below the smallest value before it by more
    than `tolerance` times their difference (NAB's numenta detector's spatial anomaly). False with no value before."""
    finite = np.isfinite(values)
    before_high, before_low = _extremes_before(values)
    seen = np.isfinite(before_high)
    with np.errstate(invalid="ignore"):
        span = np.where(seen, before_high - before_low, 0.0)
        return seen & finite & ((values > before_high + tolerance * span) | (values < before_low - tolerance * span))


_erfc = np.frompyfunc(math.erfc, 1, 1)  # numpy has no erfc, and scipy is no dependency of lstmcast


# Multi-scale ranks for streams (`detect --score multiscale`): the conformal rank of the mean of the last m
# residuals, for m in SCALES, each against the same series' own past means of m over the `window` points
# before its block (as `score` ranks single residuals: m = 1 is today's rank score), joined by Bonferroni:
#
#     p_m = rank p-value of mean(a_{t-m+1} .. a_t) among past such means     p = min(1, k * min_m p_m)
#
# over the k scales scored at t (a scale scores once MIN_RESIDUALS * m means lie in its window, at most half
# the window: the means of few long spans overlap and say little). One residual far off, a burst of ten, a
# shift that lasts a hundred: each is extreme on some scale, and p stays a p-value (Bonferroni is valid for
# any dependence between the scales). Then:
# - hold-off: a point above the level within HOLD points after one above it (before this rule) keeps at most
#   the level's score, so a lasting anomaly is flagged where it starts (HTM's filter holds off one point; a
#   residual stays in the longest mean for HOLD = max(SCALES) points);
# - range: a value beyond the range of every value before it (NAB's numenta detector's check, RANGE_TOLERANCE)
#   scores 1 when it also lies on the far side of its forecast (a new high above expected, a new low below:
#   a trend the forecast follows or overshoots is no anomaly) and its own residual ranks at least RANGE_GATE,
#   and when the series set no such record in the `quiet` points before it (detect: half the lookback): a growing
#   seasonal series sets one every season.
# NAB standard (benchmarks/RESULTS.md, "Multi-scale ranks for streams"): 70.2 at level 0.9995, 69.8 at 0.999 (rank
# 57.4, likelihood 63.7); at 0.9995 at most 0.28% flagged on normal single series of 2,000 points or more.
SCALES = (1, 10, 100)  # residuals averaged per scale, ending at the point (decades: 1, HTM's 10, 100)
HOLD = max(SCALES)  # points after a flagged one during which another is not flagged
RANGE_GATE = 0.9  # the range check counts only where the point's own residual ranks at least this
RANGE_QUIET = 0.5  # ... and where the series set no record in the last this share of the lookback (detect's workflow):
# a growing seasonal series sets them season after season (the sample monthly revenue: 3 new highs scored 1, now 1).
# NAB 70.15 (70.11 without)


def _means(values: np.ndarray, span: int) -> np.ndarray:
    """Per point of [S, T]: the mean of the finite values among the `span` ending at it (NaN: fewer than half)."""
    n, total, _ = trailing(values, 1 - span, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n >= max(1, span // 2), total / np.maximum(n, 1), np.nan)


def multiscale(nonconformity: np.ndarray, values: np.ndarray, expected: np.ndarray, firsts: np.ndarray,
               level: float, window: int, refresh: int, scales: tuple[int, ...] = SCALES, hold: int = HOLD,
               gate: float = RANGE_GATE, tolerance: float = RANGE_TOLERANCE, quiet: int = 0) -> np.ndarray:
    """Scores [S, T] in [0, 1] (NaN: not scored) of absolute residuals [S, T], from firsts[i] on (see above).

    `values` and `expected` [S, T] (NaN: none) give the range check its values and their forecasts; `quiet`: it
    counts only where no value in the `quiet` points before set a record of its own.
    Each series is ranked against its own past only. The hold-off and the range check depend on
    `level`: a point's score exceeds the level where it is flagged. Causal: a point's score reads
    the residuals, values and forecasts up to it and none after.
    """
    firsts = np.asarray(firsts, dtype=np.int64)
    p_values = []
    for m in scales:
        least = max(MIN_RESIDUALS, min(MIN_RESIDUALS * m, window // 2))
        means = _means(nonconformity, m)
        p_values.append(1.0 - score(means, firsts, level, window, refresh, min_residuals=least).score)
    p_scales = np.stack(p_values)
    k = np.isfinite(p_scales).sum(axis=0)
    with np.errstate(invalid="ignore"):
        p = np.where(k > 0, np.min(np.where(np.isfinite(p_scales), p_scales, np.inf), axis=0) * k, np.nan)
    out = held_off(1.0 - np.minimum(p, 1.0), level, hold)  # not the range check's 1s: holding them off cost 3 on NAB
    if 1 in scales:
        single = 1.0 - p_scales[scales.index(1)]
    else:
        single = score(nonconformity, firsts, level, window, refresh).score
    records = beyond_range(values, tolerance)
    ranged = records & _far_side(values, expected) & np.isfinite(out)
    ranged &= np.nan_to_num(single, nan=0.0) >= gate
    if quiet:  # a series that set a record within the last `quiet` points sets them as it grows: no surprise
        pos = np.arange(values.shape[1])[None, :]
        latest = np.maximum.accumulate(np.where(records, pos, -quiet - 1), axis=1)  # the latest record up to each point
        before = np.concatenate([np.full((len(values), 1), -quiet - 1), latest[:, :-1]], axis=1)
        ranged &= pos - before > quiet
    out[ranged] = 1.0
    return out


def _far_side(values: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Per point of [S, T]: above every value before it and its forecast, or not above them and below its forecast."""
    before_high, _ = _extremes_before(values)
    with np.errstate(invalid="ignore"):
        return np.where(values > before_high, values > expected, values < expected)


def held_off(scores: np.ndarray, level: float, hold: int) -> np.ndarray:
    """[S, T] scores, each above `level` within `hold` points after one above it (as given) capped at `level`."""
    above = np.nan_to_num(scores, nan=0.0) > level
    _, recent, _ = trailing(above.astype(np.float64), -hold, 0)  # points above the level among the `hold` before
    out = scores.copy()
    cap = above & (recent > 0)
    out[cap] = level
    return out


# The last value as a point's expected value (`last_value`), for files of several series whose network forecasts
# one step ahead no better than the value before (detect's workflow chooses per position, `LAST_VALUE_MARGIN`): the
# residual of a point is its distance from the value before it, divided by the series' local spread and ranked
# against every series' past ones, as `residual_scores` does. A spike would then be the expected value of the
# point after it, so a point scoring above CLEAN_LAST is read as the value before it by the next point, once:
# a point after a replaced one is read as it is, so a lasting shift is set against its own new level from its
# second point on. Sequential (each point's expected value depends on the score of the one before), but causal
# and the same wherever scoring starts: it always runs from the first value.
CLEAN_LAST = 0.99  # a point scoring above this is read as the value before it by the next point's last value


def last_value(values: np.ndarray, observed: np.ndarray, level: float, window: int, refresh: int,
               span: int = SPREAD, clean: float = CLEAN_LAST) -> tuple[np.ndarray, np.ndarray, Scores]:
    """(source [S, T], absolute residuals [S, T], Scores) of each point of `values` against the last value before it.

    `source`: the position of the value each point is set against (-1: none, at position 0); the last observed
    one, so a gap (its filled value) is skipped, as is a point read as the value before it. `values` [S, T] in
    residual units (NaN after a series' end), `observed` [S, T]: False at gaps and after the end (no residual
    there, so neither scored nor calibrating). The spread of a residual is the mean of the `span` finite ones
    before it (at least MIN_SPREAD); blocks of `refresh` ranked against the pooled residuals over their spreads of
    the `window` positions before the block.
    """
    n_series, width = values.shape
    source = np.full((n_series, width), -1, dtype=np.int64)
    residual = np.full((n_series, width), np.nan)
    scaled = np.full((n_series, width), np.nan)
    out = np.full((n_series, width), np.nan)
    half = np.full((n_series, width), np.nan)
    if not n_series or not width:
        return source, residual, Scores(out, half)
    rows = np.arange(n_series)
    at = np.zeros(n_series, dtype=np.int64)  # the position of the last value
    replaced = np.zeros(n_series, dtype=bool)
    for lo in range(0, width, refresh):
        fit = _fit(_pool(scaled[:, max(0, lo - window):lo]))
        h = _half_width(fit, level, MIN_RESIDUALS)[0]
        for t in range(max(lo, 1), min(lo + refresh, width)):
            source[:, t] = at
            seen = observed[:, t] & np.isfinite(values[:, t])
            with np.errstate(invalid="ignore"):
                a = np.where(seen, np.abs(values[:, t] - values[rows, at]), np.nan)
            before = residual[:, max(0, t - span):t]
            n = np.isfinite(before).sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                spread = np.where(n >= MIN_SPREAD, np.maximum(np.nansum(before, axis=1) / np.maximum(n, 1),
                                                              MIN_SPREAD_VALUE), np.nan)
            residual[:, t] = a
            scaled[:, t] = a / spread
            s = _ranked(fit, scaled[None, :, t], MIN_RESIDUALS)[0]
            out[:, t] = s
            half[:, t] = np.where(np.isfinite(s), h * spread, np.nan)
            swap = (np.nan_to_num(s, nan=0.0) > clean) & ~replaced
            at = np.where(seen & ~swap, t, at)
            replaced = np.where(seen, swap, replaced)
    return source, residual, Scores(np.clip(out, 0.0, 1.0), half)
