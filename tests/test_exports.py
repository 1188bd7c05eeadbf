"""Files as pandas and Excel write them: the index column of `df.to_csv()`, a trailing
delimiter, thousands separators, `;` with decimal commas; each written here by pandas."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lstmcast.cli.app import app
from lstmcast.data.series import load_series
from lstmcast.errors import EXIT_INPUT, InputError
from conftest import HAS_MATPLOTLIB, TINY_CLI, long_frame, wide_frame


def _thousands(value: float) -> str:
    return f"{value:,.1f}"


def _excel(value: float) -> str:
    """2003.8 as a German Excel writes it: 2.003,8."""
    return f"{value:,.1f}".replace(",", " ").replace(".", ",").replace(" ", ".")


@pytest.fixture
def frame() -> pd.DataFrame:
    wide = wide_frame(n=60)
    wide["b"] = (wide["b"] * 100).round(1)  # thousands: 5,000 and up
    return wide


def test_to_csv_index_column_is_dropped_with_a_note_in_a_wide_file(frame, tmp_path):
    frame.to_csv(tmp_path / "wide.csv")  # pandas' default: the index as an unnamed first column
    assert open(tmp_path / "wide.csv").readline().startswith(",date,a,b")
    got = load_series(tmp_path / "wide.csv")
    assert got.ids == ["a", "b"]
    assert any("row numbers 0..59" in n and "to_csv" in n for n in got.notes)
    np.testing.assert_array_equal(got.values[1], frame["b"].to_numpy())


def test_to_csv_index_column_no_longer_hides_the_long_layout(tmp_path):
    long = long_frame(ids=("store_a", "store_b"), n=40)
    long.to_csv(tmp_path / "long.csv")
    got = load_series(tmp_path / "long.csv")
    assert got.layout == "long" and got.ids == ["store_a", "store_b"] and got.target_cols == ["value"]
    assert any("to_csv" in n for n in got.notes)


def test_excel_semicolons_decimal_commas_and_index_read_like_the_plain_file(frame, tmp_path):
    frame.to_csv(tmp_path / "excel.csv", sep=";", decimal=",")  # index kept, as Excel users export
    assert ";" in open(tmp_path / "excel.csv").readline()
    got, plain = load_series(tmp_path / "excel.csv"), load_series(frame)
    assert got.ids == plain.ids == ["a", "b"]
    for x, y in zip(got.values, plain.values):
        np.testing.assert_array_equal(x, y)


def test_trailing_delimiter_column_is_dropped_with_a_note(frame, tmp_path):
    frame.assign(**{"": np.nan}).to_csv(tmp_path / "trail.csv", index=False)  # "date,a,b," and "...,1.5,"
    assert open(tmp_path / "trail.csv").readline().strip() == "date,a,b,"
    got = load_series(tmp_path / "trail.csv")
    assert got.ids == ["a", "b"] and any("1 empty column" in n for n in got.notes)


@pytest.mark.parametrize("sep,decimal,fmt", [(",", ".", _thousands), (";", ",", _excel)])
def test_thousands_separators_are_read_as_numbers(frame, tmp_path, sep, decimal, fmt):
    written = frame.assign(b=frame["b"].map(fmt))
    if decimal == ",":
        written["a"] = written["a"].map(lambda v: f"{v}".replace(".", ","))
    written.to_csv(tmp_path / "t.csv", sep=sep, index=False)
    text = open(tmp_path / "t.csv").read()
    assert ('"5,' in text) if sep == "," else (";5." in text)  # what the file holds: "5,012.3" or 5.012,3
    got = load_series(tmp_path / "t.csv")
    np.testing.assert_allclose(got.values[1], frame["b"].to_numpy())
    np.testing.assert_allclose(got.values[0], frame["a"].to_numpy())
    assert any("thousands separators" in n and "'b'" in n for n in got.notes)


def test_mixed_thousands_separators_say_so(frame, tmp_path):
    written = frame.assign(b=[_thousands(v) if k % 2 else _excel(v) for k, v in enumerate(frame["b"])])
    written.to_csv(tmp_path / "mixed.csv", index=False)
    with pytest.raises(InputError) as err:
        load_series(tmp_path / "mixed.csv")
    message = str(err.value)
    assert "column 'b'" in message and "thousands separators" in message and "\n" not in message


def test_train_on_a_to_csv_file_trains_the_series_only(frame, tmp_path):
    frame.to_csv(tmp_path / "wide.csv")
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(tmp_path / "wide.csv"), "--run-dir", str(run), "--horizon", "6",
                                      "--lookback", "12", *TINY_CLI])
    assert result.exit_code == 0, result.output
    assert "to_csv" in result.stderr
    assert [s["id"] for s in json.loads((run / "run.json").read_text())["series"]] == ["a", "b"]


def test_existing_run_without_overwrite_is_exit_2(trained_run):
    result = CliRunner().invoke(app, ["train", str(trained_run.data), "--run-dir", str(trained_run.run_dir),
                                      *TINY_CLI])
    assert result.exit_code == EXIT_INPUT
    assert result.stderr.strip().splitlines() == [
        f"lstmcast: error: {trained_run.run_dir}: is an existing run; choose another --run-dir or pass --overwrite"]


def test_backtest_refit_one_fold_leaves_short_series_out_by_name(tmp_path):
    long = long_frame(ids=("long", "short"), n=80)
    long = long[~((long["id"] == "short") & (long.index % 80 < 55))].reset_index(drop=True)  # short: the last 25
    long.to_csv(tmp_path / "stores.csv", sep=";", decimal=",")  # Excel-style, index and all
    run = tmp_path / "run"
    assert CliRunner().invoke(app, ["train", str(tmp_path / "stores.csv"), "--run-dir", str(run), "--horizon", "6",
                                    "--lookback", "12", *TINY_CLI]).exit_code == 0
    result = CliRunner().invoke(app, ["evaluate", "--run", str(run), "--data", str(tmp_path / "stores.csv"),
                                      "--backtest", "--refit", "--folds", "1", "--output", str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    assert "left out 1 series with fewer than the 30 points 1 fold of 6 steps need" in result.stderr and "['short']" in result.stderr
    assert "backtest: 1 fold of 6 steps" in result.stdout
    assert list(json.loads((tmp_path / "m.json").read_text())["folds"][0]["series"]) == ["long"]

    only_short = long[long["id"] == "short"]
    only_short.to_csv(tmp_path / "short.csv", index=False)
    result = CliRunner().invoke(app, ["evaluate", "--run", str(run), "--data", str(tmp_path / "short.csv"),
                                      "--backtest", "--refit", "--folds", "1"])
    assert result.exit_code == EXIT_INPUT
    line = result.stderr.strip()
    assert "no series is long enough for 1 fold of 6 steps" in line and "series 'short' has 25 points" in line
    assert "--folds" not in line and "without --refit" in line and "\n" not in line


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib is not installed")
def test_detect_plot_draws_flagged_series_first(trained_run, tmp_path):
    data = pd.read_csv(trained_run.data)
    data.loc[100, "b"] += 500.0  # a spike in the second series only
    data.to_csv(tmp_path / "spike.csv")
    result = CliRunner().invoke(app, ["detect", "--run", str(trained_run.run_dir), "--data", str(tmp_path / "spike.csv"),
                                      "--output", str(tmp_path / "a.csv"), "--plot", str(tmp_path / "p"),
                                      "--plot-max", "1", "--level", "0.999"])  # 0.99: ~1.8 normal points of 176 too
    assert result.exit_code == 0, result.output
    assert "in 1 series" in result.stdout and "  b  " in result.stdout
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["b.png"]
    assert "wrote 1 PNG file to" in result.stdout
