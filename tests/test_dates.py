"""Time columns (issue 18, "data that is silently wrong").

A float year column (1871.0, as `to_csv` writes it) became a series. Each test writes a
real file and reads it through `load_series`, or trains on it through the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_CLI, seasonal, write_frame
from typer.testing import CliRunner

from lstmcast.cli.app import app
from lstmcast.config import DataConfig
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
