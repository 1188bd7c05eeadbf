"""What a user checks first, as properties: a constant series forecasts its constant, a series scaled by 1,000
gets forecasts scaled by 1,000, a straight line is continued and a pure seasonal pattern is repeated."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstmcast import api
from lstmcast.config import Device, ModelConfig, TrainConfig, WindowNorm
from lstmcast.model.numpy_forward import NumpyForecaster
from lstmcast.model.network import LSTMForecaster

SHORT = TrainConfig(epochs=1, max_steps=3, batch_size=16, device=Device.cpu)
SMALL = {"hidden": 8, "layers": 2}


def wide(tmp_path, values: dict[str, np.ndarray], name: str = "data.csv", freq: str = "MS"):
    n = len(next(iter(values.values())))
    frame = pd.DataFrame({"month": pd.date_range("2010-01-01", periods=n, freq=freq).strftime("%Y-%m-%d"), **values})
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


@settings(max_examples=25, deadline=None)
@given(value=st.floats(-1e6, 1e6, allow_nan=False), seed=st.integers(0, 2**16))
def test_any_network_forecasts_a_flat_window_as_its_value(value, seed):
    """torch and numpy alike, any weights: nothing but the window's own level comes out."""
    import torch

    torch.manual_seed(seed)
    config = ModelConfig(lookback=12, horizon=4, hidden=8, layers=2)
    net = LSTMForecaster(config).eval()
    window = np.full((2, 12), value, dtype=np.float32)
    with torch.no_grad():
        out = net(torch.from_numpy(window)).numpy()
    np.testing.assert_allclose(out, window[:, :4], rtol=1e-6)  # the window's mean, to float32's last digit
    weights = {k: v.numpy() for k, v in net.state_dict().items()}
    np.testing.assert_allclose(NumpyForecaster(config, weights)(window), window[:, :4], rtol=1e-6)


def test_only_a_window_that_does_not_move_is_forecast_as_its_level():
    """A window that moves at all keeps the network's forecast, scaled by the clamped spread (MIN_STD), in torch
    and numpy alike: scaling nearly flat windows by their own spread lost on M4 Weekly."""
    import torch

    torch.manual_seed(0)
    config = ModelConfig(lookback=12, horizon=4, hidden=8, layers=2, window_norm=WindowNorm.revin)
    net = LSTMForecaster(config).eval()
    window = np.full((1, 12), 5.0, dtype=np.float32)
    window[0, -1] += 1e-3
    with torch.no_grad():
        out = net(torch.from_numpy(window)).numpy()
    assert np.abs(out - window.mean()).max() > 1e-5  # not pinned to the level
    weights = {k: v.numpy() for k, v in net.state_dict().items()}
    np.testing.assert_allclose(NumpyForecaster(config, weights)(window), out, rtol=1e-5)


@pytest.mark.parametrize("value", [0.0, 42.0, -3.5, 1e6])
def test_a_constant_series_forecasts_its_constant(tmp_path, value):
    data = wide(tmp_path, {"flat": np.full(60, value), "moving": 10 + np.sin(np.arange(60))})
    report = api.train(data, horizon=6, train_config=SHORT, run_dir=tmp_path / "run", **SMALL)
    fc = api.predict(report.run_dir).forecast
    flat = fc.loc[fc["series"] == "flat", "forecast"].to_numpy()
    np.testing.assert_allclose(flat, value, rtol=1e-5, atol=1e-9)  # float32 arithmetic in logs: 1e6 -> 999999.94


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 1000), positive=st.booleans())
def test_scaling_a_file_by_1000_scales_its_forecasts_by_1000(tmp_path_factory, seed, positive):
    tmp_path = tmp_path_factory.mktemp("scaled")
    rng = np.random.default_rng(seed)
    base = np.cumsum(rng.standard_normal((2, 60)), axis=1) + (100 if positive else 0)
    one = wide(tmp_path, {"a": base[0], "b": base[1]}, "one.csv")
    big = wide(tmp_path, {"a": base[0] * 1000, "b": base[1] * 1000}, "big.csv")
    cfg = TrainConfig(epochs=2, epoch_steps=5, batch_size=16, device=Device.cpu, seed=seed)
    fc = [api.predict(api.train(path, horizon=6, train_config=cfg, run_dir=tmp_path / path.stem, **SMALL).run_dir)
          .forecast["forecast"].to_numpy() for path in (one, big)]
    np.testing.assert_allclose(fc[1], fc[0] * 1000, rtol=2e-3, atol=1e-6 * np.abs(fc[1]).max())


DEFAULTS = TrainConfig(device=Device.cpu)  # the default budget, sized to the data


@pytest.mark.slow
def test_a_straight_line_is_continued(tmp_path):
    data = wide(tmp_path, {"line": 100.0 + 2.0 * np.arange(80)})
    report = api.train(data, horizon=6, train_config=DEFAULTS, run_dir=tmp_path / "run")
    forecast = api.predict(report.run_dir).forecast["forecast"].to_numpy()
    expected = 100.0 + 2.0 * np.arange(80, 86)
    np.testing.assert_allclose(forecast, expected, rtol=0.01)
    assert np.all(np.diff(forecast) > 0)  # it keeps rising, step after step


@pytest.mark.slow
def test_a_pure_seasonal_pattern_is_repeated(tmp_path):
    pattern = np.array([10, 12, 15, 20, 26, 30, 31, 28, 22, 17, 13, 11], dtype=float)
    data = wide(tmp_path, {"season": np.tile(pattern, 8)})
    report = api.train(data, horizon=12, train_config=DEFAULTS, run_dir=tmp_path / "run")
    forecast = api.predict(report.run_dir).forecast["forecast"].to_numpy()
    np.testing.assert_allclose(forecast, pattern, rtol=0.05)
