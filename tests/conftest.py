"""Shared fixtures: tiny generated CSVs, the real files in ../shared/data, one trained tiny run.

Everything trains with the tiny-run settings (`TINY`: one epoch, three optimiser steps,
eight hidden units), so the whole suite runs in well under two minutes on two CPU cores.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lstmcast.config import Device, TrainConfig

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO / "sample_data"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# Tiny LSTMs gain nothing from intra-op threads, and on busy cores (a benchmark running
# beside the tests) two threads spin against each other: measured 100x slower than one.
torch.set_num_threads(1)
os.environ["OMP_NUM_THREADS"] = "1"

# What `train` writes into a run directory (loss.png only where matplotlib is installed).
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
RUN_FILES = sorted(["config.toml", "metrics.json", "run.json", "weights.safetensors"] + ["loss.png"] * HAS_MATPLOTLIB)

# One epoch of at most three batches: the end-to-end path in a fraction of a second.
TINY = TrainConfig(epochs=1, max_steps=3, batch_size=16, device=Device.cpu)
TINY_MODEL = {"hidden": 8, "layers": 2}
TINY_CLI = ["--epochs", "1", "--max-steps", "3", "--batch-size", "16", "--hidden", "8", "--device", "cpu"]


def seasonal(n: int, period: int = 12, level: float = 10.0, amp: float = 3.0, noise: float = 0.2,
             seed: int = 0) -> np.ndarray:
    """A noisy sine with a season of `period` steps."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return level + amp * np.sin(2 * np.pi * t / period) + noise * rng.standard_normal(n)


def write_frame(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False, lineterminator="\n")
    return path


def wide_frame(n: int = 80, freq: str = "D", start: str = "2024-01-01", time_col: str = "date",
               fmt: str | None = "%Y-%m-%d") -> pd.DataFrame:
    times = pd.date_range(start, periods=n, freq=freq)
    return pd.DataFrame({
        time_col: times.strftime(fmt) if fmt else times,
        "a": seasonal(n, seed=1).round(3),
        "b": seasonal(n, level=50.0, amp=8.0, seed=2).round(3),
    })


def long_frame(ids: tuple[str, ...] = ("x", "y"), n: int = 80, start: str = "2024-01-01") -> pd.DataFrame:
    times = pd.date_range(start, periods=n, freq="D").strftime("%Y-%m-%d")
    parts = [pd.DataFrame({"id": sid, "date": times, "value": seasonal(n, level=10.0 * (k + 1), seed=k).round(3)})
             for k, sid in enumerate(ids)]
    return pd.concat(parts, ignore_index=True)


@pytest.fixture
def wide_csv(tmp_path: Path) -> Path:
    """Wide layout: a `date` column (daily) and series `a`, `b`."""
    return write_frame(tmp_path / "wide.csv", wide_frame())


@pytest.fixture
def long_csv(tmp_path: Path) -> Path:
    """Long layout: `id`, `date`, `value` with series `x`, `y`."""
    return write_frame(tmp_path / "long.csv", long_frame())


@pytest.fixture
def notime_csv(tmp_path: Path) -> Path:
    """Two value columns and no time column: row order is time."""
    return write_frame(tmp_path / "notime.csv", wide_frame().drop(columns="date"))


@pytest.fixture
def inttime_csv(tmp_path: Path) -> Path:
    """An integer time column `period` starting at 100, step 5, and one series `a`."""
    n = 80
    return write_frame(tmp_path / "inttime.csv", pd.DataFrame({"period": 100 + 5 * np.arange(n), "a": seasonal(n)}))


@pytest.fixture
def hourly_csv(tmp_path: Path) -> Path:
    """Wide hourly: `timestamp` (YYYY-MM-DD HH:MM:SS), series `a`, `b`, 120 steps."""
    frame = wide_frame(n=120, freq="h", time_col="timestamp", fmt="%Y-%m-%d %H:%M:%S")
    return write_frame(tmp_path / "hourly.csv", frame)


@pytest.fixture
def monthly_csv(tmp_path: Path) -> Path:
    """Wide monthly: `month` as 'YYYY-MM' (2020-01 .. 2024-12), one series `revenue`."""
    n = 60
    months = pd.period_range("2020-01", periods=n, freq="M").astype(str)
    return write_frame(tmp_path / "monthly.csv", pd.DataFrame({"month": months, "revenue": seasonal(n, level=100.0)}))


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write raw CSV text to tmp_path/name and return the path."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def shared_data() -> Callable[[str], Path]:
    """Path of a file in ../shared/data; skips the test when it is absent."""

    def get(name: str) -> Path:
        path = SHARED_DATA / name
        if not path.is_file():
            pytest.skip(f"{path} not available")
        return path

    return get


@dataclass(frozen=True)
class TrainedRun:
    run_dir: Path
    data: Path  # the CSV it was trained on (hourly, wide, series a and b)
    horizon: int
    lookback: int
    metrics: dict


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """One tiny run, trained once per session; copy it (`run_copy`) before changing it."""
    from lstmcast import api

    root = tmp_path_factory.mktemp("trained")
    data = write_frame(root / "hourly.csv", wide_frame(n=120, freq="h", time_col="timestamp",
                                                       fmt="%Y-%m-%d %H:%M:%S"))
    report = api.train(data, horizon=6, lookback=12, train_config=TINY, run_dir=root / "run", **TINY_MODEL)
    return TrainedRun(run_dir=report.run_dir, data=data, horizon=6, lookback=12, metrics=report.metrics)


@pytest.fixture
def run_copy(trained_run: TrainedRun, tmp_path: Path) -> Path:
    """A private copy of the session's trained run directory."""
    target = tmp_path / "run_copy"
    shutil.copytree(trained_run.run_dir, target)
    return target


@pytest.fixture
def lstmcast_exe() -> str:
    """The installed `lstmcast` command of the running interpreter's environment."""
    beside = Path(sys.executable).parent / ("lstmcast.exe" if os.name == "nt" else "lstmcast")
    exe = str(beside) if beside.is_file() else shutil.which("lstmcast")
    if exe is None:
        pytest.skip("the lstmcast command is not installed")
    return exe


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """Environment for real subprocess runs: one torch thread, no colour forcing."""
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "CLICOLOR_FORCE", "PY_COLORS")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONIOENCODING="utf-8", COLUMNS="100")
    return env


# --- real processes -------------------------------------------------------------------------------

# Small and fast for real `lstmcast train` processes: 8 hidden units, 20 batches of 32 per epoch.
FAST_CLI = ["--hidden", "8", "--batch-size", "32", "--device", "cpu", "--horizon", "6", "--lookback", "12"]


@dataclass
class Cli:
    """Runs the installed `lstmcast` as a real process."""

    exe: str
    env: dict[str, str]

    def args(self, *args: object) -> list[str]:
        return [self.exe, *(str(a) for a in args)]

    def __call__(self, *args: object, cwd: Path | None = None, timeout: float = 120):
        import subprocess

        return subprocess.run(self.args(*args), capture_output=True, text=True, encoding="utf-8", env=self.env,
                              cwd=cwd, timeout=timeout, check=False)

    def start(self, *args: object, cwd: Path | None = None):
        import subprocess

        return subprocess.Popen(self.args(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                encoding="utf-8", env=self.env, cwd=cwd)


@pytest.fixture
def cli(lstmcast_exe: str, subprocess_env: dict[str, str]) -> Cli:
    return Cli(lstmcast_exe, subprocess_env)


def pytest_collection_modifyitems(config, items):
    """The fast tier (`-m fast`, `python3 dev.py test --fast`) is every test not marked slow."""
    for item in items:
        if item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.fast)
