"""The Numenta Anomaly Benchmark (NAB) score, in numpy and pandas.

Written from NAB's definition as the NAB paper (Lavin & Ahmad 2015) and the
scorer of ``numenta/NAB`` (v1.1, ``nab/sweeper.py``) give it; an independent,
vectorised implementation, no NAB code copied. A detector gives every row of
every data file an anomaly score in ``[0, 1]``; a row *detects* when its score is
at or above a threshold, one threshold for the whole corpus and cost profile.

Per file, with ``n`` rows:

* **Probationary period.** Rows ``i < min(floor(0.15 * n), 750)`` are where the
  detector may learn; they are dropped before anything is counted (a detection
  there is neither rewarded nor penalised, and a window lying wholly inside it
  is neither hit nor missed).
* **Windows.** Each labelled anomaly window ``[start, end]`` (timestamps that
  must occur exactly in the file) covers rows ``L..R``, width ``W = R - L + 1``.
* **Row weights.** With ``sigma(x) = 2 / (1 + exp(5 x)) - 1`` (the scaled
  sigmoid, ``-1`` for ``x > 3``), a row ``i`` inside a window is worth
  ``A_tp * sigma(-(R - i + 1) / W) / sigma(-1)`` -- ``A_tp`` at the left edge,
  falling towards ``0`` at the right edge. A row outside every window is worth
  ``A_fp * sigma((i - R') / (W' - 1))`` where ``R'``, ``W'`` are the end row and
  width of the closest window before it: about ``-A_fp`` far from (or before)
  any window, less just after one. ``A_fp`` enters as a positive weight; the
  sigmoid makes the contribution negative.
* **File score at a threshold.** Each window counts once: the weight of its
  earliest detected (scorable) row, or ``-A_fn`` if none detects. Every
  detected scorable row outside the windows adds its (negative) weight. Rows
  inside windows after the first detection add nothing.

The corpus score is the sum of the file scores. The threshold is chosen per
profile to maximise it (:func:`optimise_threshold`): by default with the
exhaustive sweep over every distinct score that NAB's code has used since 2019
(``"sweep"``, the global maximum), or with the hill climb the 2015-2018
scoreboard was made with (``"twiddle"``, a local search from 0.5).

Normalisation: ``100 * (raw - null) / (perfect - null)`` where ``perfect`` is
``A_tp`` times the number of windows in the label file and ``null`` is the raw
score of the null detector (the same constant score on every row) after the
same threshold optimisation: ``-A_fn`` per window, as it detects nothing.

How the published board (``results/final_results.json``) came about, as far
as these per-row scores show: ``numenta`` is the twiddle optimum (to 1e-12; the
sweep finds a higher maximum on reward_low_FP_rate, +0.09); ``windowedGaussian``
is the score at threshold exactly 1.0, the sweep optimum (twiddle never tries
1.0: its steps drift to ``1.0000000000000002``, out of range, so it stops at
0.9999998 and scores 16 points lower; NAB's thresholds.json entry was set to
1.0 by a commit that changed the threshold but not its score); ``random`` is the
score at thresholds optimised by twiddle in 2015 on an older corpus of 32 files
(164,136 rows; twiddle on those files of today's scores lands on exactly NAB's
three thresholds) and never re-optimised on the 58: below the optimum of
either search, by 0.8 to 1.7 points.
Scoring at NAB's ``config/thresholds.json`` (``thresholds=`` in
:func:`normalised_scores`) reproduces all of them.

Public entry points: :func:`load_corpus`, :func:`load_scores_csv`,
:func:`score_file`, :func:`score_curve`, :func:`optimise_threshold`,
:func:`normalised_scores`. Scores are given as ``{file: np.ndarray}``, one
score per row in the row order of ``data/<file>``, ``file`` being the
``CATEGORY/NAME.csv`` path used by the label files. A score may be NaN in
the probationary period (it is never read); elsewhere it must lie in ``[0, 1]``.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "NULL_SCORE",
    "PROBATION_MAX_ROWS",
    "PROBATION_PERCENT",
    "Corpus",
    "CostMatrix",
    "DataFile",
    "FileScore",
    "ScoreCurve",
    "load_corpus",
    "load_scores_csv",
    "normalised_scores",
    "null_scores",
    "optimise_threshold",
    "probationary_length",
    "published_board",
    "row_weights",
    "scaled_sigmoid",
    "score_corpus",
    "score_curve",
    "score_file",
    "twiddle",
    "window_rows",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
Optimiser = Literal["twiddle", "sweep"]

#: Share of each file that is probationary (NAB's ``probationaryPercent``).
PROBATION_PERCENT = 0.15
#: Cap on the probationary period: 15% of 5000 rows.
PROBATION_MAX_ROWS = 750
#: The null detector's constant score.
NULL_SCORE = 0.5
#: The threshold NAB reports for "nothing detected" (above every valid score).
NO_DETECTION_THRESHOLD = 1.1


# --------------------------------------------------------------------------
# Definitions
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class CostMatrix:
    """One NAB application profile: weights of a hit, a false alarm, a miss."""

    tp: float
    fp: float
    fn: float

    @classmethod
    def from_profile(cls, profile: Mapping[str, Mapping[str, float]]) -> CostMatrix:
        """Build from an entry of ``config/profiles.json`` (``{"CostMatrix": {...}}``)."""
        m = profile.get("CostMatrix", profile)
        return cls(tp=float(m["tpWeight"]), fp=float(m["fpWeight"]), fn=float(m["fnWeight"]))


def scaled_sigmoid(x: ArrayLike) -> FloatArray:
    """NAB's scaled sigmoid ``2 / (1 + exp(5 x)) - 1``, and ``-1`` where ``x > 3``.

    ``x = -1`` (left edge of a window) gives 0.98661, ``x = 0`` (right edge)
    gives 0, ``x = 1`` (one window width past the right edge) gives -0.98661.
    """
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):
        y = 2.0 / (1.0 + np.exp(5.0 * x)) - 1.0
    return np.where(x > 3.0, -1.0, y)


def probationary_length(n_rows: int, percent: float = PROBATION_PERCENT) -> int:
    """Rows at the start of a file that are not scored: ``min(floor(p n), p 5000)``."""
    return int(min(math.floor(percent * n_rows), percent * 5000))


def window_rows(timestamps: pd.Series | pd.DatetimeIndex, windows: list[list[str]],
                name: str = "") -> list[tuple[int, int]]:
    """Map ``[[start, end], ...]`` timestamps to inclusive row ranges ``(L, R)``.

    Both edges must be timestamps of the file (NAB requires an exact match);
    each maps to its first occurrence. Windows are returned in time order and
    must not overlap.
    """
    ts = pd.DatetimeIndex(pd.to_datetime(timestamps))
    first: dict[pd.Timestamp, int] = {}
    for i, t in enumerate(ts):
        first.setdefault(t, i)
    rows = []
    for start, end in windows:
        a, b = pd.Timestamp(start), pd.Timestamp(end)
        if a not in first or b not in first:
            raise ValueError(f"{name}: window [{start}, {end}] has an edge that is not a timestamp of the file")
        if first[b] < first[a]:
            raise ValueError(f"{name}: window [{start}, {end}] ends before it starts")
        rows.append((first[a], first[b]))
    rows.sort()
    for (_, r0), (l1, _) in itertools.pairwise(rows):
        if l1 <= r0:
            raise ValueError(f"{name}: windows overlap")
    return rows


def row_weights(n_rows: int, windows: list[tuple[int, int]], cost: CostMatrix) -> tuple[FloatArray, IntArray]:
    """The score each row earns if it detects, and the window it lies in.

    Returns ``(weight, window)``: ``window[i]`` is the index into ``windows`` of
    the window holding row ``i``, or ``-1`` outside every window. A window of
    width 1 leaves the rows after it at ``-A_fp`` (NAB divides by ``W - 1``).
    """
    i = np.arange(n_rows, dtype=np.float64)
    window = np.full(n_rows, -1, dtype=np.int64)
    # Rows before any window: as far from a window as can be.
    weight = np.full(n_rows, -cost.fp, dtype=np.float64)
    max_tp = float(scaled_sigmoid(-1.0))
    for k, (left, right) in enumerate(windows):
        width = right - left + 1
        inside = slice(left, right + 1)
        window[inside] = k
        weight[inside] = cost.tp * scaled_sigmoid(-(right - i[inside] + 1) / width) / max_tp
        stop = windows[k + 1][0] if k + 1 < len(windows) else n_rows
        after = slice(right + 1, stop)
        with np.errstate(divide="ignore"):
            pos = (i[after] - right) / float(width - 1)
        weight[after] = cost.fp * scaled_sigmoid(pos)
    return weight, window


# --------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class DataFile:
    """One NAB series: its row count, timestamps, windows and probation."""

    name: str
    timestamps: pd.DatetimeIndex
    windows: tuple[tuple[int, int], ...]
    probation: int

    @property
    def n_rows(self) -> int:
        return len(self.timestamps)


@dataclass(frozen=True)
class Corpus:
    """The NAB data files, their windows and the cost profiles."""

    files: dict[str, DataFile]
    profiles: dict[str, CostMatrix]
    n_windows: int

    def perfect(self, profile: str) -> float:
        """Raw score of a detector hitting every window at its left edge, nothing else."""
        return self.profiles[profile].tp * self.n_windows


def load_corpus(nab_dir: str | Path) -> Corpus:
    """Read ``data/**.csv``, ``labels/combined_windows.json`` and ``config/profiles.json``.

    Only the ``timestamp`` column of each data file is read; the file names are
    the keys of the window file (``CATEGORY/NAME.csv``).
    """
    nab_dir = Path(nab_dir)
    with open(nab_dir / "labels" / "combined_windows.json") as f:
        labels: dict[str, list[list[str]]] = json.load(f)
    with open(nab_dir / "config" / "profiles.json") as f:
        profiles = {k: CostMatrix.from_profile(v) for k, v in json.load(f).items()}
    files = {}
    for name in sorted(labels):
        ts = pd.DatetimeIndex(pd.read_csv(nab_dir / "data" / name, usecols=["timestamp"],
                                          parse_dates=["timestamp"])["timestamp"])
        files[name] = DataFile(name=name, timestamps=ts, windows=tuple(window_rows(ts, labels[name], name)),
                               probation=probationary_length(len(ts)))
    return Corpus(files=files, profiles=profiles, n_windows=sum(len(w) for w in labels.values()))


def load_scores_csv(path: str | Path, corpus: Corpus | None = None) -> dict[str, FloatArray]:
    """Read a ``file,timestamp,anomaly_score`` CSV (optionally ``.gz``) into ``{file: scores}``.

    Rows keep their order within each file. With ``corpus`` given, each file
    must be in it, have as many rows as the data file and the same timestamps.
    """
    frame = pd.read_csv(path, usecols=["file", "timestamp", "anomaly_score"])
    out: dict[str, FloatArray] = {}
    for name, group in frame.groupby("file", sort=False):
        out[str(name)] = group["anomaly_score"].to_numpy(dtype=np.float64)
        if corpus is not None:
            if name not in corpus.files:
                raise ValueError(f"{path}: {name} is not a file of the corpus")
            ts = pd.DatetimeIndex(pd.to_datetime(group["timestamp"]))
            if len(ts) != corpus.files[name].n_rows or not (ts == corpus.files[name].timestamps).all():
                raise ValueError(f"{path}: the rows of {name} are not those of its data file")
    return out


def published_board(nab_dir: str | Path) -> dict[str, dict[str, dict[str, float]]]:
    """NAB's published results: ``{detector: {profile: {"score", "threshold"}}}``.

    ``score`` is from ``results/final_results.json``; ``threshold`` from
    ``config/thresholds.json`` where the detector has one (NaN otherwise).
    """
    nab_dir = Path(nab_dir)
    with open(nab_dir / "results" / "final_results.json") as f:
        final = json.load(f)
    with open(nab_dir / "config" / "thresholds.json") as f:
        thresholds = json.load(f)
    return {det: {prof: {"score": float(score),
                         "threshold": float(thresholds.get(det, {}).get(prof, {}).get("threshold", math.nan))}
                  for prof, score in profs.items()}
            for det, profs in final.items()}


def null_scores(corpus: Corpus) -> dict[str, FloatArray]:
    """The null detector: :data:`NULL_SCORE` on every row."""
    return {name: np.full(f.n_rows, NULL_SCORE) for name, f in corpus.files.items()}


def _checked(scores_by_file: Mapping[str, ArrayLike], corpus: Corpus) -> dict[str, FloatArray]:
    missing = sorted(set(corpus.files) - set(scores_by_file))
    if missing:
        raise ValueError(f"no scores for {len(missing)} file(s), e.g. {missing[0]}")
    out = {}
    for name, f in corpus.files.items():
        s = np.asarray(scores_by_file[name], dtype=np.float64)
        if s.shape != (f.n_rows,):
            raise ValueError(f"{name}: {s.shape} scores for {f.n_rows} rows")
        scored = s[f.probation:]
        if not np.all((scored >= 0.0) & (scored <= 1.0)):
            raise ValueError(f"{name}: anomaly scores must lie in [0, 1] after the probationary period")
        if not np.all(np.isnan(s[:f.probation]) | ((s[:f.probation] >= 0.0) & (s[:f.probation] <= 1.0))):
            raise ValueError(f"{name}: probationary scores must lie in [0, 1] or be NaN")
        out[name] = s
    return out


# --------------------------------------------------------------------------
# Scoring at one threshold
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class FileScore:
    """A file's (or the corpus's) raw score at one threshold, and NAB's row counts.

    ``tp``/``fp`` count detected scorable rows inside/outside windows, ``fn``/``tn``
    the undetected ones; ``windows_hit``/``windows_missed`` count windows.
    """

    score: float
    tp: int
    fp: int
    fn: int
    tn: int
    windows_hit: int
    windows_missed: int

    def __add__(self, other: FileScore) -> FileScore:
        return FileScore(*(a + b for a, b in zip(self._values(), other._values())))

    def _values(self) -> tuple:
        return (self.score, self.tp, self.fp, self.fn, self.tn, self.windows_hit, self.windows_missed)


def score_file(scores: ArrayLike, windows: list[tuple[int, int]] | tuple[tuple[int, int], ...],
               cost: CostMatrix, threshold: float, probation: int | None = None) -> FileScore:
    """Score one file: rows with ``score >= threshold`` (past probation) detect.

    ``windows`` are inclusive row ranges (:func:`window_rows`); ``probation``
    defaults to :func:`probationary_length` of the file.
    """
    s = np.asarray(scores, dtype=np.float64)
    n = len(s)
    probation = probationary_length(n) if probation is None else probation
    weight, window = row_weights(n, list(windows), cost)
    scorable = np.arange(n) >= probation
    detect = (s >= threshold) & scorable
    outside = window < 0
    total = float(weight[detect & outside].sum())
    hit = missed = 0
    for k in range(len(windows)):
        rows = np.flatnonzero(scorable & (window == k))
        if len(rows) == 0:
            continue  # wholly probationary: not counted
        found = rows[detect[rows]]
        if len(found):
            total += float(weight[found[0]])
            hit += 1
        else:
            total -= cost.fn
            missed += 1
    inside = scorable & ~outside
    return FileScore(score=total, tp=int((detect & ~outside).sum()), fp=int((detect & outside).sum()),
                     fn=int((inside & ~detect).sum()), tn=int((scorable & outside & ~detect).sum()),
                     windows_hit=hit, windows_missed=missed)


def score_corpus(scores_by_file: Mapping[str, ArrayLike], corpus: Corpus, profile: str,
                 threshold: float) -> dict[str, FileScore]:
    """:func:`score_file` for every file of the corpus, plus a ``"Totals"`` entry."""
    cost = corpus.profiles[profile]
    out = {name: score_file(s, corpus.files[name].windows, cost, threshold, corpus.files[name].probation)
           for name, s in _checked(scores_by_file, corpus).items()}
    total = FileScore(0.0, 0, 0, 0, 0, 0, 0)
    for v in out.values():
        total = total + v
    out["Totals"] = total
    return out


# --------------------------------------------------------------------------
# The score at every threshold, and the threshold search
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreCurve:
    """The corpus score as a step function of the threshold.

    ``thresholds`` descend: ``1.1`` (nothing detected) and then every distinct
    scorable anomaly score; ``scores[j]`` is the raw corpus score when the rows
    with ``score >= thresholds[j]`` detect.
    """

    thresholds: FloatArray
    scores: FloatArray

    def __call__(self, threshold: float) -> float:
        """The raw corpus score at any threshold (``-inf`` outside ``[0, 1]``, as NAB's optimiser)."""
        if not 0.0 <= threshold <= 1.0:
            return float("-inf")
        asc = self.thresholds[:0:-1]  # distinct scores, ascending
        n_groups = len(asc) - int(np.searchsorted(asc, threshold, side="left"))
        return float(self.scores[n_groups])


def score_curve(scores_by_file: Mapping[str, ArrayLike], corpus: Corpus, profile: str) -> ScoreCurve:
    """The corpus score at every distinct threshold, in one vectorised sweep.

    Rows are sorted by score, highest first. Each detected row outside a
    window adds its weight; a window's contribution is the running maximum of
    its detected rows' weights (from ``-A_fn``), so each row adds the rise of
    that maximum. Cumulative sums read at the end of each run of equal scores
    give the score at that threshold.
    """
    cost = corpus.profiles[profile]
    checked = _checked(scores_by_file, corpus)
    s_parts, w_parts, k_parts = [], [], []
    n_counted = 0
    for name, f in corpus.files.items():
        weight, window = row_weights(f.n_rows, list(f.windows), cost)
        keep = slice(f.probation, None)
        win = window[keep]
        counted = np.unique(win[win >= 0])
        # Renumber this file's scorable windows into corpus-wide ids.
        remap = np.full(len(f.windows) + 1, -1, dtype=np.int64)
        remap[counted] = n_counted + np.arange(len(counted))
        n_counted += len(counted)
        s_parts.append(checked[name][keep])
        w_parts.append(weight[keep])
        k_parts.append(remap[win])  # remap[-1] is the trailing -1
    s = np.concatenate(s_parts)
    w = np.concatenate(w_parts)
    k = np.concatenate(k_parts)

    order = np.argsort(-s, kind="stable")
    s, w, k = s[order], w[order], k[order]
    gain = np.where(k < 0, w, 0.0)
    inside = np.flatnonzero(k >= 0)
    if len(inside):
        runmax = pd.Series(w[inside]).groupby(k[inside]).cummax()
        before = runmax.groupby(k[inside]).shift(1).fillna(-cost.fn)
        gain[inside] = (runmax - before).to_numpy()
    base = -cost.fn * n_counted
    total = base + np.cumsum(gain)
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True]) if len(s) else np.zeros(0, dtype=np.int64)
    return ScoreCurve(thresholds=np.r_[NO_DETECTION_THRESHOLD, s[ends]], scores=np.r_[base, total[ends]])


def twiddle(objective, initial: float = 0.5, tolerance: float = 1e-7) -> tuple[float, float]:
    """The coordinate hill climb NAB's scoreboard thresholds were found with.

    From ``x = initial`` with step ``0.1``: try ``x + step``; if better, move
    there and double the step; else try ``x - step``; if better, move there and
    double the step; else stay and halve it. Stop when the step is at most
    ``tolerance``. Returns the best ``(x, objective(x))`` among all points tried
    (the first one tried among equals).
    """
    tried: dict[float, float] = {}

    def f(x: float) -> float:
        if x not in tried:
            tried[x] = objective(x)
        return tried[x]

    x, step = initial, 0.1
    best = f(x)
    while step > tolerance:
        x += step
        if f(x) > best:
            best = f(x)
            step *= 2
            continue
        x -= 2 * step
        if f(x) > best:
            best = f(x)
            step *= 2
        else:
            x += step
            step *= 0.5
    best_x = max(tried, key=tried.__getitem__)
    return best_x, tried[best_x]


def optimise_threshold(curve: ScoreCurve, method: Optimiser = "sweep") -> tuple[float, float]:
    """The threshold maximising the corpus score, and that score.

    ``"sweep"`` takes the global maximum over every distinct score (NAB since
    2019), the highest such threshold among ties. ``"twiddle"`` runs
    :func:`twiddle` from 0.5 to a step of 1e-7, as NAB did until 2018; it can
    stop at a local maximum, and never tries exactly 1.0.
    """
    if method == "sweep":
        j = int(np.argmax(curve.scores))
        return float(curve.thresholds[j]), float(curve.scores[j])
    if method == "twiddle":
        return twiddle(curve)
    raise ValueError(f"unknown optimiser {method!r}")


def normalised_scores(scores_by_file: Mapping[str, ArrayLike], corpus: Corpus,
                      profile: str | None = None, method: Optimiser = "sweep",
                      thresholds: Mapping[str, float] | None = None,
                      null_by_file: Mapping[str, ArrayLike] | None = None) -> dict[str, dict[str, float]]:
    """NAB's final score per profile: ``{profile: {score, threshold, raw, null, perfect}}``.

    ``score = 100 * (raw - null) / (perfect - null)``, where ``raw`` is the
    corpus score at the threshold (optimised with ``method``, or taken from
    ``thresholds[profile]`` when given), ``null`` the optimised score of the
    null detector (``null_by_file``, by default :func:`null_scores`) and
    ``perfect = A_tp * number of windows``. ``profile=None`` does every profile.
    """
    null_by_file = null_scores(corpus) if null_by_file is None else null_by_file
    out = {}
    for name in ([profile] if profile else list(corpus.profiles)):
        curve = score_curve(scores_by_file, corpus, name)
        if thresholds is None:
            threshold, raw = optimise_threshold(curve, method)
        else:
            threshold = float(thresholds[name])
            raw = curve(threshold)
        _, null = optimise_threshold(score_curve(null_by_file, corpus, name), method)
        perfect = corpus.perfect(name)
        out[name] = {"score": 100.0 * (raw - null) / (perfect - null), "threshold": threshold,
                     "raw": raw, "null": null, "perfect": perfect}
    return out
