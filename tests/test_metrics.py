"""Accuracy metrics and naive baselines on hand-computed examples."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lstmcast.evaluate.metrics import METRICS, mase_scale, naive, overall, seasonal_naive, series_metrics

ACTUAL = np.array([1.0, 2.0, 0.0, 4.0])
FORECAST = np.array([2.0, 2.0, 1.0, 2.0])  # errors -1, 0, -1, 2


def test_hand_computed_example():
    m = series_metrics(ACTUAL, FORECAST, scale=2.0)
    assert set(m) == set(METRICS)
    assert m["mae"] == pytest.approx(1.0)  # (1 + 0 + 1 + 2) / 4
    assert m["rmse"] == pytest.approx(math.sqrt(1.5))  # sqrt((1 + 0 + 1 + 4) / 4)
    assert m["mape"] == pytest.approx(50.0)  # zero actual skipped: (1/1 + 0/2 + 2/4) / 3
    assert m["smape"] == pytest.approx(100 * (2 / 3 + 0 + 2 / 1 + 4 / 6) / 4)
    assert m["mase"] == pytest.approx(0.5)  # mae 1 / scale 2


def test_perfect_forecast():
    m = series_metrics(ACTUAL, ACTUAL.copy(), scale=1.0)
    assert m == {"mae": 0.0, "rmse": 0.0, "mape": 0.0, "smape": 0.0, "mase": 0.0}


def test_smape_of_two_zeros_is_zero():
    m = series_metrics(np.array([0.0, 2.0]), np.array([0.0, 1.0]), scale=None)
    assert m["smape"] == pytest.approx(100 * (0 + 2 / 3) / 2)


def test_mape_none_when_every_actual_is_zero():
    m = series_metrics(np.zeros(3), np.array([1.0, -1.0, 0.0]), scale=1.0)
    assert m["mape"] is None
    assert m["smape"] == pytest.approx(200 * 2 / 3)


def test_negative_values():
    m = series_metrics(np.array([-2.0, -4.0]), np.array([-1.0, -5.0]), scale=1.0)
    assert m["mae"] == pytest.approx(1.0)
    assert m["mape"] == pytest.approx(100 * (0.5 + 0.25) / 2)


@pytest.mark.parametrize(("history", "season", "expected"), [
    ([1, 3, 2, 5], 1, 2.0),  # |2|, |-1|, |3|
    ([1, 3, 2, 5], 2, 1.5),  # |2 - 1|, |5 - 3|
    ([1, 3, 2, 5, 4, 9], 3, 4.0),  # |5 - 1|, |4 - 3|, |9 - 2|
])
def test_mase_scale(history, season, expected):
    assert mase_scale(np.array(history, dtype=float), season) == pytest.approx(expected)


def test_mase_scale_falls_back_to_naive_when_history_is_short():
    h = np.array([1.0, 3.0, 2.0])
    assert mase_scale(h, 12) == pytest.approx(1.5)


@pytest.mark.parametrize(("history", "season"), [
    (np.full(10, 3.0), 1),  # constant: the naive forecast is perfect in sample
    (np.tile([1.0, 2.0], 5), 2),  # exactly periodic: the seasonal naive is perfect
    (np.array([5.0]), 1),  # one point: no in-sample error at all
    (np.array([]), 1),
])
def test_undefined_mase_is_none_not_nan(history, season):
    assert mase_scale(history, season) is None
    m = series_metrics(np.array([1.0, 2.0]), np.array([1.5, 2.5]), mase_scale(history, season))
    assert m["mase"] is None
    json.dumps(m, allow_nan=False)  # what evaluate --output writes


def test_overall_skips_undefined():
    rows = [
        {"mae": 1.0, "rmse": 2.0, "mape": None, "smape": 10.0, "mase": None},
        {"mae": 3.0, "rmse": 4.0, "mape": 20.0, "smape": 30.0, "mase": None},
    ]
    assert overall(rows) == {"mae": 2.0, "rmse": 3.0, "mape": 20.0, "smape": 20.0, "mase": None}
    assert overall([]) == {name: None for name in METRICS}


def test_naive():
    np.testing.assert_array_equal(naive(np.array([4.0, 7.0, 5.0]), 3), [5.0, 5.0, 5.0])


def test_seasonal_naive():
    history = np.array([9.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    np.testing.assert_array_equal(seasonal_naive(history, 5, 3), [4.0, 5.0, 6.0, 4.0, 5.0])
    np.testing.assert_array_equal(seasonal_naive(history, 2, 3), [4.0, 5.0])


@pytest.mark.parametrize("season", [1, 0, 10])
def test_seasonal_naive_falls_back_to_naive(season):
    history = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(seasonal_naive(history, 4, season), [3.0] * 4)
