"""Real learning: on strongly seasonal data the trained model beats the naive forecast on held-out points.

The model is trained on everything except the last `HOLD_OUT` points, which it never sees (not even for
early stopping), and evaluated on them with `api.evaluate`. Default model and training settings (the
sine uses 5 epochs instead of 50: it is learned within them); each test takes well under 30 s on one core.
"""

from __future__ import annotations

import pytest

import numpy as np
import pandas as pd
from conftest import write_frame

from lstmcast import api
from lstmcast.config import Device, TrainConfig

HOLD_OUT = 12


def train_and_evaluate(full: pd.DataFrame, tmp_path, **train_kw) -> dict:
    train_csv = write_frame(tmp_path / "train.csv", full.iloc[:-HOLD_OUT])
    full_csv = write_frame(tmp_path / "full.csv", full)
    report = api.train(train_csv, train_config=TrainConfig(device=Device.cpu, **train_kw), run_dir=tmp_path / "run")
    return api.evaluate(report.run_dir, full_csv, test_size=HOLD_OUT)


@pytest.mark.slow
def test_beats_naive_on_airline_passengers(shared_data, tmp_path):
    full = pd.read_csv(shared_data("airline-passengers.csv"))
    result = train_and_evaluate(full, tmp_path)
    model, naive = result["overall"]["mae"], result["baselines"]["naive"]["mae"]
    assert result["test_size"] == HOLD_OUT and result["season"] == 12
    assert model < naive, f"model MAE {model:.2f} is not below naive MAE {naive:.2f}"


@pytest.mark.slow
def test_beats_naive_on_noisy_seasonal_sine(tmp_path):
    rng = np.random.default_rng(3)
    n = 144
    t = np.arange(n)
    values = 100 + 0.05 * t + 20 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 2, n)
    months = pd.period_range("2000-01", periods=n, freq="M").astype(str)
    result = train_and_evaluate(pd.DataFrame({"month": months, "y": values.round(3)}), tmp_path, epochs=5)
    model, naive = result["overall"]["mae"], result["baselines"]["naive"]["mae"]
    assert model < naive, f"model MAE {model:.2f} is not below naive MAE {naive:.2f}"
