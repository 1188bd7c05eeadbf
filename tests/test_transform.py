"""--transform: series modelled in logs (auto: every series whose values are all positive)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from conftest import TINY, TINY_MODEL, wide_frame, write_frame
from lstmcast import api
from lstmcast.config import ScalerKind, Transform
from lstmcast.data import scaling
from lstmcast.errors import InputError, RunDirError


def test_auto_logs_the_positive_series_only_and_log_names_the_one_that_cannot_be():
    series = [np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 2.0]), np.array([-1.0, 5.0]), np.array([2.0, np.nan])]
    ids = ["up", "zero", "neg", "gap"]
    assert scaling.log_mask(series, ids, Transform.auto, "f.csv").tolist() == [True, False, False, True]
    assert not scaling.log_mask(series, ids, Transform.none, "f.csv").any()
    with pytest.raises(InputError, match=r"f\.csv: series 'zero' has a value of 0 or less.*--transform auto"):
        scaling.log_mask(series, ids, Transform.log, "f.csv")


def test_apply_and_invert_are_exact_inverses_and_leave_plain_series_as_before():
    values = np.array([[3.0, 40.0, 500.0], [-2.0, 0.0, 7.5]])
    log = np.array([[True], [False]])
    center, scale = np.array([[0.0], [1.5]]), np.array([[1.0], [2.0]])
    scaled = scaling.apply(values, center, scale, log)
    np.testing.assert_allclose(scaled[0], np.log(values[0]))
    assert np.array_equal(scaled[1], (values[1] - 1.5) / 2.0)  # bit for bit the affine scaler
    np.testing.assert_allclose(scaling.invert(scaled, center, scale, log), values, rtol=1e-12)


def test_an_overflow_in_logs_stays_not_finite():
    # exp(-inf) is 0: a network that overflowed must not give a forecast of 0 that require_finite lets through.
    out = scaling.invert(np.array([-np.inf, np.inf, np.nan, 800.0, 1.0]), 0.0, 1.0, True)
    assert not np.isfinite(out[:4]).any() and out[4] == pytest.approx(np.e)


def test_log_series_are_not_scaled_further():
    series = [np.array([10.0, 20.0, 40.0]), np.array([0.0, 2.0, 4.0])]
    center, scale = scaling.fit_scalers_of(series, ScalerKind.standard, np.array([True, False]))
    assert (center[0], scale[0]) == (0.0, 1.0)
    assert center[1] == pytest.approx(2.0) and scale[1] == pytest.approx(np.std([0.0, 2.0, 4.0]))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A run on a positive series 'a' and a series 'b' that touches 0."""
    root = tmp_path_factory.mktemp("transform")
    frame = wide_frame(n=120, freq="h", time_col="timestamp", fmt="%Y-%m-%d %H:%M:%S")
    frame["b"] = (frame["b"] - frame["b"].min()).round(3)  # its minimum is exactly 0
    data = write_frame(root / "mixed.csv", frame)
    report = api.train(data, horizon=6, lookback=12, train_config=TINY, run_dir=root / "run", **TINY_MODEL)
    return report.run_dir, data, frame


def test_a_run_records_which_series_are_modelled_in_logs_and_forecasts_them_positive(mixed):
    run_dir, data, _ = mixed
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["train"]["transform"] == "auto"
    by_id = {s["id"]: s for s in meta["series"]}
    assert by_id["a"]["log"] is True and (by_id["a"]["center"], by_id["a"]["scale"]) == (0.0, 1.0)
    assert "log" not in by_id["b"]
    forecast = api.predict(run_dir).forecast
    assert (forecast.loc[forecast["series"] == "a", "forecast"] > 0).all()
    # Read from the CSV the forecast is the one from the stored tails.
    again = api.predict(run_dir, data=data).forecast
    np.testing.assert_allclose(again["forecast"].to_numpy(), forecast["forecast"].to_numpy(), rtol=1e-6)


def test_a_zero_in_the_history_of_a_log_series_is_read_as_a_small_value_and_noted(mixed, tmp_path):
    run_dir, _, frame = mixed
    closed = frame.copy()
    closed.loc[len(closed) - 3, "a"] = 0.0  # one closed day in a series trained positive: the forecast goes on
    low = frame.copy()
    low.loc[len(low) - 3, "a"] = 0.5 * frame["a"].iloc[-12:].drop(len(frame) - 3).min()
    got = api.predict(run_dir, data=write_frame(tmp_path / "zero.csv", closed))
    want = api.predict(run_dir, data=write_frame(tmp_path / "low.csv", low)).forecast
    a = got.forecast["series"] == "a"
    np.testing.assert_allclose(got.forecast.loc[a, "forecast"], want.loc[a, "forecast"], rtol=1e-12)
    assert any("read as half their smallest positive value there: ['a']" in n for n in got.notes)
    dead = frame.copy()
    dead.loc[len(dead) - 12:, "a"] = 0.0
    with pytest.raises(InputError, match="series 'a' has no positive value in its last 12 points.*--transform none"):
        api.predict(run_dir, data=write_frame(tmp_path / "dead.csv", dead))


def test_detect_flags_a_drop_to_zero_of_a_log_series(mixed, tmp_path):
    run_dir, _, frame = mixed
    dropped = frame.copy()
    dropped.loc[100, "a"] = 0.0
    path = write_frame(tmp_path / "drop.csv", dropped)
    rows = api.detect(run_dir, path).frame
    a = rows[rows["series"] == "a"].set_index("timestamp")
    hit = a.loc[frame.loc[100, "timestamp"]]
    assert hit["value"] == 0.0 and bool(hit["anomaly"]) and hit["score"] > 0.99
    assert np.isfinite(a["expected"].to_numpy()).all()  # the network read the 0 as a small positive value


def test_detect_scores_a_dip_to_half_of_a_log_series_as_a_spike_to_double(mixed, tmp_path):
    # Several series: a series modelled in logs has its residuals in logs, so halving a value is as
    # anomalous as doubling it; the band stays the set of values scoring at most the level.
    run_dir, _, frame = mixed
    t = 100
    base = api.detect(run_dir, write_frame(tmp_path / "base.csv", frame)).frame
    expected = base[base["series"] == "a"].set_index("timestamp").loc[frame.loc[t, "timestamp"], "expected"]
    scores = {}
    for name, factor in (("dip", 0.5), ("spike", 2.0)):
        changed = frame.copy()
        changed.loc[t, "a"] = expected * factor
        rows = api.detect(run_dir, write_frame(tmp_path / f"{name}.csv", changed)).frame
        hit = rows[rows["series"] == "a"].set_index("timestamp").loc[frame.loc[t, "timestamp"]]
        assert hit["expected"] == pytest.approx(expected, rel=1e-9)  # the value itself is not read by its forecast
        scores[name] = hit["score"]
        scored = rows[rows["score"].notna()]
        outside = (scored["value"] < scored["lower"]) | (scored["value"] > scored["upper"])
        assert (outside == scored["anomaly"]).all()
    assert scores["dip"] == pytest.approx(scores["spike"], abs=1e-9) and scores["dip"] > 0.99


def test_transform_none_gives_the_scalers_of_before(mixed, tmp_path):
    _, data, _ = mixed
    report = api.train(data, horizon=6, lookback=12, train_config=replace(TINY, transform=Transform.none),
                       run_dir=tmp_path / "run", **TINY_MODEL)
    meta = json.loads((report.run_dir / "run.json").read_text())
    assert not any("log" in s for s in meta["series"]) and all(s["scale"] != 1.0 for s in meta["series"])


def test_transform_log_on_a_series_with_a_zero_is_refused(mixed, tmp_path):
    _, data, _ = mixed
    with pytest.raises(InputError, match="series 'b' has a value of 0 or less"):
        api.train(data, horizon=6, lookback=12, train_config=replace(TINY, transform=Transform.log),
                  run_dir=tmp_path / "run", **TINY_MODEL)
    assert not (tmp_path / "run").exists()


def test_runs_written_before_transforms_read_as_none(mixed, tmp_path):
    run_dir, _, _ = mixed
    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    meta = json.loads((old / "run.json").read_text())
    del meta["train"]["transform"]
    (old / "run.json").write_text(json.dumps(meta))
    from lstmcast.run.rundir import load_run

    assert load_run(old).record.train.transform is Transform.none


@pytest.mark.parametrize("value, field", [("yes", "log"), (True, "tail")])
def test_a_spoilt_log_field_names_the_field(mixed, tmp_path, value, field):
    run_dir, _, _ = mixed
    spoilt = tmp_path / "spoilt"
    shutil.copytree(run_dir, spoilt)
    meta = json.loads((spoilt / "run.json").read_text())
    b = next(s for s in meta["series"] if s["id"] == "b")
    b["log"] = value  # b's tail may hold 0: no logarithm
    b["tail"] = [0.0] + b["tail"][1:]
    (spoilt / "run.json").write_text(json.dumps(meta))
    with pytest.raises(RunDirError, match=rf"series\[1\] \('b'\)\.{field}"):
        api.predict(spoilt)


def test_detect_refuses_a_log_series_without_a_positive_value_in_its_first_lookback(mixed, tmp_path):
    run_dir, _, frame = mixed
    dead = frame.copy()
    dead.loc[:11, "a"] = 0.0  # the first 12 (the lookback) hold no positive value to read a 0 as
    with pytest.raises(InputError, match="series 'a' has no positive value in its first 12 points"):
        api.detect(run_dir, write_frame(tmp_path / "dead.csv", dead))
