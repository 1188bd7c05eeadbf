"""Forking-sequence training: one LSTM pass trains many consecutive forecast origins."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import TINY, TINY_MODEL

from lstmcast import api
from lstmcast.data import windows
from lstmcast.config import ModelConfig, WindowNorm
from lstmcast.model.network import LSTMForecaster
from lstmcast.train.loop import gather_forking


@pytest.mark.parametrize("norm", list(WindowNorm))
def test_first_origin_is_the_plain_window_forecast(norm):
    torch.manual_seed(0)
    model = LSTMForecaster(ModelConfig(lookback=10, horizon=4, hidden=8, window_norm=norm)).eval()
    x = torch.randn(3, 10 + 6 - 1)
    with torch.inference_mode():
        every = model.forward_origins(x)
        assert every.shape == (3, 6, 4)
        torch.testing.assert_close(every[:, 0], model(x[:, :10]))


def test_origins_never_see_later_values():
    """Origin k forecasts from values up to x[L - 1 + k] only: poisoning later ones changes nothing."""
    torch.manual_seed(0)
    model = LSTMForecaster(ModelConfig(lookback=8, horizon=3, hidden=8)).eval()
    x = torch.randn(2, 8 + 5 - 1)
    with torch.inference_mode():
        clean = model.forward_origins(x)
        for k in range(5):
            poisoned = x.clone()
            poisoned[:, 8 + k:] = 1e3
            torch.testing.assert_close(model.forward_origins(poisoned)[:, : k + 1], clean[:, : k + 1])


def test_gather_masks_origins_outside_the_training_part():
    lengths = np.array([30, 25])
    flat, offsets = windows.concat([np.arange(n, dtype=np.float32) + 100 * s for s, n in enumerate(lengths)])
    lookback, horizon, val_size, forking = 6, 3, 4, 5
    train, _, _ = windows.origins(offsets, lengths, lookback, horizon, val_size)
    data = torch.from_numpy(flat)
    valid = torch.zeros(len(flat), dtype=torch.bool)
    valid[torch.from_numpy(train)] = True
    start = torch.from_numpy(train)
    x, y, mask = gather_forking(data, valid, start, lookback, horizon, forking)
    assert x.shape == (len(train), lookback + forking - 1) and y.shape == (len(train), forking, horizon)
    for row, s in enumerate(train):
        np.testing.assert_array_equal(x[row, :lookback].numpy(), flat[s - lookback:s])
        for k in range(forking):
            origin = s + k
            assert bool(mask[row, k]) == (origin in set(train.tolist()))
            if mask[row, k]:
                np.testing.assert_array_equal(y[row, k].numpy(), flat[origin:origin + horizon])
                # a valid origin's targets stay in its series and before the validation part
                series = int(np.searchsorted(offsets, origin, side="right") - 1)
                assert origin + horizon <= offsets[series] + lengths[series] - val_size
    assert mask[:, 0].all()  # every sequence starts at a training origin


def test_forking_run_trains_counts_origins_and_predicts(hourly_csv, tmp_path):
    cfg = replace(TINY, forking=4)
    report = api.train(hourly_csv, horizon=6, lookback=12, train_config=cfg, run_dir=tmp_path / "run", **TINY_MODEL)
    m = report.metrics
    # Each step trains up to batch x K origins; masked origins do not count.
    assert m["steps"] * cfg.batch_size < m["train_windows"] <= m["steps"] * cfg.batch_size * 4
    assert np.isfinite(m["best_val_loss"])
    assert np.isfinite(api.predict(report.run_dir).forecast["forecast"]).all()
