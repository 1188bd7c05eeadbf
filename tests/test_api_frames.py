"""The Python API as a notebook uses it: the names import as functions, DataFrames go in
wherever a file does, and every result comes back as a long DataFrame with id and time columns."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from lstmcast import api
from lstmcast.errors import InputError
from conftest import REPO, TINY, TINY_MODEL, long_frame, seasonal, wide_frame


def test_api_names_are_the_functions_whatever_was_imported_before(subprocess_env):
    code = (
        "import lstmcast.train.loop, lstmcast.evaluate.folds, lstmcast.detect.workflow\n"
        "from lstmcast import train, predict, evaluate, backtest, detect, resume\n"
        "import lstmcast, lstmcast.api as api\n"
        "from lstmcast.train import workflow\n"
        "assert [train, predict, evaluate, backtest, detect, resume] == "
        "[api.train, api.predict, api.evaluate, api.backtest, api.detect, api.resume]\n"
        "assert lstmcast.train is api.train and lstmcast.train is api.train and lstmcast.evaluate is api.evaluate\n"
        "assert workflow.__name__ == 'lstmcast.train.workflow'\n"
        "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env, cwd=REPO)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr


@pytest.fixture(scope="module")
def long_run(tmp_path_factory):
    """A run trained on a long DataFrame of three series, with the ids in a column 'store'."""
    frame = long_frame(ids=("north", "south", "east"), n=70).rename(columns={"id": "store"})
    run_dir = tmp_path_factory.mktemp("frames") / "run"
    report = api.train(frame, horizon=6, lookback=12, train_config=TINY, run_dir=run_dir, **TINY_MODEL)
    return frame, report


def test_train_on_a_dataframe_detects_the_layout_and_writes_no_data_path(long_run):
    frame, report = long_run
    assert any("long layout: id column 'store'" in n for n in report.notes)
    keys = [line.split(" = ")[0] for line in (report.run_dir / "config.toml").read_text().splitlines()]
    assert "data" not in keys and "full_data" in keys  # a frame is no file to train again from
    assert list(frame.columns) == ["store", "date", "value"]  # the caller's frame is untouched


def test_predict_evaluate_backtest_return_long_frames(long_run):
    frame, report = long_run
    forecast = api.predict(report.run_dir, frame).forecast
    assert list(forecast.columns[:3]) == ["store", "date", "forecast"] and len(forecast) == 3 * 6
    assert forecast["date"].min() == pd.Timestamp(frame["date"].max()) + pd.Timedelta(days=1)

    scores = api.evaluate(report.run_dir, frame)
    assert set(scores) >= {"overall", "baselines", "series"} and "forecast" not in scores  # the dict stays JSON
    assert list(scores.metrics.columns) == ["store", "cutoff", "mase", "smape", "mape", "mae", "rmse"]
    assert scores.metrics["mase"].tolist() == [scores["series"][s]["mase"] for s in ("north", "south", "east")]
    assert list(scores.forecasts.columns) == ["store", "date", "forecast", "actual"] and len(scores.forecasts) == 18
    np.testing.assert_array_equal(scores.forecasts["actual"], frame.groupby("store", sort=False)["value"]
                                  .apply(lambda v: v.iloc[-6:]).to_numpy())

    folds = api.backtest(report.run_dir, frame, folds=2)
    assert list(folds.forecasts.columns) == ["store", "date", "fold", "forecast", "actual"]
    assert len(folds.forecasts) == 2 * 3 * 6 and sorted(folds.forecasts["fold"].unique()) == [1, 2]
    first = folds.metrics[folds.metrics["fold"] == 1]
    assert (first["cutoff"] == pd.Timestamp(frame["date"].max()) - pd.Timedelta(days=12)).all()


def test_detect_takes_a_frame_and_says_why_nothing_was_scored(trained_run):
    data = pd.read_csv(trained_run.data)
    report = api.detect(trained_run.run_dir, data.head(32)[["timestamp", "a"]])
    assert report.scored == 0 and list(report.frame.columns[:3]) == ["series", "timestamp", "value"]
    assert any("no point can be scored" in n and "at least 33 points" in n for n in report.notes)
    report = api.detect(trained_run.run_dir, data.head(33)[["timestamp", "a"]])
    assert report.scored == 1 and not any("scored" in n for n in report.notes)  # 33 is the least, exactly


def test_dataframe_errors_are_the_file_errors_naming_the_dataframe(trained_run):
    words = pd.DataFrame({"date": pd.date_range("2024-01-01", periods=30), "city": ["x"] * 30})
    with pytest.raises(InputError, match=r"^DataFrame: no numeric column to forecast \(columns: \['date', 'city'\]\)"):
        api.train(words, horizon=3)
    with pytest.raises(InputError, match=r"^DataFrame: duplicate column names \['a'\]"):
        api.predict(trained_run.run_dir, pd.DataFrame([[1, 2]], columns=["a", "a"]))


def test_a_time_index_and_a_read_csv_index_column_read_like_the_file(tmp_path):
    frame = wide_frame(n=60, fmt=None)
    frame.to_csv(tmp_path / "w.csv")
    from lstmcast.data.series import load_series

    as_file = load_series(tmp_path / "w.csv")
    for given in (frame.set_index("date"), pd.read_csv(tmp_path / "w.csv")):  # the second has 'Unnamed: 0'
        got = load_series(given)
        assert got.ids == as_file.ids == ["a", "b"] and got.freq == "D"
        np.testing.assert_array_equal(got.values[0], as_file.values[0])


def test_validation_mape_skips_zeros_as_evaluate_does(tmp_path):
    """Validation actuals are the values as read: a 0 is skipped by MAPE (it was 1e-7 from the float32
    scaled array, and MAPE went to 1.6e9 %). The last horizon is both training's validation window
    and evaluate's held-out window: the same forecasts, the same MAPE."""
    n = 90
    rain = np.clip(seasonal(n, level=0.5, amp=2.0, seed=3), 0, None).round(1)  # counts with many zeros
    rain[-4:-2] = 0.0
    frame = pd.DataFrame({"date": pd.date_range("2024-01-01", periods=n), "rain": rain,
                          "temp": seasonal(n, level=15.0, seed=4).round(2)})
    frame.to_csv(tmp_path / "weather.csv", sep=";", decimal=",", index=False)  # Excel-style
    report = api.train(tmp_path / "weather.csv", horizon=6, lookback=12, train_config=TINY,
                       run_dir=tmp_path / "run", **TINY_MODEL)
    validation = report.metrics["validation"]
    held_out = api.evaluate(report.run_dir, tmp_path / "weather.csv", test_size=6)
    assert validation["mape"] < 1e4
    assert validation["mape"] == pytest.approx(held_out["overall"]["mape"], rel=1e-6)
    assert validation["mase"] == pytest.approx(held_out["overall"]["mase"], rel=1e-6)


def test_frames_go_out_through_the_door(long_run, tmp_path):
    """Issue 29's door and issue 32's frames together: every *_to_file takes a DataFrame; the
    metrics JSON is the Evaluation's dict, without its DataFrames; the run's own files are
    refused whatever the data is."""
    import json

    frame, report = long_run
    run = report.run_dir
    result, written = api.evaluate_to_file(run, frame, tmp_path / "e.json", keep_forecasts=True)
    assert written == tmp_path / "e.json" and isinstance(result, api.Evaluation)
    assert len(result.metrics) == 3 and len(result.forecasts) == 18  # the DataFrames stay on the result
    stored = json.loads(written.read_text())
    assert set(stored) >= {"overall", "baselines", "series"}
    assert not set(stored) & {"forecast", "history", "per_series", "metrics", "forecasts", "notes"}
    assert stored["series"] == json.loads(json.dumps(result["series"]))

    folds, written = api.evaluate_to_file(run, frame, tmp_path / "b.json", backtest=True, folds=2)
    assert sorted(folds.metrics["fold"].unique()) == [1, 2] and "folds" in json.loads(written.read_text())

    with pytest.raises(InputError, match="the run's own metrics.json"):
        api.evaluate_to_file(run, frame, run / "metrics.json")
    with pytest.raises(InputError, match="the run's own run.json"):
        api.detect_to_file(run, frame, run / "run.json")
    with pytest.raises(InputError, match="the run's own weights.safetensors"):
        api.predict_to_file(run, frame, output=run / "weights.safetensors")

    found, target = api.detect_to_file(run, frame, tmp_path / "d.csv", keep_series=2)
    assert target == tmp_path / "d.csv" and found.frame["store"].nunique() == 2
    rows = pd.read_csv(target)
    assert len(rows) == 3 * (70 - 12) and rows["score"].notna().sum() == found.scored  # every point after the lookback
    _, written_fc, target = api.predict_to_file(run, frame, output=tmp_path / "p.csv")
    assert written_fc.rows == 18 and list(pd.read_csv(target).columns[:3]) == ["store", "date", "forecast"]


def test_train_on_a_frame_checks_the_training_options_first(tmp_path):
    from dataclasses import replace

    frame = wide_frame(n=60)
    for bad, match in ((replace(TINY, time_limit=float("inf")), "--time-limit inf"),
                       (replace(TINY, ensemble=1_000_000), "--ensemble 1000000")):
        with pytest.raises(InputError, match=match):
            api.train(frame, horizon=3, train_config=bad, run_dir=tmp_path / "run")
    with pytest.raises(InputError, match="--threads 0"):
        api.train(frame, horizon=3, train_config=TINY, run_dir=tmp_path / "run", threads=0)
    assert not (tmp_path / "run").exists()  # refused before any work


@pytest.mark.skipif(sys.platform == "win32", reason="pipes")
def test_a_pipe_of_a_pandas_export_is_read_once_and_its_index_dropped_with_a_note(tmp_path):
    import os
    import threading

    from lstmcast.data.series import load_series

    frame = wide_frame(n=60)
    frame.to_csv(tmp_path / "w.csv")  # the index column of df.to_csv()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    feeder = threading.Thread(target=lambda: fifo.write_bytes((tmp_path / "w.csv").read_bytes()))
    feeder.start()
    try:
        piped = load_series(fifo)
    finally:
        feeder.join(timeout=10)
    as_file = load_series(tmp_path / "w.csv")
    assert piped.ids == as_file.ids == ["a", "b"]
    np.testing.assert_array_equal(piped.values[1], as_file.values[1])
    assert [n for n in piped.notes if "Unnamed: 0" in n or "index" in n] and piped.notes == as_file.notes
