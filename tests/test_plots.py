"""PNG plots: real images of the expected size, intervals shaded, safe file names, matplotlib optional."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import HAS_MATPLOTLIB, TINY, TINY_MODEL
from typer.testing import CliRunner

from lstmcast import api
from lstmcast import plots
from lstmcast.cli.app import app
from lstmcast.errors import EXIT_INPUT

needs_matplotlib = pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib is not installed: pip install '.[plot]'")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the PNG header: signature, then the IHDR chunk."""
    head = Path(path).read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def invoke(*args: object, code: int = 0):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    return result


def hide_matplotlib(monkeypatch) -> None:
    """Make `import matplotlib` fail as it does where it is not installed."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    for name in ("matplotlib", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, name, None)


def test_file_names_are_safe_and_unique():
    ids = ["H1", "a/b", "a_b", "A/B", "../etc/passwd", "", "Ünïcode id", "x" * 300, "h1", "H1.png"]
    names = plots.file_names(ids)
    assert names["H1"] == "H1.png" and names["a_b"] == "a_b.png"
    lowered = [n.lower() for n in names.values()]
    assert len(set(lowered)) == len(ids), "unique even on case-insensitive file systems"
    for name in names.values():
        assert name.endswith(".png") and not name.startswith(".") and len(name) < 100
        assert all(ch.isascii() and (ch.isalnum() or ch in "._-") for ch in name), name


def test_symmetric_q_columns_make_bands():
    columns = ["series", "date", "forecast", "q0.1", "q0.5", "q0.9", "q0.25", "q0.75", "q0.3"]
    assert plots.interval_bands(columns) == [(0.8, "q0.1", "q0.9"), (0.5, "q0.25", "q0.75")]
    assert plots.interval_bands(["forecast", "q0.5"]) == []


def _blue_pixels(path: Path) -> int:
    """Pixels of the light blue an interval band paints on white."""
    from matplotlib.image import imread

    rgb = imread(path)[..., :3]
    return int(((rgb[..., 2] - rgb[..., 0] > 0.08) & (rgb[..., 0] > 0.6)).sum())


@needs_matplotlib
def test_forecast_plot_shades_intervals_from_q_columns(tmp_path):
    times = pd.date_range("2024-03-01", periods=24, freq="h")
    forecast = 10 + np.sin(np.arange(24) / 4)
    frame = pd.DataFrame({"series": "load/north", "timestamp": times, "forecast": forecast})
    banded = frame.assign(**{"q0.1": forecast - 2, "q0.9": forecast + 2, "q0.25": forecast - 1, "q0.75": forecast + 1})
    history = {"load/north": 10 + np.sin(np.arange(100) / 4)}
    plain_png, = plots.forecast_plots(tmp_path / "plain", frame, history, "h")
    band_png, = plots.forecast_plots(tmp_path / "band", banded, history, "h")
    assert plain_png.name == band_png.name and plain_png.name.startswith("load_north-")
    assert png_size(band_png) == png_size(plain_png) == (plots.WIDTH, plots.HEIGHT)
    assert _blue_pixels(band_png) > _blue_pixels(plain_png) + 5000, "the band is shaded"


@needs_matplotlib
def test_loss_png_in_the_run(trained_run):
    assert png_size(trained_run.run_dir / "loss.png") == (plots.LOSS_WIDTH, plots.LOSS_HEIGHT)
    assert len(json.loads((trained_run.run_dir / "metrics.json").read_text())["history"]) == 1


@needs_matplotlib
def test_predict_and_evaluate_plot_one_png_per_series(trained_run, tmp_path):
    pred = json.loads(invoke("predict", "--run", trained_run.run_dir, "--output", tmp_path / "f.csv",
                             "--plot", tmp_path / "p", "--json").stdout)
    assert sorted(Path(f).name for f in pred["files"][1:]) == ["a.png", "b.png"]
    assert all(png_size(f) == (plots.WIDTH, plots.HEIGHT) for f in pred["files"][1:])
    invoke("evaluate", "--run", trained_run.run_dir, "--data", trained_run.data, "--plot", tmp_path / "e",
           "--plot-max", "1", "-q")
    assert [p.name for p in (tmp_path / "e").iterdir()] == ["a.png"]


def test_missing_matplotlib_is_one_line_and_exit_2(trained_run, tmp_path, monkeypatch):
    hide_matplotlib(monkeypatch)
    out = tmp_path / "f.csv"
    result = invoke("predict", "--run", trained_run.run_dir, "--output", out, "--plot", tmp_path / "p",
                    code=EXIT_INPUT)
    assert result.stderr.strip().splitlines() == [
        "lstmcast: error: --plot needs matplotlib, which is not installed: pip install -c constraints.txt -e '.[plot]' "
        "in your lstmcast clone, or pip install matplotlib"]
    assert not out.exists() and not (tmp_path / "p").exists()
    notes: list[str] = []
    report = api.train(trained_run.data, horizon=6, lookback=12, train_config=TINY, run_dir=tmp_path / "run",
                       on_note=notes.append, **TINY_MODEL)
    assert not (report.run_dir / "loss.png").exists()
    assert ("no loss.png: matplotlib is not installed (pip install -c constraints.txt -e '.[plot]' in your lstmcast "
            "clone, or pip install matplotlib)") in notes


def test_predict_without_plot_imports_neither_matplotlib_nor_torch(trained_run, tmp_path):
    code = (
        "import sys\n"
        "from lstmcast.cli import main\n"
        f"sys.argv = ['lstmcast', 'predict', '--run', {str(trained_run.run_dir)!r}, '--output', "
        f"{str(tmp_path / 'f.csv')!r}, '-q']\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
        "print(sorted(m for m in ('matplotlib', 'torch', 'sklearn') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
