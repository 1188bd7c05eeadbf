"""The NAB scorer in benchmarks/nab_scoring.py: its definitions on small made-up files,
and the published board reproduced from NAB's per-row scores (when the corpus is there)."""

from __future__ import annotations

import importlib.util
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "nab_scoring.py"
_SPEC = importlib.util.spec_from_file_location("nab_scoring", _PATH)
nab = importlib.util.module_from_spec(_SPEC)
sys.modules.setdefault("nab_scoring", nab)  # dataclasses look their module up here
_SPEC.loader.exec_module(nab)

NAB_DIR = Path(os.environ.get("NAB_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data" / "nab"))

STANDARD = nab.CostMatrix(tp=1.0, fp=0.11, fn=1.0)
S1 = 2 / (1 + math.exp(-5)) - 1  # scaled sigmoid at -1: 0.98661


def corpus_of(files: dict[str, tuple[int, list[tuple[int, int]]]], probation: int | None = None,
              cost: nab.CostMatrix = STANDARD) -> nab.Corpus:
    """A corpus of made-up files: {name: (rows, windows as row ranges)}."""
    out = {}
    for name, (n, windows) in files.items():
        ts = pd.date_range("2020-01-01", periods=n, freq="5min")
        p = nab.probationary_length(n) if probation is None else probation
        out[name] = nab.DataFile(name=name, timestamps=ts, windows=tuple(windows), probation=p)
    return nab.Corpus(files=out, profiles={"standard": cost},
                      n_windows=sum(len(w) for _, w in files.values()))


# --------------------------------------------------------------------------
# Reward function, windows, probation
# --------------------------------------------------------------------------


def test_scaled_sigmoid_values():
    got = nab.scaled_sigmoid([-1.0, -0.5, 0.0, 1.0, 3.0, 3.0001, 50.0])
    want = [S1, 2 / (1 + math.exp(-2.5)) - 1, 0.0, -S1, 2 / (1 + math.exp(15)) - 1, -1.0, -1.0]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert abs(S1 - 0.98661) < 1e-5


def test_probationary_length_is_15_percent_capped_at_750():
    assert nab.probationary_length(1000) == 150
    assert nab.probationary_length(4032) == 604  # floor(604.8)
    assert nab.probationary_length(4999) == 749
    assert nab.probationary_length(5000) == 750
    assert nab.probationary_length(22695) == 750
    assert nab.probationary_length(6) == 0


def test_row_weights_inside_and_after_a_window():
    n, (left, right) = 100, (40, 49)  # W = 10
    w, k = nab.row_weights(n, [(left, right)], STANDARD)
    assert (k[left:right + 1] == 0).all() and (k[:left] == -1).all() and (k[right + 1:] == -1).all()
    # Left edge earns the full tp weight; later rows less, the last one little but > 0.
    assert w[left] == pytest.approx(1.0)
    assert np.all(np.diff(w[left:right + 1]) < 0)
    assert w[right] == pytest.approx((2 / (1 + math.exp(-5 * 0.1)) - 1) / S1)  # sigma(-1/W)
    # Before any window: the full false-positive cost.
    np.testing.assert_allclose(w[:left], -0.11)
    # After: sigma((i - R) / (W - 1)) * fp, from near 0 down to -fp.
    assert w[right + 1] == pytest.approx(0.11 * (2 / (1 + math.exp(5 / 9)) - 1))
    assert w[right + 9] == pytest.approx(-0.11 * S1)
    assert w[right + 27] == pytest.approx(0.11 * (2 / (1 + math.exp(15)) - 1), abs=1e-12)  # (i-R)/(W-1) = 3
    assert w[right + 27] > -0.11
    np.testing.assert_allclose(w[right + 28:], -0.11)  # beyond 3: exactly -fp
    assert np.all(np.diff(w[right + 1:]) <= 0)


def test_row_weights_use_the_closest_preceding_window():
    w, k = nab.row_weights(60, [(5, 14), (30, 34)], STANDARD)  # widths 10 and 5
    assert w[20] == pytest.approx(0.11 * (2 / (1 + math.exp(5 * 6 / 9)) - 1))
    assert w[36] == pytest.approx(0.11 * (2 / (1 + math.exp(5 * 2 / 4)) - 1))
    assert list(k[[4, 5, 14, 15, 30, 34, 35]]) == [-1, 0, 0, -1, 1, 1, -1]


def test_window_rows_from_timestamps():
    ts = pd.date_range("2020-01-01", periods=10, freq="h")
    got = nab.window_rows(ts, [["2020-01-01 06:00:00.000000", "2020-01-01 08:00:00.000000"],
                               ["2020-01-01 01:00:00", "2020-01-01 02:00:00"]])
    assert got == [(1, 2), (6, 8)]
    with pytest.raises(ValueError, match="not a timestamp"):
        nab.window_rows(ts, [["2020-01-01 01:30:00", "2020-01-01 02:00:00"]])
    with pytest.raises(ValueError, match="overlap"):
        nab.window_rows(ts, [["2020-01-01 01:00:00", "2020-01-01 03:00:00"],
                             ["2020-01-01 03:00:00", "2020-01-01 05:00:00"]])


# --------------------------------------------------------------------------
# Scoring one file
# --------------------------------------------------------------------------


def file_score(hits: list[int], n: int = 100, windows=((40, 49),), probation: int = 10) -> nab.FileScore:
    s = np.zeros(n)
    s[hits] = 0.9
    return nab.score_file(s, windows, STANDARD, threshold=0.5, probation=probation)


def test_first_detection_in_a_window_scores_and_the_rest_do_not():
    assert file_score([40]).score == pytest.approx(1.0)
    assert file_score([40, 41, 45, 49]).score == pytest.approx(1.0)  # later hits add nothing
    late = file_score([45])
    assert 0 < late.score < file_score([44]).score < 1.0
    assert (late.windows_hit, late.windows_missed, late.tp, late.fp) == (1, 0, 1, 0)


def test_missed_window_costs_fn_and_false_positives_add():
    miss = file_score([])
    assert miss.score == -1.0 and miss.windows_missed == 1
    assert file_score([20]).score == pytest.approx(-1.0 - 0.11)  # before the window, missed it
    fp_after = file_score([40, 52]).score - 1.0
    assert -0.11 < fp_after < 0  # just after the window: mild
    assert file_score([40, 99]).score == pytest.approx(1.0 - 0.11)  # far after: full cost


def test_threshold_is_inclusive():
    s = np.zeros(100)
    s[40] = 0.7
    assert nab.score_file(s, [(40, 49)], STANDARD, threshold=0.7, probation=0).score == pytest.approx(1.0)
    assert nab.score_file(s, [(40, 49)], STANDARD, threshold=0.7000001, probation=0).score == -1.0


def test_probationary_detections_are_ignored():
    assert file_score([3, 9], probation=10).score == -1.0  # only the miss counts
    assert file_score([10], probation=10).score == pytest.approx(-1.11)  # row 10 is scored
    # A window wholly inside the probation is neither hit nor missed.
    assert file_score([], windows=((2, 5), (40, 49)), probation=10).score == -1.0
    assert file_score([3], windows=((2, 5), (40, 49)), probation=10).score == -1.0


# --------------------------------------------------------------------------
# The sweep, the optimisers, normalisation
# --------------------------------------------------------------------------


def random_corpus(seed: int = 0):
    rng = np.random.default_rng(seed)
    corpus = corpus_of({"a.csv": (300, [(100, 129), (200, 229)]), "b.csv": (200, [(150, 169)]),
                        "c.csv": (120, [])})
    # Few distinct values, so ties cross files and windows.
    scores = {name: rng.integers(0, 21, f.n_rows) / 20.0 for name, f in corpus.files.items()}
    return corpus, scores


def test_sweep_equals_direct_scoring_at_every_threshold():
    corpus, scores = random_corpus()
    curve = nab.score_curve(scores, corpus, "standard")
    assert curve.thresholds[0] == 1.1 and np.all(np.diff(curve.thresholds) < 0)
    for t, value in zip(curve.thresholds, curve.scores):
        assert value == pytest.approx(nab.score_corpus(scores, corpus, "standard", t)["Totals"].score, abs=1e-9)
    for t in list(curve.thresholds[1:]) + [0.0, 0.33, 0.975]:
        assert curve(t) == pytest.approx(nab.score_corpus(scores, corpus, "standard", t)["Totals"].score, abs=1e-9)
    # Outside [0, 1] the optimiser sees -inf (as NAB's objective function).
    assert curve(1.1) == curve(1.0001) == curve(-0.1) == -np.inf


def test_optimisers_find_the_best_threshold():
    corpus, scores = random_corpus(1)
    curve = nab.score_curve(scores, corpus, "standard")
    t, best = nab.optimise_threshold(curve, "sweep")
    assert best == curve.scores.max() and curve(t) == best
    t2, best2 = nab.optimise_threshold(curve, "twiddle")
    assert best2 <= best and curve(t2) == best2


def test_twiddle_climbs_and_never_reaches_exactly_one():
    x, fx = nab.twiddle(lambda x: -(x - 0.73) ** 2)
    assert x == pytest.approx(0.73, abs=1e-6) and fx <= 0
    tried = []
    nab.twiddle(lambda x: tried.append(x) or (x if x <= 1 else -math.inf))
    assert 1.0 not in tried and max(x for x in tried if x <= 1) > 1 - 1e-6


def test_normalisation_perfect_null_and_a_miss():
    corpus = corpus_of({"a.csv": (300, [(100, 129), (200, 229)]), "b.csv": (200, [(150, 169)])})
    perfect = {}
    for name, f in corpus.files.items():
        s = np.zeros(f.n_rows)
        s[[left for left, _ in f.windows]] = 1.0
        perfect[name] = s
    for method in ("sweep", "twiddle"):
        assert nab.normalised_scores(perfect, corpus, method=method)["standard"]["score"] == pytest.approx(100.0)
        null = nab.normalised_scores(nab.null_scores(corpus), corpus, method=method)["standard"]
        assert null["score"] == 0.0 and null["raw"] == -3.0 and null["perfect"] == 3.0
    one_miss = {k: v.copy() for k, v in perfect.items()}
    one_miss["b.csv"][:] = 0.0
    r = nab.normalised_scores(one_miss, corpus)["standard"]
    assert r["raw"] == pytest.approx(1.0)  # 2 hits, 1 miss
    assert r["score"] == pytest.approx(100 * (1.0 + 3.0) / (3.0 + 3.0))
    at = nab.normalised_scores(one_miss, corpus, thresholds={"standard": 1.0})["standard"]
    assert at["threshold"] == 1.0 and at["raw"] == pytest.approx(1.0)


def test_scores_are_checked():
    corpus = corpus_of({"a.csv": (100, [(50, 59)])})  # probation 15 rows
    good = np.zeros(100)
    good[:15] = np.nan  # allowed: never read
    nab.score_curve({"a.csv": good}, corpus, "standard")
    for bad in (np.full(100, np.nan), np.full(100, 1.5), np.zeros(99)):
        with pytest.raises(ValueError):
            nab.score_curve({"a.csv": bad}, corpus, "standard")
    with pytest.raises(ValueError, match="no scores"):
        nab.score_curve({}, corpus, "standard")


# --------------------------------------------------------------------------
# The published board
# --------------------------------------------------------------------------


@pytest.mark.skipif(not (NAB_DIR / "labels" / "combined_windows.json").is_file(),
                    reason=f"the NAB corpus is not at {NAB_DIR} (set $NAB_DATA_DIR to point elsewhere)")
@pytest.mark.slow
def test_reproduces_the_published_standard_board():
    start = time.perf_counter()
    corpus = nab.load_corpus(NAB_DIR)
    board = nab.published_board(NAB_DIR)
    assert len(corpus.files) == 58 and corpus.n_windows == 116
    for detector in ("numenta", "windowedGaussian", "null"):
        scores = nab.load_scores_csv(NAB_DIR / "results" / f"{detector}_scores.csv.gz", corpus)
        got = nab.normalised_scores(scores, corpus, "standard")["standard"]["score"]
        assert got == pytest.approx(board[detector]["standard"]["score"], abs=0.1), detector
    # random's board entry is its score at NAB's (stale) threshold, below the optimum.
    scores = nab.load_scores_csv(NAB_DIR / "results" / "random_scores.csv.gz", corpus)
    at = nab.normalised_scores(scores, corpus, "standard",
                               thresholds={"standard": board["random"]["standard"]["threshold"]})
    assert at["standard"]["score"] == pytest.approx(board["random"]["standard"]["score"], abs=0.1)
    assert time.perf_counter() - start < 20
