"""Series ids are data, kept exactly: real `lstmcast` processes on real files.

An id column is text, always: `007` is not 7, `NA` (Namibia) is not missing, ` padded `
keeps its spaces and `a` and `a ` are two series. Only an empty field is a missing id.
Each id comes back byte for byte in the run, the forecast, evaluate's and backtest's
metrics, and names its own plot (plots.file_names)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import HAS_MATPLOTLIB, seasonal

from lstmcast.errors import EXIT_INPUT
from lstmcast.plots import file_names

IDS = ("007", "010", "NA", "ZA", " padded ", "a", "a ", "null", "1e3")


def long_file(path: Path, ids: tuple[str, ...], n: int = 60) -> Path:
    """store,date,sales written with the csv module: every id exactly as given."""
    times = pd.date_range("2024-01-01", periods=n, freq="D").strftime("%Y-%m-%d")
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle, lineterminator="\n")
        out.writerow(["store", "date", "sales"])
        for k, sid in enumerate(ids):
            values = seasonal(n, level=10.0 * (k + 1), seed=k).round(3)
            for t, v in zip(times, values):
                out.writerow([sid, t, "NA" if (k, t) == (0, times[5]) else v])  # NA in a value: still missing
    return path


def column(path: Path, name: str) -> list[str]:
    """The field `name` of every row, as the csv module reads it (no type guessing)."""
    with path.open(newline="", encoding="utf-8") as handle:
        return [row[name] for row in csv.DictReader(handle)]


@pytest.mark.slow
def test_ids_round_trip_byte_for_byte(cli, tmp_path):
    data = long_file(tmp_path / "stores.csv", IDS)
    run = tmp_path / "run"
    trained = cli("train", data, "--id-col", "store", "--run-dir", run, "--epochs", "1", "--max-steps", "3",
                  "--hidden", "8", "--device", "cpu", "--horizon", "4", "--lookback", "8")
    assert trained.returncode == 0, trained.stderr
    assert "filled 1 missing values" in trained.stderr  # NA in the value column keeps its meaning
    assert [s["id"] for s in json.loads((run / "run.json").read_text())["series"]] == list(IDS)

    plots = tmp_path / "plots"
    fc, fc_data, ev, bt = (tmp_path / n for n in ("fc.csv", "fc_data.csv", "ev.json", "bt.json"))
    procs = [cli.start("predict", "--run", run, "--output", fc),
             cli.start("predict", "--run", run, "--data", data, "--output", fc_data),
             cli.start("evaluate", "--run", run, "--data", data, "--output", ev),
             cli.start("evaluate", "--run", run, "--data", data, "--backtest", "--folds", "2", "--output", bt,
                       *(["--plot", plots] if HAS_MATPLOTLIB else []))]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    for out in (fc, fc_data):
        ids = column(out, "store")
        assert list(dict.fromkeys(ids)) == list(IDS) and len(ids) == 4 * len(IDS)
    assert list(json.loads(ev.read_text())["series"]) == list(IDS)
    assert all(list(f["series"]) == list(IDS) for f in json.loads(bt.read_text())["folds"])
    if HAS_MATPLOTLIB:
        names = file_names(list(IDS))
        assert sorted(p.name for p in plots.iterdir()) == sorted(names.values())
        assert len(set(names.values())) == len(IDS)  # 'a' and 'a ' each get their own file


@pytest.mark.slow
def test_only_an_empty_field_is_a_missing_id(cli, tmp_path):
    data = long_file(tmp_path / "stores.csv", ("NA", "ZA"))
    lines = data.read_text().splitlines()
    lines[3] = "," + lines[3].split(",", 1)[1]  # line 4: an empty id
    data.write_text("\n".join(lines) + "\n")
    result = cli("train", data, "--id-col", "store", "--run-dir", tmp_path / "run", "--epochs", "1")
    assert result.returncode == EXIT_INPUT, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("lstmcast: error:")]
    assert errors == [f"lstmcast: error: {data}: column 'store' line 4 has no series id; fill it or drop the row"]
    assert "Traceback" not in result.stderr


def test_text_column_keeps_fields_as_written(tmp_path):
    from lstmcast.data.csvfile import read_csv, text_column

    path = tmp_path / "ids.csv"
    path.write_text('id,v\n007,1\nNA,2\n" padded ",3\nnull,4\n,5\n1e3,6\n', encoding="utf-8")
    df = read_csv(path)
    ids = text_column(path, df, "id")
    assert ids.isna().tolist() == [False] * 4 + [True, False]
    assert ids.dropna().tolist() == ["007", "NA", " padded ", "null", "1e3"]
    assert np.isnan(df["v"]).sum() == 0
