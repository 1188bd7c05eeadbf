"""Large inputs: Parquet, the pyarrow CSV reader, one value matrix for wide files, predict in batches."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import TINY, TINY_MODEL, long_frame, wide_frame, write_frame
from typer.testing import CliRunner

from lstmcast import api
from lstmcast.data import csvfile
from lstmcast.forecast import batches
from lstmcast.cli.app import app
from lstmcast.data.series import load_series

pytest.importorskip("pyarrow")


def _pandas_reader(monkeypatch):
    monkeypatch.setattr(csvfile, "_read_arrow", lambda *a: None)


@pytest.mark.parametrize("frame", [wide_frame(n=50), long_frame(n=40),
                                   wide_frame(n=50, freq="h", time_col="timestamp", fmt="%Y-%m-%d %H:%M:%S")])
def test_pyarrow_reader_loads_the_same_series_as_pandas(tmp_path, monkeypatch, frame):
    path = write_frame(tmp_path / "data.csv", frame)
    fast = load_series(path)
    _pandas_reader(monkeypatch)
    slow = load_series(path)
    assert fast.ids == slow.ids and fast.freq == slow.freq and fast.starts == slow.starts
    assert all(np.array_equal(a, b) for a, b in zip(fast.values, slow.values))


def test_wide_series_are_rows_of_one_matrix(tmp_path):
    """No float64 copy per series: the series share one buffer."""
    path = write_frame(tmp_path / "wide.csv", wide_frame(n=50))
    values = load_series(path).values
    # Views of one matrix, not copies: both rows have the same owner (None would mean each owns its own).
    assert values[0].base is not None and values[0].base is values[1].base


def test_parquet_trains_and_predicts_like_the_csv(tmp_path):
    frame = wide_frame(n=80)
    frame["date"] = pd.to_datetime(frame["date"])
    parquet = tmp_path / "wide.parquet"
    frame.to_parquet(parquet)
    csv = write_frame(tmp_path / "wide.csv", wide_frame(n=80))
    a = api.train(parquet, horizon=6, lookback=12, train_config=TINY, run_dir=tmp_path / "p", **TINY_MODEL)
    b = api.train(csv, horizon=6, lookback=12, train_config=TINY, run_dir=tmp_path / "c", **TINY_MODEL)
    assert a.metrics["best_val_loss"] == b.metrics["best_val_loss"]
    fa, fb = api.predict(a.run_dir, data=parquet).forecast, api.predict(b.run_dir, data=csv).forecast
    assert fa.to_csv(index=False) == fb.to_csv(index=False)


def test_unreadable_parquet_is_one_input_error(tmp_path):
    from lstmcast.errors import InputError

    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="bad.parquet: not a readable Parquet file"):
        load_series(bad)


def test_predict_in_batches_writes_what_one_frame_would(trained_run, run_copy, tmp_path):
    whole = api.predict(run_copy, data=trained_run.data).forecast
    made = batches.forecasts(run_copy, data=trained_run.data, batch=1)  # one series per batch
    parts = list(made.chunks)
    assert len(parts) == 2
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), whole)
    out = tmp_path / "fc.csv"
    result = CliRunner().invoke(app, ["predict", "--run", str(run_copy), "--data", str(trained_run.data),
                                      "--output", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert out.read_text() == whole.to_csv(index=False, lineterminator="\n")
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]
