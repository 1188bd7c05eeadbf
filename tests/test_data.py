"""Loading CSVs: layouts, detection, frequency, gaps, and every validation error."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SAMPLE_DATA, TINY, TINY_MODEL, long_frame, seasonal, wide_frame, write_frame

from lstmcast import api
from lstmcast.config import DataConfig, Fill
from lstmcast.data.series import load_series
from lstmcast.errors import InputError
from lstmcast.data.frequency import default_horizon, infer_freq, normalize_freq, season_length


def load_error(path: Path, **cfg) -> str:
    with pytest.raises(InputError) as info:
        load_series(path, DataConfig(**cfg))
    message = str(info.value)
    assert str(path) in message, f"the message should name the file: {message}"
    return message


def daily_csv(write_csv, name: str, values: list[str], start: str = "2024-01-01") -> Path:
    times = pd.date_range(start, periods=len(values), freq="D").strftime("%Y-%m-%d")
    return write_csv(name, "date,a\n" + "".join(f"{t},{v}\n" for t, v in zip(times, values)))


# --- layouts and detection ----------------------------------------------------------------


def test_wide_with_date_column(wide_csv):
    s = load_series(wide_csv)
    assert (s.layout, s.time_kind, s.time_col, s.freq) == ("wide", "datetime", "date", "D")
    assert s.ids == ["a", "b"] and s.target_cols == ["a", "b"]
    assert [len(v) for v in s.values] == [80, 80]
    assert all(v.dtype == np.float64 for v in s.values)
    frame = pd.read_csv(wide_csv)
    np.testing.assert_allclose(s.values[1], frame["b"].to_numpy())
    assert s.starts[0] == pd.Timestamp("2024-01-01")
    assert "wide layout: time column 'date', series ['a', 'b']" in s.notes
    assert "frequency D (inferred)" in s.notes


def test_long_layout_detected(long_csv):
    s = load_series(long_csv)
    assert (s.layout, s.id_col, s.time_col, s.target_cols) == ("long", "id", "date", ["value"])
    assert s.ids == ["x", "y"]
    frame = pd.read_csv(long_csv)
    np.testing.assert_allclose(s.values[1], frame.loc[frame["id"] == "y", "value"].to_numpy())
    assert any("long layout" in n and "'id'" in n and "'date'" in n and "'value'" in n for n in s.notes), s.notes


def test_long_layout_with_explicit_columns(long_csv):
    s = load_series(long_csv, DataConfig(id_col="id", time_col="date", target=("value",)))
    assert s.layout == "long" and s.ids == ["x", "y"]


def test_long_layout_rows_interleaved(tmp_path):
    frame = long_frame().sort_values(["date", "id"])  # x, y, x, y, ...
    s = load_series(write_frame(tmp_path / "mixed.csv", frame))
    assert s.ids == ["x", "y"] and [len(v) for v in s.values] == [80, 80]
    assert not any("sorted" in n for n in s.notes), "rows of each series were already in time order"


def test_no_time_column(notime_csv):
    s = load_series(notime_csv)
    assert (s.layout, s.time_kind, s.freq, s.time_col) == ("wide", "row", None, "step")
    assert s.ids == ["a", "b"]
    assert any("no time column" in n and "row order" in n for n in s.notes), s.notes


def test_integer_time_column(inttime_csv):
    s = load_series(inttime_csv)
    assert (s.time_kind, s.time_col, s.step, s.freq) == ("integer", "period", 5, None)
    assert s.ids == ["a"] and s.starts == [100]
    assert s.times_after(0, 80, 3) == [500, 505, 510]
    assert any("time column 'period'" in n for n in s.notes), s.notes


def test_integer_time_gap_is_filled(write_csv):
    path = write_csv("ints.csv", "period,a\n" + "".join(f"{t},{t}\n" for t in (0, 2, 4, 8, 10)))
    s = load_series(path)
    assert s.step == 2
    np.testing.assert_allclose(s.values[0], [0, 2, 4, 6, 8, 10])
    assert any("filled 1 " in n for n in s.notes), s.notes


def test_time_column_detected_by_content(write_csv):
    # "when" is not a known time name: the content decides.
    path = write_csv("when.csv", "value,when\n1,2024-01-01\n2,2024-01-02\n3,2024-01-03\n4,2024-01-04\n")
    s = load_series(path)
    assert s.time_col == "when" and s.ids == ["value"] and s.freq == "D"


def test_explicit_time_col_and_target(wide_csv):
    s = load_series(wide_csv, DataConfig(time_col="date", target=("b",)))
    assert s.ids == ["b"] and s.time_col == "date"


def test_semicolon_decimal_comma(write_csv):
    path = write_csv("eu.csv", "date;a\n2024-01-01;1,5\n2024-01-02;2,5\n2024-01-03;3,5\n")
    s = load_series(path)
    np.testing.assert_allclose(s.values[0], [1.5, 2.5, 3.5])


_TEXT = "date,a\r\n" + "".join(f"2024-01-{d:02d},{d}\r\n" for d in range(1, 11))


@pytest.mark.parametrize(("name", "data"), [
    ("crlf.csv", _TEXT.encode()),
    ("bom.csv", b"\xef\xbb\xbf" + _TEXT.encode()),
    ("utf16.csv", _TEXT.encode("utf-16")),
    ("tabs.tsv", _TEXT.replace(",", "\t").encode()),
])
def test_encodings_and_delimiters(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    s = load_series(path)
    assert s.ids == ["a"] and s.time_col == "date" and s.freq == "D"
    np.testing.assert_allclose(s.values[0], np.arange(1, 11))


def test_non_utf8_file_names_file(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(("date,caf\xe9\n" + "".join(f"2024-01-{d:02d},{d}\n" for d in range(1, 11))).encode("latin-1"))
    assert "UTF-8" in load_error(path)


# --- frequency ----------------------------------------------------------------------------


@pytest.mark.parametrize(("freq", "time_col", "fmt", "expected"), [
    ("h", "timestamp", "%Y-%m-%d %H:%M:%S", "h"),
    ("D", "date", "%Y-%m-%d", "D"),
    ("MS", "month", "%Y-%m", "MS"),
    ("W-SUN", "week", "%Y-%m-%d", "W-SUN"),
    ("W-WED", "date", "%Y-%m-%d", "W-WED"),
    ("15min", "time", "%Y-%m-%d %H:%M", "15min"),
])
def test_frequency_inferred(tmp_path, freq, time_col, fmt, expected):
    start = "2024-01-03" if freq == "W-WED" else "2024-01-07"
    path = write_frame(tmp_path / "f.csv", wide_frame(n=30, freq=freq, start=start, time_col=time_col, fmt=fmt))
    s = load_series(path)
    assert s.freq == expected
    assert f"frequency {expected} (inferred)" in s.notes


def test_monthly_yyyy_mm_continues_by_month(monthly_csv):
    s = load_series(monthly_csv)
    assert s.freq == "MS"
    assert s.times_after(0, 60, 2) == [pd.Timestamp("2025-01-01"), pd.Timestamp("2025-02-01")]


def test_frequency_inferred_despite_gaps():
    index = pd.DatetimeIndex(pd.date_range("2024-01-01", periods=40, freq="h").delete([5, 17, 30]))
    assert infer_freq(index) == "h"
    months = pd.DatetimeIndex(pd.date_range("2020-01-01", periods=30, freq="MS").delete([4, 9]))
    assert infer_freq(months) == "MS"


@pytest.mark.parametrize(("old", "new"), [
    ("H", "h"), ("h", "h"), ("M", "ME"), ("ME", "ME"), ("T", "min"), ("15T", "15min"), ("15min", "15min"),
    ("A", "YE-DEC"), ("Y", "YE-DEC"), ("Q", "QE-DEC"), ("2H", "2h"), ("D", "D"), ("W", "W-SUN"), ("MS", "MS"),
])
def test_normalize_freq_old_and_new_aliases(old, new):
    assert normalize_freq(old) == new


def test_normalize_freq_unknown_names_value():
    with pytest.raises(InputError, match=r"--freq 'fortnightly'"):
        normalize_freq("fortnightly")


@pytest.mark.parametrize("alias", ["H", "h"])
def test_freq_option_hourly_aliases(hourly_csv, alias):
    s = load_series(hourly_csv, DataConfig(freq=alias))
    assert s.freq == "h" and [len(v) for v in s.values] == [120, 120]
    assert not any("inferred" in n for n in s.notes)


@pytest.mark.parametrize("alias", ["M", "ME"])
def test_freq_option_month_end_aliases(tmp_path, alias):
    path = write_frame(tmp_path / "me.csv", wide_frame(n=24, freq="ME", time_col="month"))
    s = load_series(path, DataConfig(freq=alias))
    assert s.freq == "ME" and len(s.values[0]) == 24
    assert s.times_after(0, 24, 1) == [pd.Timestamp("2026-01-31")]


def test_freq_option_off_grid_names_series(hourly_csv):
    message = load_error(hourly_csv, freq="D")
    assert "'a'" in message and "off the D grid" in message


def test_season_and_default_horizon():
    assert [season_length(f) for f in ("h", "D", "W-SUN", "MS", "ME", "QS", "YS", "30min", None)] == \
        [24, 7, 52, 12, 12, 4, 1, 48, 1]
    assert [default_horizon(f) for f in ("h", "D", "W-SUN", "MS", "QS", "YS", None)] == [48, 14, 13, 12, 8, 6, 12]


# --- gaps, missing values, order ------------------------------------------------------------


@pytest.fixture
def gaps_csv(write_csv) -> Path:
    # Daily values 0..9 with 2024-01-04 (3) and 2024-01-07 (6) missing.
    times = pd.date_range("2024-01-01", periods=10, freq="D")
    rows = [(t, float(i)) for i, t in enumerate(times) if i not in (3, 6)]
    return write_csv("gaps.csv", "date,a\n" + "".join(f"{t:%Y-%m-%d},{v}\n" for t, v in rows))


@pytest.mark.parametrize(("fill", "expected"), [
    (Fill.interpolate, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
    (Fill.ffill, [0, 1, 2, 2, 4, 5, 5, 7, 8, 9]),
    (Fill.zero, [0, 1, 2, 0, 4, 5, 0, 7, 8, 9]),
])
def test_gaps_filled(gaps_csv, fill, expected):
    s = load_series(gaps_csv, DataConfig(fill=fill))
    assert s.freq == "D"
    np.testing.assert_allclose(s.values[0], expected)
    assert f"filled 2 missing values or gaps ({fill.value})" in s.notes


def test_gaps_refused_with_fill_error(gaps_csv):
    message = load_error(gaps_csv, fill=Fill.error)
    assert "'a'" in message and "2 missing values or gaps" in message and "--fill" in message


def test_empty_cells_count_as_missing(write_csv):
    path = write_csv("holes.csv", "date,a,b\n2024-01-01,1,10\n2024-01-02,,20\n2024-01-03,3,\n2024-01-04,4,40\n")
    s = load_series(path)
    np.testing.assert_allclose(s.values[0], [1, 2, 3, 4])
    np.testing.assert_allclose(s.values[1], [10, 20, 30, 40])
    assert "filled 2 missing values or gaps (interpolate)" in s.notes


def test_all_missing_series_names_it(write_csv):
    path = write_csv("allnan.csv", "date,a,b\n2024-01-01,1,\n2024-01-02,2,\n2024-01-03,3,\n")
    message = load_error(path, target=("a", "b"))
    assert "'b'" in message and "no values" in message


def test_unsorted_rows_are_sorted(tmp_path):
    frame = wide_frame(n=20)
    path = write_frame(tmp_path / "unsorted.csv", frame.iloc[::-1])
    s = load_series(path)
    np.testing.assert_allclose(s.values[0], frame["a"].to_numpy())
    assert s.starts[0] == pd.Timestamp("2024-01-01")
    assert "rows were not in time order: sorted them" in s.notes


def test_timezone_aware_timestamps_become_utc(write_csv):
    rows = "".join(f"2024-03-{d:02d}T00:00:00+01:00,{d}\n" for d in range(1, 6))
    s = load_series(write_csv("tz.csv", "timestamp,a\n" + rows))
    assert s.freq == "D" and s.starts[0] == pd.Timestamp("2024-02-29 23:00:00")


# --- validation errors: each names the file and the column / line / series -------------------


def test_missing_file(tmp_path):
    message = load_error(tmp_path / "nope.csv")
    assert "not found" in message


def test_directory(tmp_path):
    message = load_error(tmp_path)
    assert "directory" in message


def test_empty_file(write_csv):
    assert "empty" in load_error(write_csv("empty.csv", ""))


def test_header_only(write_csv):
    assert "no data rows" in load_error(write_csv("header.csv", "date,a\n"))


def test_no_numeric_column(write_csv):
    path = write_csv("text.csv", "date,name\n2024-01-01,foo\n2024-01-02,bar\n2024-01-03,baz\n")
    message = load_error(path)
    assert "no numeric column" in message and "'name'" in message


def test_duplicate_column_names(write_csv):
    path = write_csv("dupcol.csv", "date,a,a\n2024-01-01,1,2\n2024-01-02,3,4\n2024-01-03,5,6\n")
    message = load_error(path)
    assert "duplicate column" in message and "'a'" in message


@pytest.mark.parametrize(("flag", "cfg"), [
    ("--target", {"target": ("zz",)}),
    ("--time-col", {"time_col": "zz"}),
    ("--id-col", {"id_col": "zz"}),
])
def test_named_column_absent_lists_columns(wide_csv, flag, cfg):
    message = load_error(wide_csv, **cfg)
    assert "'zz'" in message and flag in message
    assert "['date', 'a', 'b']" in message, "the message should list the existing columns"


def _bad_timestamp_csv(write_csv, bad_row: int, n: int = 70) -> Path:
    times = list(pd.date_range("2024-01-01", periods=n, freq="D").strftime("%Y-%m-%d"))
    times[bad_row] = "2024-13-45"
    return write_csv("badtime.csv", "date,a\n" + "".join(f"{t},{i}\n" for i, t in enumerate(times)))


def test_unparseable_timestamp_with_time_col_names_line(write_csv):
    path = _bad_timestamp_csv(write_csv, bad_row=2)
    message = load_error(path, time_col="date")
    assert "'date'" in message and "line 4" in message and "'2024-13-45'" in message


def test_unparseable_timestamp_detected_column_names_line(write_csv):
    path = _bad_timestamp_csv(write_csv, bad_row=60)  # past the rows sampled for detection
    message = load_error(path)
    assert "'date'" in message and "line 62" in message and "'2024-13-45'" in message


def test_unparseable_timestamp_early_row_names_line(write_csv):
    path = _bad_timestamp_csv(write_csv, bad_row=2)
    message = load_error(path)
    assert "'date'" in message and "line 4" in message


def test_missing_timestamp_names_line(write_csv):
    path = write_csv("notime.csv", "date,a\n2024-01-01,1\n,2\n2024-01-03,3\n")
    message = load_error(path, time_col="date")
    assert "'date'" in message and "line 3" in message


def test_duplicate_timestamp_wide(write_csv):
    path = write_csv("dup.csv", "date,a\n2024-01-01,1\n2024-01-02,2\n2024-01-02,3\n2024-01-03,4\n")
    message = load_error(path)
    assert "duplicate timestamp 2024-01-02" in message and "'date'" in message and "line 4" in message


def test_duplicate_timestamp_long_names_series(write_csv):
    path = write_csv("duplong.csv", "id,date,v\nx,2024-01-01,1\nx,2024-01-02,2\nx,2024-01-03,2\n"
                                    "y,2024-01-01,1\ny,2024-01-02,3\ny,2024-01-02,3\n")
    message = load_error(path)
    assert "series 'y'" in message and "duplicate timestamp 2024-01-02" in message and "line 7" in message


def test_missing_series_id_names_line(write_csv):
    path = write_csv("noid.csv", "id,date,v\nx,2024-01-01,1\n,2024-01-02,2\nx,2024-01-03,3\n")
    message = load_error(path, id_col="id")
    assert "'id'" in message and "line 3" in message


def test_non_numeric_value_names_column_and_line(tmp_path):
    frame = wide_frame(n=20).astype({"b": str})
    frame.loc[5, "b"] = "12,5kg"
    message = load_error(write_frame(tmp_path / "nonnum.csv", frame))
    assert "'b'" in message and "line 7" in message and "'12,5kg'" in message


def test_non_numeric_value_with_target(tmp_path):
    frame = wide_frame(n=20).astype({"a": str})
    frame.loc[0, "a"] = "n/a?"
    message = load_error(write_frame(tmp_path / "nonnum.csv", frame), target=("a",))
    assert "'a'" in message and "line 2" in message


@pytest.mark.parametrize("token", ["inf", "-inf", "Infinity", "1e400"])
def test_infinite_value_names_column_and_line(write_csv, token):
    path = daily_csv(write_csv, "inf.csv", ["1", "2", token, "4", "5"])
    message = load_error(path)
    assert "'a'" in message and "line 4" in message and "infinite" in message


def test_a_short_series_is_padded_named_and_forecast(tmp_path):
    frame = pd.concat([
        pd.DataFrame({"id": "long_one", "date": pd.date_range("2024-01-01", periods=60).strftime("%Y-%m-%d"),
                      "value": seasonal(60)}),
        pd.DataFrame({"id": "stub", "date": pd.date_range("2024-01-01", periods=10).strftime("%Y-%m-%d"),
                      "value": seasonal(10)}),
    ])
    path = write_frame(tmp_path / "short.csv", frame)
    # daily: horizon 14, validation 14; 'stub' has 10 points, under 14 + 14 + 3: forecast, not trained on
    report = api.train(path, train_config=TINY, run_dir=tmp_path / "run", **TINY_MODEL)
    note = next(n for n in report.notes if "padded" in n)
    assert "'stub'" in note and "the shortest has 10 points" in note and "under 31 points" in note
    forecast = api.predict(report.run_dir).forecast
    assert set(forecast["id"]) == {"long_one", "stub"} and forecast["forecast"].notna().all()
    # a given lookback longer than 'stub' pads it too
    report = api.train(path, lookback=20, horizon=5, train_config=TINY, run_dir=tmp_path / "run2", **TINY_MODEL)
    assert any("'stub'" in n for n in report.notes)


def test_wide_file_too_short(tmp_path):
    path = write_frame(tmp_path / "tiny.csv", wide_frame(n=20))
    with pytest.raises(InputError, match=r"no series is long enough to train on \(the longest, 'a', has 20 points\); "
                                         r"at least one needs 31"):
        api.train(path, train_config=TINY, run_dir=tmp_path / "run", **TINY_MODEL)
    assert not (tmp_path / "run").exists()


# --- awkward values train and predict without NaN ------------------------------------------------


@pytest.mark.parametrize(("name", "values"), [
    ("constant", np.full(70, 42.0)),
    ("zeros", np.zeros(70)),
    ("huge", 1e12 * (1 + 0.1 * np.sin(np.arange(70) / 2))),
    ("tiny", 1e-9 * (1 + 0.1 * np.sin(np.arange(70) / 2))),
    ("negative", -500 + 20 * np.sin(np.arange(70) / 2)),
])
def test_awkward_values_train_and_predict(tmp_path, name, values):
    times = pd.date_range("2024-01-01", periods=len(values), freq="D").strftime("%Y-%m-%d")
    path = tmp_path / f"{name}.csv"
    path.write_text("date,v\n" + "".join(f"{t},{float(v)!r}\n" for t, v in zip(times, values)))
    report = api.train(path, horizon=7, train_config=TINY, run_dir=tmp_path / "run", **TINY_MODEL)
    for key, value in report.metrics["validation"].items():
        assert value is None or math.isfinite(value), (key, value)
    fc = api.predict(report.run_dir).forecast["forecast"].to_numpy()
    assert fc.shape == (7,) and np.isfinite(fc).all()
    result = api.evaluate(report.run_dir, path)
    for block in (result["overall"], result["baselines"]["naive"], *result["series"].values()):
        assert all(v is None or math.isfinite(v) for v in block.values()), block


@pytest.mark.parametrize(("name", "values"), [
    ("constant", np.full(70, 42.0)),
    ("huge", 1e12 * (1 + 0.1 * np.sin(np.arange(70) / 2))),
    ("negative", -500 + 20 * np.sin(np.arange(70) / 2)),
    pytest.param("tiny", 1e-9 * (1 + 0.1 * np.sin(np.arange(70) / 2))),
])
def test_forecasts_stay_on_the_scale_of_the_data(tmp_path, name, values):
    # Even an untrained network forecasts within a few standard deviations in scaled units.
    times = pd.date_range("2024-01-01", periods=len(values), freq="D").strftime("%Y-%m-%d")
    path = tmp_path / f"{name}.csv"
    path.write_text("date,v\n" + "".join(f"{t},{float(v)!r}\n" for t, v in zip(times, values)))
    report = api.train(path, horizon=7, train_config=TINY, run_dir=tmp_path / "run", **TINY_MODEL)
    fc = api.predict(report.run_dir).forecast["forecast"].to_numpy()
    spread = max(np.ptp(values), 1e-3 * np.abs(values).max())
    assert np.abs(fc - values.mean()).max() < 20 * spread, (fc[:3], values.mean(), spread)


# --- the real files ----------------------------------------------------------------------------


def test_daily_min_temperatures(shared_data):
    path = shared_data("daily-min-temperatures.csv")
    s = load_series(path)
    assert s.freq == "D" and s.ids == ["Temp"] and s.time_col == "Date"
    assert len(s.values[0]) == 3652  # 3650 rows + 2 missing dates (1984-12-31, 1988-12-31)
    assert "filled 2 missing values or gaps (interpolate)" in s.notes
    assert np.isfinite(s.values[0]).all()
    with pytest.raises(InputError, match=r"'Temp' has 2 missing values or gaps"):
        load_series(path, DataConfig(fill=Fill.error))


def test_airline_passengers(shared_data):
    s = load_series(shared_data("airline-passengers.csv"))
    assert (s.freq, s.ids, s.time_col, len(s.values[0])) == ("MS", ["Passengers"], "Month", 144)
    assert s.values[0][0] == 112 and s.starts[0] == pd.Timestamp("1949-01-01")
    assert not any("filled" in n for n in s.notes)


def test_sample_store_sales_long():
    s = load_series(SAMPLE_DATA / "store_sales.csv")
    assert s.layout == "long" and s.ids == ["store_a", "store_b", "store_c", "store_d"]
    assert [len(v) for v in s.values] == [365] * 4 and s.freq == "D"
