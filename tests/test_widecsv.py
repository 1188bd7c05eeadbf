"""The streaming float32 reader of large CSV files (lstmcast.widecsv) against the whole-file
readers: the same ids, times and values (cast to float32), and the same errors.

Files here are tiny: the size threshold and the block size are lowered so that every
file streams, in blocks of a few rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import SAMPLE_DATA, long_frame, seasonal, write_frame
from lstmcast.data import csvfile
from lstmcast.data import widecsv
from lstmcast.config import DataConfig, Fill
from lstmcast.data.series import load_series
from lstmcast.errors import InputError

pytest.importorskip("pyarrow")


def _load(path: Path, monkeypatch: pytest.MonkeyPatch, stream: bool, block: int = 2048, cfg=DataConfig()):
    with monkeypatch.context() as m:
        m.setattr(widecsv, "STREAM_MIN_BYTES", 0 if stream else 2**62)
        m.setattr(widecsv, "BLOCK_BYTES", block)
        return load_series(path, cfg)


def _same(old, new, f32: bool = True) -> None:
    assert new.ids == old.ids
    assert (new.layout, new.time_kind, new.freq, new.step, new.time_col, new.id_col) == (
        old.layout, old.time_kind, old.freq, old.step, old.time_col, old.id_col)
    assert [pd.Timestamp(s) if old.time_kind == "datetime" else s for s in new.starts] == [
        pd.Timestamp(s) if old.time_kind == "datetime" else s for s in old.starts]
    for a, b in zip(old.values, new.values):
        # float32 as parsed here, bit for bit the old float64 parse cast to float32 (filled gaps: float64)
        np.testing.assert_array_equal(b, a.astype(np.float32) if f32 else a)


def _wide(path: Path, columns: int = 70, rows: int = 200, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"s{k:03d}": (seasonal(rows, seed=k) * rng.uniform(1, 1000)).round(3) for k in range(columns)})
    frame.insert(0, "timestamp", pd.date_range("2024-01-01", periods=rows, freq="h").strftime("%Y-%m-%d %H:%M:%S"))
    frame.iloc[5, 3] = np.nan  # an empty cell: a gap to fill
    return write_frame(path, frame)


FIXTURES = ["wide_csv", "long_csv", "notime_csv", "inttime_csv", "hourly_csv", "monthly_csv"]


@pytest.mark.parametrize("fixture", FIXTURES)
def test_fixtures_read_the_same(fixture: str, request: pytest.FixtureRequest, monkeypatch) -> None:
    path = request.getfixturevalue(fixture)
    _same(_load(path, monkeypatch, False), _load(path, monkeypatch, True))


@pytest.mark.parametrize("name", ["hourly_load.csv", "monthly_revenue.csv", "store_sales.csv"])
def test_sample_data_reads_the_same(name: str, monkeypatch) -> None:
    _same(_load(SAMPLE_DATA / name, monkeypatch, False), _load(SAMPLE_DATA / name, monkeypatch, True))


def test_wide_file_in_many_blocks_is_one_float32_matrix(tmp_path: Path, monkeypatch) -> None:
    path = _wide(tmp_path / "wide.csv")
    cfg = DataConfig(fill=Fill.interpolate)
    old, new = _load(path, monkeypatch, False, cfg=cfg), _load(path, monkeypatch, True, cfg=cfg)
    _same(old, new)
    assert len(new) == 70
    # The series are rows of one float32 matrix (views), not copies per series.
    assert new.values[0].dtype == np.float32 and new.values[0].base is not None
    assert np.shares_memory(new.values[0].base, new.values[1])


def test_long_file_in_many_blocks(tmp_path: Path, monkeypatch) -> None:
    path = write_frame(tmp_path / "long.csv", long_frame(ids=tuple("pqrstu"), n=120))
    old, new = _load(path, monkeypatch, False), _load(path, monkeypatch, True)
    _same(old, new)
    assert new.layout == "long" and len(new) == 6


def test_long_file_with_numeric_ids(tmp_path: Path, monkeypatch) -> None:
    path = write_frame(tmp_path / "long.csv", long_frame(ids=("101", "102", "103"), n=150))
    cfg = DataConfig(id_col="id")
    old, new = _load(path, monkeypatch, False, cfg=cfg), _load(path, monkeypatch, True, cfg=cfg)
    _same(old, new)
    assert new.ids == ["101", "102", "103"]


def _error(path: Path, monkeypatch, stream: bool) -> str:
    with pytest.raises(InputError) as info:
        _load(path, monkeypatch, stream)
    return str(info.value)


@pytest.mark.parametrize("bad, says", [("oops", "non-numeric value 'oops'"), ("inf", "is infinite"),
                                       ("1e200", "beyond"), ("1e39", None)])
def test_bad_cell_in_a_late_block_is_named_with_its_line(tmp_path: Path, monkeypatch, bad: str, says) -> None:
    path = _wide(tmp_path / "bad.csv")
    lines = path.read_text().splitlines()
    cells = lines[180].split(",")  # line 181 of the file: far past the first block of 2,048 bytes
    cells[7] = bad
    lines[180] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    if says is None:  # beyond float32 but allowed: read in float64 by the whole-file reader, as before
        _same(_load(path, monkeypatch, False, cfg=DataConfig(fill=Fill.zero)),
              _load(path, monkeypatch, True, cfg=DataConfig(fill=Fill.zero)), f32=False)
        assert _load(path, monkeypatch, True, cfg=DataConfig(fill=Fill.zero)).values[6].dtype == np.float64
        return
    message = _error(path, monkeypatch, True)
    assert message == _error(path, monkeypatch, False)
    assert str(path) in message and "'s006'" in message and "line 181" in message and says in message


def test_ragged_row_and_empty_file_keep_their_messages(tmp_path: Path, monkeypatch, write_csv) -> None:
    ragged = write_csv("ragged.csv", "date,a,b\n2024-01-01,1,2\n2024-01-02,1,2,3\n" + "2024-01-03,1,2\n" * 3)
    assert _error(ragged, monkeypatch, True) == _error(ragged, monkeypatch, False)
    header_only = write_csv("header.csv", "date,a,b\n")
    assert _error(header_only, monkeypatch, True) == _error(header_only, monkeypatch, False)


def test_small_files_keep_the_float64_read(wide_csv: Path) -> None:
    assert wide_csv.stat().st_size < widecsv.STREAM_MIN_BYTES
    assert csvfile.read_csv(wide_csv)["a"].dtype == np.float64


def test_int32_permutation_is_the_int64_one() -> None:
    # training draws its epoch order with dtype int32: the same order, the same generator state after
    for n in (1000, 123_457):
        g64, g32 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
        assert torch.equal(torch.randperm(n, generator=g64), torch.randperm(n, generator=g32, dtype=torch.int32).long())
        assert torch.equal(g64.get_state(), g32.get_state())
