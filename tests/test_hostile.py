"""Hostile CSVs: every malformed input ends in a correct result or one clean error, exit code 2.

Hypothesis generates the files (random bytes, other delimiters and decimal commas, byte-order
marks, UTF-16, mixed types, inf, 1e308, empty columns, duplicate headers, ragged rows, time
zones across daylight-saving jumps, single rows); the bulk runs through the Python API and the
CLI in this process, a sample through real `lstmcast` processes with a timeout (no hangs).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_CLI

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from lstmcast import api
from lstmcast.cli.app import app
from lstmcast.data.series import load_series
from lstmcast.errors import EXIT_INPUT, InputError

SETTINGS = settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

CELLS = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: f"{v:.3f}"),
    st.integers(-1000, 1000).map(str),
    st.sampled_from(["", "inf", "-inf", "Infinity", "1e308", "-1e308", "1e400", "nan", "NaN", "NULL", "abc",
                     "True", "3,5", " 7 ", "1e-320", "0x1F", "€12", "\u00a0"]),
)
TIMES = st.sampled_from(["none", "daily", "hourly", "monthly", "integer", "dst_hourly", "dst_daily", "mixed_tz",
                         "bad_dates", "duplicates"])


def time_values(kind: str, n: int) -> list[str] | None:
    if kind == "none":
        return None
    if kind == "integer":
        return [str(100 + 5 * k) for k in range(n)]
    if kind == "duplicates":
        return [f"2024-01-{1 + k // 2:02d}" for k in range(n)]
    if kind == "bad_dates":
        return [f"2024-13-{k:02d}" if k % 7 == 3 else f"2024-01-{k % 28 + 1:02d}" for k in range(n)]
    if kind in ("dst_hourly", "dst_daily", "mixed_tz"):
        freq = "h" if kind == "dst_hourly" else "D"
        times = pd.date_range("2024-03-29", periods=n, freq=freq, tz="Europe/Berlin")
        out = [t.isoformat() for t in times]
        if kind == "mixed_tz":
            out = [t if k % 2 else t[:19] for k, t in enumerate(out)]  # some with offsets, some without
        return out
    freq = {"daily": "D", "hourly": "h", "monthly": "MS"}[kind]
    return [str(t) for t in pd.date_range("2024-01-01", periods=n, freq=freq)]


@st.composite
def hostile_csv(draw) -> bytes:
    """A CSV file as bytes, built to break things: each file gets a few of the listed troubles."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=400))
    n = draw(st.integers(1, 60))
    names = draw(st.lists(st.sampled_from(["a", "b", "value", "x y", "ünï", ""]), min_size=1, max_size=4,
                          unique=True))
    if draw(st.integers(0, 7)) == 0:
        names.append(names[0])  # a duplicate header
    kind = draw(TIMES)
    times = time_values(kind, n)
    clean = draw(st.integers(0, 2)) > 0  # two files in three are sane apart from encoding and layout
    rows = []
    for k in range(n):
        cells = [f"{10 + np.sin(k / 3) * (j + 1):.3f}" if clean else draw(CELLS) for j in range(len(names))]
        rows.append(([times[k]] if times else []) + cells)
    if draw(st.integers(0, 5)) == 0:  # one ragged row
        k = draw(st.integers(0, n - 1))
        rows[k] = rows[k][: draw(st.integers(0, len(rows[k])))] + ["9"] * draw(st.integers(0, 2))
    header = (["date"] if times else []) + names
    sep = draw(st.sampled_from([",", ";", "\t", "|"]))
    if sep == ";" and draw(st.booleans()):
        rows = [[c.replace(".", ",") for c in r] for r in rows]  # decimal commas
    text = "\n".join(sep.join(r) for r in [header, *rows]) + draw(st.sampled_from(["\n", "", "\n\n"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "utf-16-le", "latin-1"]))
    return text.encode(encoding, errors="replace")


def check_series(path: Path) -> None:
    try:
        series = load_series(path)
    except InputError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        return
    assert series.ids and all(len(v) and np.isfinite(v).all() for v in series.values)


@SETTINGS
@given(data=hostile_csv())
@pytest.mark.slow
def test_loading_hostile_csv_gives_finite_series_or_one_input_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("h") / "in.csv"
    path.write_bytes(data)
    check_series(path)


@settings(SETTINGS, max_examples=40)
@given(data=hostile_csv())
@pytest.mark.slow
def test_training_on_hostile_csv_forecasts_finite_numbers_or_exits_2(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("h")
    path = root / "in.csv"
    path.write_bytes(data)
    result = CliRunner().invoke(app, ["train", str(path), "--run-dir", str(root / "run"), *TINY_CLI,
                                      "--horizon", "2", "--json", "-q"])
    if result.exit_code == EXIT_INPUT:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("lstmcast: error: ") and str(path) in lines[0], result.stderr
        assert json.loads(result.stdout)["status"] == "error"
        return
    assert result.exit_code == 0, (result.exit_code, result.output)
    frame = api.predict(root / "run").forecast
    assert len(frame) and np.isfinite(frame["forecast"].to_numpy(dtype=float)).all()
    assert json.loads(result.stdout)["metrics"]["validation"]["mae"] is not None


def test_first_row_with_an_extra_field_does_not_shift_the_columns(tmp_path):
    # pandas would quietly make the first column the index and shift every name by one.
    path = tmp_path / "shift.csv"
    path.write_text("date,a\n" + "".join(f"2024-01-{d:02d},{d}{',9' if d == 1 else ''}\n" for d in range(1, 29)))
    with pytest.raises(InputError, match="line 2 has more fields than the header's 2"):
        load_series(path)


@pytest.mark.parametrize("kind", ["dst_hourly", "dst_daily"])
def test_daylight_saving_jumps_are_regular_steps(tmp_path, kind):
    times = time_values(kind, 80)
    path = tmp_path / "dst.csv"
    path.write_text("date,a\n" + "".join(f"{t},{k % 7}\n" for k, t in enumerate(times)))
    series = load_series(path)
    assert len(series.values[0]) == 80 and series.freq == ("h" if kind == "dst_hourly" else "D")
    assert any("daylight saving" in note for note in series.notes)


@pytest.mark.slow
def test_ten_thousand_columns_load_as_ten_thousand_series(tmp_path):
    n, cols = 30, 10_000
    rng = np.random.default_rng(0)
    values = np.round(rng.normal(10, 1, size=(n, cols)), 2)
    frame = pd.DataFrame(values, columns=[f"s{i}" for i in range(cols)])
    frame.insert(0, "date", pd.date_range("2024-01-01", periods=n, freq="D").strftime("%Y-%m-%d"))
    path = tmp_path / "wide.csv"
    frame.to_csv(path, index=False)
    series = load_series(path)
    assert len(series) == cols and series.freq == "D"
    assert all(len(v) == n and np.isfinite(v).all() for v in series.values)


def test_too_large_for_memory_fails_early(tmp_path, monkeypatch):
    from lstmcast.data import csvfile

    path = tmp_path / "big.csv"
    path.write_text("date,a\n" + "".join(f"2024-01-{d:02d},{d}\n" for d in range(1, 29)))
    monkeypatch.setattr(csvfile, "available_memory", lambda: 1000)
    with pytest.raises(InputError, match="MB are available; split the file"):
        load_series(path)


# --- real processes: exit code 2, one line, no traceback, no hang ---------------------------------------

FIXED = {
    "random.bin": bytes(range(256)) * 3,
    "utf16-no-bom.csv": "date,a\n2024-01-01,1\n2024-01-02,2\n".encode("utf-16-le"),
    "ragged.csv": b"date,a\n2024-01-01,1\n2024-01-02,2,3,4\n",
    "ragged-first-row.csv": b"timestamp,a,b\n2024-01-01 00:00:00,1,2,3\n2024-01-01 01:00:00,1,2\n",
    "huge.csv": b"date,a,b\n2024-01-01,1e308,1\n2024-01-02,-1e308,2\n",
    "dup-headers.csv": b"timestamp,a,a\n2024-01-01 00:00:00,1,2\n",
}


@pytest.mark.slow
def test_hostile_files_through_real_processes(cli, trained_run, tmp_path):
    running = {}
    for name, data in FIXED.items():  # all at once: they are independent
        path = tmp_path / name
        path.write_bytes(data)
        out = tmp_path / f"{name}.forecast.csv"
        running[name] = (path, out, cli.start("predict", "--run", trained_run.run_dir, "--data", path, "--output", out))
    for name, (path, out, proc) in running.items():
        stdout, stderr = proc.communicate(timeout=60)  # a hang fails here
        assert proc.returncode == EXIT_INPUT, (name, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("lstmcast: error: ") and str(path) in lines[0], stderr
        assert stdout == "" and not out.exists()


def test_one_row_of_new_data_is_forecast_from_its_padded_history(cli, trained_run, tmp_path):
    """One observation of a new product is a history, not hostile input (issue 30): a forecast and a note."""
    path = tmp_path / "one-row.csv"
    path.write_bytes(b"timestamp,a,b\n2024-01-01 00:00:00,1,2\n")
    out = tmp_path / "fc.csv"
    done = cli("predict", "--run", trained_run.run_dir, "--data", path, "--output", out)
    assert done.returncode == 0 and "padded at the front" in done.stderr, done.stderr
    forecast = pd.read_csv(out)
    assert len(forecast) == 2 * trained_run.horizon and np.isfinite(forecast["forecast"]).all()


MEMORY_DRIVER = """
import sys
from lstmcast.data import csvfile
csvfile.available_memory = lambda: 10_000
from lstmcast.cli import main
main()
"""


def test_too_large_for_memory_in_a_real_process(cli, trained_run):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", MEMORY_DRIVER, "predict", "--run", str(trained_run.run_dir),
                             "--data", str(trained_run.data)], capture_output=True, text=True, env=cli.env,
                            timeout=60, check=False)
    assert result.returncode == EXIT_INPUT
    assert "MB of memory to load" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def wide_with_empty_columns(path: Path, columns: int = 100_000, rows: int = 30) -> Path:
    """c0 .. c{columns-1}, only c0 and c1 filled: a header line of ~700 kB."""
    with path.open("w", encoding="utf-8") as handle:
        handle.write(",".join(f"c{k}" for k in range(columns)) + "\n")
        for r in range(rows):
            handle.write(f"{10 + r % 5 + r / 10:.2f},{r % 7}" + "," * (columns - 2) + "\n")
    return path


def test_a_header_longer_than_the_sniffed_bytes_is_read_whole(tmp_path):
    from lstmcast.data.csvfile import SNIFF_BYTES, _sniff

    path = wide_with_empty_columns(tmp_path / "wide.csv", columns=20_000, rows=2)
    _, sep, _, header = _sniff(path)
    assert len(",".join(header)) > SNIFF_BYTES and sep == ","
    assert header == [f"c{k}" for k in range(20_000)]  # the last name is not cut off ('c10' of 'c10947')


@pytest.mark.slow
def test_100000_columns_two_filled_through_a_real_process(cli, tmp_path):
    """Refused as "duplicate column names ['c10']" once; now the first empty column is named."""
    path = wide_with_empty_columns(tmp_path / "wide.csv")
    assert path.stat().st_size > 3_000_000
    result = cli("train", path, "--run-dir", tmp_path / "run", "--epochs", "1", "--max-steps", "2", "--hidden", "8",
                 "--device", "cpu", "--horizon", "3", "--lookback", "6", timeout=300)
    assert result.returncode == EXIT_INPUT, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("lstmcast: error:")]
    assert lines == [f"lstmcast: error: {path}: series 'c2' has no values at all; drop it or fill it"], result.stderr
    assert "duplicate column" not in result.stderr and "Traceback" not in result.stderr
