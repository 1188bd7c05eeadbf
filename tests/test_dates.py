"""Time columns read with one format for the whole column (issue 18, "data that is silently wrong").

Day-first dates (01/02/1959 is 1 February) were read month-first where they could be and
day-first where they had to be, scrambling the series; a float year column (1871.0, as
`to_csv` writes it) became a series. Each test writes a real file and reads it through
`load_series`, or trains on it through the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, SHARED_DATA, TINY_CLI, seasonal, write_frame
from typer.testing import CliRunner

from lstmcast.cli.app import app
from lstmcast.config import DataConfig, from_json_dict
from lstmcast.data import timecol
from lstmcast.data.series import load_series
from lstmcast.errors import EXIT_INPUT, InputError

BIRTHS = "daily-total-female-births.csv"


def load_error(path: Path, **cfg) -> str:
    with pytest.raises(InputError) as info:
        load_series(path, DataConfig(**cfg))
    message = str(info.value)
    assert str(path) in message and "\n" not in message, message
    return message


def dated(path: Path, times: pd.DatetimeIndex, fmt: str, values: np.ndarray | None = None, col: str = "date") -> Path:
    values = seasonal(len(times), period=7, seed=3).round(3) if values is None else values
    return write_frame(path, pd.DataFrame({col: times.strftime(fmt), "value": values}))


def train(data: Path, run: Path, *extra: str):
    return CliRunner().invoke(app, ["train", str(data), "--run-dir", str(run), *TINY_CLI, "--max-steps", "2",
                                    "--horizon", "3", "--lookback", "14", *extra])


def one_line_error(result) -> str:
    assert result.exit_code == EXIT_INPUT, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lstmcast: error: "), result.stderr
    return lines[0]


def assert_same_series(a, b) -> None:
    assert (a.ids, a.time_kind, a.freq, a.starts) == (b.ids, b.time_kind, b.freq, b.starts)
    assert len(a.values) == len(b.values)
    for x, y in zip(a.values, b.values):
        np.testing.assert_array_equal(x, y)


# --- day-first dates ------------------------------------------------------------------------


def births_file() -> Path:
    # ../shared/data beside the checkout; a worktree (wt/<name>) sits one level deeper.
    for root in (SHARED_DATA, REPO.parents[1] / "shared" / "data"):
        if (root / BIRTHS).is_file():
            return root / BIRTHS
    pytest.skip(f"{BIRTHS} not available")


def test_real_births_written_day_first_read_like_the_iso_file(tmp_path):
    iso = births_file()
    frame = pd.read_csv(iso)
    frame["Date"] = pd.to_datetime(frame["Date"]).dt.strftime("%d/%m/%Y")  # 01/01/1959, ..., 13/01/1959, ...
    day_first = write_frame(tmp_path / "births-dmy.csv", frame)
    a, b = load_series(iso), load_series(day_first)
    assert_same_series(a, b)
    assert len(b.values[0]) == 365 and b.freq == "D" and b.starts == [pd.Timestamp("1959-01-01")]
    assert "rows were not in time order: sorted them" not in b.notes
    assert "column 'Date': dates read as %d/%m/%Y (inferred)" in b.notes
    assert not any("dates read" in n for n in a.notes)


def test_births_like_day_first_file_reads_like_the_iso_file(tmp_path):
    times = pd.date_range("1959-01-01", periods=365, freq="D")
    values = np.random.default_rng(0).poisson(42, size=365).astype(float)
    iso = dated(tmp_path / "iso.csv", times, "%Y-%m-%d", values)
    day_first = dated(tmp_path / "dmy.csv", times, "%d/%m/%Y", values)
    a, b = load_series(iso), load_series(day_first)
    assert_same_series(a, b)
    np.testing.assert_array_equal(b.values[0], values)  # the file's order, not sorted month-first
    assert b.time_format == "%d/%m/%Y" and a.time_format in (None, "ISO8601")


def test_day_first_long_layout_reads_like_the_iso_file(tmp_path):
    times = pd.date_range("2020-01-01", periods=400, freq="D")
    parts = [pd.DataFrame({"id": sid, "date": times, "value": seasonal(400, level=10.0 * (k + 1), seed=k).round(3)})
             for k, sid in enumerate(("x", "y", "z"))]
    frame = pd.concat(parts, ignore_index=True)  # 1,200 rows: each date three times
    iso = write_frame(tmp_path / "iso.csv", frame.assign(date=frame["date"].dt.strftime("%Y-%m-%d")))
    day_first = write_frame(tmp_path / "dmy.csv", frame.assign(date=frame["date"].dt.strftime("%d-%m-%Y")))
    a, b = load_series(iso), load_series(day_first)
    assert b.layout == "long" and b.ids == ["x", "y", "z"]
    assert_same_series(a, b)


def test_day_first_file_trains_and_forecasts_like_the_iso_file(tmp_path):
    times = pd.date_range("2023-01-01", periods=120, freq="D")
    iso = dated(tmp_path / "iso.csv", times, "%Y-%m-%d")
    day_first = dated(tmp_path / "dmy.csv", times, "%d/%m/%Y")
    forecasts = []
    for data in (iso, day_first):
        run = tmp_path / f"run-{data.stem}"
        result = train(data, run)
        assert result.exit_code == 0, result.output
        assert "rows were not in time order" not in result.stderr
        assert CliRunner().invoke(app, ["predict", "--run", str(run), "-q"]).exit_code == 0
        forecasts.append(pd.read_csv(run / "forecast.csv"))
    assert "dates read as %d/%m/%Y" in result.stderr
    pd.testing.assert_frame_equal(forecasts[0], forecasts[1])
    assert forecasts[1]["date"].iloc[0].startswith("2023-05-01")


@pytest.mark.parametrize("fmt", ["%d/%m/%Y", "%d.%m.%Y"])
def test_weekly_day_first_dates_are_on_their_weekly_grid(tmp_path, fmt):
    # Both were "off the W-SAT grid; pass the right --freq": 06/04/2024 was read as 4 June.
    times = pd.date_range("2024-01-06", periods=40, freq="W-SAT")
    path = dated(tmp_path / "weekly.csv", times, fmt)
    s = load_series(path)
    assert s.freq == "W-SAT" and s.starts == [pd.Timestamp("2024-01-06")] and len(s.values[0]) == 40
    np.testing.assert_array_equal(s.values[0], pd.read_csv(path)["value"].to_numpy())
    assert f"column 'date': dates read as {fmt} (inferred)" in s.notes


def test_weekly_day_first_file_trains_through_the_cli(tmp_path):
    path = dated(tmp_path / "weekly.csv", pd.date_range("2024-01-06", periods=60, freq="W-SAT"), "%d.%m.%Y")
    result = train(path, tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert "frequency W-SAT (inferred)" in result.stderr
    assert json.loads((tmp_path / "run" / "run.json").read_text())["data"]["freq"] == "W-SAT"


def test_every_date_reads_both_ways_month_first_is_assumed_with_a_note(tmp_path):
    # Twelve days, 01/01 .. 12/01: as months (January .. December) the steps are regular too.
    path = dated(tmp_path / "twelve.csv", pd.date_range("2024-01-01", periods=12, freq="D"), "%d/%m/%Y")
    s = load_series(path)
    assert s.freq == "MS" and s.starts == [pd.Timestamp("2024-01-01")]
    assert any("read both month-first and day-first" in n and "--dayfirst" in n for n in s.notes), s.notes


def test_dayfirst_option_reads_the_ambiguous_file_day_first(tmp_path):
    path = dated(tmp_path / "twelve.csv", pd.date_range("2024-01-01", periods=12, freq="D"), "%d/%m/%Y")
    s = load_series(path, DataConfig(dayfirst=True))
    assert s.freq == "D" and s.starts == [pd.Timestamp("2024-01-01")] and len(s.values[0]) == 12
    assert not any("read both" in n for n in s.notes)


def test_monthly_day_first_dates_read_day_first_where_only_that_is_regular(tmp_path):
    # 01/02/1959, 01/03/1959, ...: month-first they would be the first twelve days of each January.
    times = pd.date_range("1959-01-01", periods=48, freq="MS")
    s = load_series(dated(tmp_path / "monthly-dmy.csv", times, "%d/%m/%Y"))
    assert s.freq == "MS" and len(s.values[0]) == 48 and s.starts == [pd.Timestamp("1959-01-01")]
    assert any("read them day-first (%d/%m/%Y)" in n and "--date-format %m/%d/%Y" in n for n in s.notes), s.notes
    us = load_series(dated(tmp_path / "monthly-mdy.csv", times, "%m/%d/%Y"))
    assert us.freq == "MS" and len(us.values[0]) == 48
    assert any("read them month-first (%m/%d/%Y)" in n for n in us.notes), us.notes


def test_dayfirst_refuses_month_first_dates(tmp_path):
    path = dated(tmp_path / "us.csv", pd.date_range("2024-01-01", periods=30, freq="D"), "%m/%d/%Y")
    message = load_error(path, dayfirst=True)
    assert "line 14" in message and "'01/13/2024'" in message and "--dayfirst" in message


# --- --date-format ----------------------------------------------------------------------------


def test_date_format_option_reads_the_column_with_it(tmp_path):
    path = dated(tmp_path / "twelve.csv", pd.date_range("2024-01-01", periods=12, freq="D"), "%d/%m/%Y")
    s = load_series(path, DataConfig(date_format="%d/%m/%Y"))
    assert s.freq == "D" and s.time_format == "%d/%m/%Y" and len(s.values[0]) == 12
    odd = dated(tmp_path / "odd.csv", pd.date_range("2024-01-01", periods=30, freq="h"), "%Y%m%d-%H%M")
    s = load_series(odd, DataConfig(date_format="%Y%m%d-%H%M"))
    assert s.freq == "h" and s.starts == [pd.Timestamp("2024-01-01")]


def test_date_format_through_the_cli_is_kept_for_predict(tmp_path):
    times = pd.date_range("2024-01-01", periods=12 * 6, freq="D")
    times = times[times.day <= 12]  # every date reads both ways: only the option says day-first
    path = dated(tmp_path / "days.csv", times, "%d/%m/%Y")
    run = tmp_path / "run"
    result = train(path, run, "--date-format", "%d/%m/%Y", "--freq", "D")
    assert result.exit_code == 0, result.output
    data = json.loads((run / "run.json").read_text())["data"]
    assert data["date_format"] == "%d/%m/%Y" and data["dayfirst"] is False and data["freq"] == "D"
    assert CliRunner().invoke(app, ["predict", "--run", str(run), "--data", str(path), "-q"]).exit_code == 0
    first = pd.read_csv(run / "forecast.csv")["date"].iloc[0]
    assert first.startswith("2024-03-13"), first  # the day after 12/03/2024, read day-first


def test_date_format_that_does_not_fit_names_the_line(tmp_path):
    times = list(pd.date_range("2024-01-01", periods=30, freq="D").strftime("%d/%m/%Y"))
    times[7] = "2024-01-08"
    path = tmp_path / "bad.csv"
    path.write_text("date,value\n" + "".join(f"{t},{k}\n" for k, t in enumerate(times)))
    message = load_error(path, date_format="%d/%m/%Y")
    assert "line 9" in message and "'2024-01-08'" in message and "--date-format '%d/%m/%Y'" in message


def test_date_format_that_is_no_format_is_an_input_error(tmp_path):
    path = dated(tmp_path / "d.csv", pd.date_range("2024-01-01", periods=30, freq="D"), "%d/%m/%Y")
    assert "--date-format '%Q'" in load_error(path, date_format="%Q")


def test_old_run_json_without_the_new_fields_reads_as_the_defaults():
    cfg = from_json_dict(DataConfig, {"id_col": None, "time_col": "date", "fill": "interpolate", "calendar": False})
    assert cfg.date_format is None and cfg.dayfirst is False


# --- a column of two formats; timestamps in errors ---------------------------------------------


def mixed_file(tmp_path: Path) -> Path:
    times = list(pd.date_range("2024-01-01", periods=40, freq="D").strftime("%d/%m/%Y"))
    times[25] = "2024-01-26"  # one row in ISO among day-first dates
    path = tmp_path / "mixed.csv"
    path.write_text("date,value\n" + "".join(f"{t},{k % 7}\n" for k, t in enumerate(times)))
    return path


def test_column_of_two_formats_is_an_error_naming_the_line(tmp_path):
    message = load_error(mixed_file(tmp_path))
    assert "'date'" in message and "line 27" in message and "'2024-01-26'" in message
    assert "%d/%m/%Y" in message and "--date-format" in message


def test_column_of_two_formats_exits_2_with_one_line(tmp_path):
    path = mixed_file(tmp_path)
    line = one_line_error(train(path, tmp_path / "run"))
    assert str(path) in line and "line 27" in line and "'2024-01-26'" in line and "--date-format" in line
    assert not (tmp_path / "run").exists()


def test_off_grid_timestamp_quotes_the_line_as_read(tmp_path):
    times = list(pd.date_range("2024-01-06", periods=30, freq="W-SAT").strftime("%d/%m/%Y"))
    times[10] = "17/03/2024"  # a Sunday among Saturdays
    path = tmp_path / "weekly.csv"
    path.write_text("date,value\n" + "".join(f"{t},{k}\n" for k, t in enumerate(times)))
    message = load_error(path, freq="W-SAT")
    assert "off the W-SAT grid" in message and "line 12 reads '17/03/2024'" in message
    assert "read as %d/%m/%Y" in message and "--date-format" in message and "--freq" in message


def test_duplicate_timestamp_quotes_the_line_as_read(tmp_path):
    times = list(pd.date_range("2024-01-01", periods=30, freq="D").strftime("%d/%m/%Y"))
    times[5] = times[4]
    path = tmp_path / "dup.csv"
    path.write_text("date,value\n" + "".join(f"{t},{k}\n" for k, t in enumerate(times)))
    message = load_error(path)
    assert "duplicate timestamp 2024-01-05" in message and "line 7 reads '05/01/2024'" in message


# --- formats that worked before still work ---------------------------------------------------


@pytest.mark.parametrize(("text", "freq"), [
    (pd.date_range("2024-01-01", periods=30, freq="h").strftime("%Y-%m-%dT%H:%M:%S"), "h"),
    (pd.date_range("2024-01-01", periods=30, freq="h").strftime("%Y-%m-%d %H:%M:%S+01:00"), "h"),
    (pd.date_range("1949-01-01", periods=30, freq="MS").strftime("%Y-%m"), "MS"),
    (pd.period_range("2020Q1", periods=30, freq="Q").astype(str), "QS-JAN"),
    (pd.date_range("2020-01-01", periods=30, freq="MS").strftime("%b %Y"), "MS"),
    (pd.date_range("2020-01-01", periods=30, freq="D").strftime("%d-%b-%Y"), "D"),
    (pd.date_range("2020-01-01", periods=30, freq="h").strftime("%m/%d/%Y %I:%M %p"), "h"),
])
def test_formats_read_before_still_read(tmp_path, text, freq):
    path = tmp_path / "t.csv"
    path.write_text("date,value\n" + "".join(f"{t},{k}\n" for k, t in enumerate(text)))
    s = load_series(path)
    assert s.freq == freq and len(s.values[0]) == 30
    np.testing.assert_array_equal(s.values[0], np.arange(30))


def test_ten_thousand_day_first_dates_are_not_parsed_row_by_row(tmp_path, monkeypatch):
    n = 10_000
    path = dated(tmp_path / "big.csv", pd.date_range("1990-01-01", periods=n, freq="D"), "%d/%m/%Y",
                 np.arange(n, dtype=float))
    calls: list[tuple[int, object]] = []
    real = pd.to_datetime

    def spy(arg, *args, **kwargs):
        calls.append((len(arg) if hasattr(arg, "__len__") else 1, kwargs.get("format")))
        return real(arg, *args, **kwargs)

    monkeypatch.setattr(timecol.pd, "to_datetime", spy)
    s = load_series(path)
    assert s.freq == "D" and len(s.values[0]) == n
    whole = [fmt for size, fmt in calls if size == n]
    assert whole == ["%d/%m/%Y"], calls  # one pass over the column, with one explicit format
    assert all(fmt != "mixed" for size, fmt in calls if size > 50)


# --- a float year column ------------------------------------------------------------------------


def test_float_year_column_is_an_integer_time_axis(tmp_path):
    # nile.to_csv() writes the year as 1871.0, 1872.0, ...
    values = np.random.default_rng(1).normal(900, 150, size=100).round(1)
    path = write_frame(tmp_path / "nile.csv", pd.DataFrame({"year": np.arange(1871, 1971, dtype=float),
                                                            "Nile": values}))
    assert pd.read_csv(path)["year"].dtype == np.float64
    s = load_series(path)
    assert s.time_kind == "integer" and s.time_col == "year" and s.ids == ["Nile"] and s.target_cols == ["Nile"]
    assert s.starts == [1871] and s.step == 1 and s.freq is None
    np.testing.assert_array_equal(s.values[0], values)
    assert s.times_after(0, 100, 2) == [1971, 1972]


def test_float_year_column_trains_as_the_time_axis(tmp_path):
    path = write_frame(tmp_path / "nile.csv", pd.DataFrame({"year": np.arange(1871, 1971, dtype=float),
                                                            "Nile": seasonal(100, level=900.0).round(1)}))
    run = tmp_path / "run"
    result = train(path, run)
    assert result.exit_code == 0, result.output
    data = json.loads((run / "run.json").read_text())["data"]
    assert data["time_kind"] == "integer" and data["time_col"] == "year" and data["target"] == ["Nile"]
    assert CliRunner().invoke(app, ["predict", "--run", str(run), "-q"]).exit_code == 0
    forecast = pd.read_csv(run / "forecast.csv")
    assert forecast["year"].tolist() == [1971, 1972, 1973]


@pytest.mark.parametrize("years", [[1871.0, 1872.0, 1874.0, 1875.0, 1876.0, 1877.0],  # uneven steps
                                   [1871.5, 1872.5, 1873.5, 1874.5, 1875.5, 1876.5]])  # not whole numbers
def test_float_year_column_that_is_no_time_axis_stays_a_value_column(tmp_path, years):
    path = write_frame(tmp_path / "y.csv", pd.DataFrame({"year": years, "v": np.arange(6.0)}))
    s = load_series(path)
    assert s.time_kind == "row" and s.ids == ["year", "v"]
