"""Covariates and calendar features: values, plumbing (torch = numpy, no leaks), scaling, errors, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import TINY, TINY_MODEL, seasonal, write_frame
from lstmcast import api
from lstmcast.data import covariates
from lstmcast.data.calendar_features import calendar_kinds, features
from lstmcast.config import DataConfig, ModelConfig, WindowNorm
from lstmcast.data.series import load_series
from lstmcast.errors import InputError


def test_calendar_values_for_known_timestamps():
    # 2024-01-01 is a Monday; 06:00 is a quarter of the day.
    hourly = features(pd.to_datetime(["2024-01-01 06:00", "2024-01-03 12:00"]), ("hour", "dayofweek"))
    np.testing.assert_allclose(hourly[0], [1, 0, 0, 1], atol=1e-6)
    np.testing.assert_allclose(hourly[1], [0, -1, np.sin(4 * np.pi / 7), np.cos(4 * np.pi / 7)], atol=1e-6)
    daily = features(pd.to_datetime(["2024-02-15"]), ("dayofmonth", "month"))  # 2024 is a leap year
    np.testing.assert_allclose(daily[0], [np.sin(2 * np.pi * 14 / 29), np.cos(2 * np.pi * 14 / 29),
                                          np.sin(2 * np.pi / 12), np.cos(2 * np.pi / 12)], atol=1e-6)
    assert features(pd.to_datetime(["2024-04-01"]), ("month",))[0, 0] == pytest.approx(1.0)
    assert calendar_kinds("h") == ("hour", "dayofweek") and calendar_kinds("D") == ("dayofweek", "dayofmonth", "month")
    assert calendar_kinds("MS") == calendar_kinds("W-SUN") == ("month",)
    assert calendar_kinds("YS") == calendar_kinds(None) == ()


def _model(**kw):
    from lstmcast.model.network import LSTMForecaster

    torch.manual_seed(0)
    config = ModelConfig(**{"lookback": 8, "horizon": 3, "hidden": 6, "layers": 2, "input_size": 4, "known_size": 2,
                            **kw})
    return config, LSTMForecaster(config).eval()


@pytest.mark.parametrize("arch", [{}, {"cell": "gru", "attention": True}, {"bidirectional": True},
                                  {"cell": "peephole", "window_norm": WindowNorm.mean}])
def test_covariate_channels_same_in_torch_numpy_and_consistent_for_every_origin(arch):
    from lstmcast.config import Cell
    from lstmcast.model.numpy_forward import NumpyForecaster, expected_shapes

    arch = {k: Cell(v) if k == "cell" else v for k, v in arch.items()}
    config, model = _model(**arch)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected_shapes(config)
    g = torch.Generator().manual_seed(1)
    origins = 4
    x = torch.randn(2, config.lookback + origins - 1, generator=g)
    cov = torch.randn(2, config.lookback + origins - 1 + config.horizon, 3, generator=g)
    net = NumpyForecaster(config, {k: v.detach().numpy() for k, v in model.state_dict().items()})
    lookback, horizon = config.lookback, config.horizon
    with torch.no_grad():
        every = model.forward_origins(x, cov)
        # Origin k reads covariates up to its own origin and over its own horizon, nothing later.
        for k in range(origins):
            cut = model.forward_origins(x[:, :lookback + k], cov[:, :lookback + k + horizon])
            torch.testing.assert_close(every[:, k], cut[:, k], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(every[:, 0], model(x[:, :lookback], cov[:, :lookback + horizon]))
    np.testing.assert_allclose(net(x[:, :lookback].numpy(), cov[:, :lookback + horizon].numpy()),
                               every[:, 0].numpy(), atol=1e-5)


def test_no_leak_past_covariates_stop_at_origin_known_ones_reach_the_forecast():
    config, model = _model()
    x = torch.randn(1, config.lookback)
    cov = torch.randn(1, config.lookback + config.horizon, 3)
    with torch.no_grad():
        base = model(x, cov)
        later_past = cov.clone()
        later_past[:, config.lookback:, 0] += 5.0  # the past channel after the origin: never read
        torch.testing.assert_close(model(x, later_past), base)
        later_known = cov.clone()
        later_known[:, config.lookback:, 2] += 5.0  # a known channel over the forecast steps
        assert not torch.allclose(model(x, later_known), base)


def test_head_can_copy_a_future_covariate_into_the_forecast():
    # The plumbing lets a forecast equal a future-known covariate exactly (weights set by hand).
    from lstmcast.model.numpy_forward import NumpyForecaster

    config, model = _model(window_norm=WindowNorm.none, skip=False, input_size=2, known_size=1)
    state = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    width = config.hidden
    state["head.weight"][:, width:] = torch.eye(config.horizon)
    net = NumpyForecaster(config, {k: v.numpy() for k, v in state.items()})
    cov = np.random.default_rng(0).normal(size=(5, config.lookback + config.horizon, 1)).astype(np.float32)
    got = net(np.ones((5, config.lookback), np.float32), cov)
    np.testing.assert_allclose(got, cov[:, config.lookback:, 0], atol=1e-6)


def _long(tmp_path: Path, n: int = 60, future_rows: int = 0, name: str = "cov.csv") -> Path:
    """Series x, y (hourly): target = level + 5 * promo, a temperature, a categorical and a numeric static."""
    rng = np.random.default_rng(0)
    parts = []
    for k, (sid, kind, size) in enumerate([("x", "shop", 1.0), ("y", "mall", 3.0)]):
        promo = rng.integers(0, 2, n + future_rows).astype(float)
        value = seasonal(n + future_rows, level=10.0 * (k + 1), seed=k) + 5 * promo
        value[n:] = np.nan
        parts.append(pd.DataFrame({
            "id": sid, "time": pd.date_range("2024-01-01", periods=n + future_rows, freq="h").strftime("%Y-%m-%d %H:%M"),
            "value": value.round(3), "promo": promo, "temp": rng.normal(size=n + future_rows).round(3),
            "kind": kind, "size": size}))
    return write_frame(tmp_path / name, pd.concat(parts, ignore_index=True))


COVS = DataConfig(id_col="id", time_col="time", target=("value",), past_covariates=("temp",),
                  future_covariates=("promo",), static=("kind", "size"), calendar=True)


def test_scaling_fits_the_training_part_only(tmp_path):
    path = _long(tmp_path)
    clean, _, _ = covariates.prepare(path, load_series(path, COVS), COVS, val_size=10)
    frame = pd.read_csv(path)
    frame.loc[frame.groupby("id").tail(10).index, "temp"] = 1e6  # poison every validation tail
    poisoned_path = write_frame(tmp_path / "poisoned.csv", frame)
    poisoned, channels, _ = covariates.prepare(poisoned_path, load_series(poisoned_path, COVS), COVS, val_size=10)
    assert poisoned.center == clean.center and poisoned.scale == clean.scale
    assert abs(channels[0][-1, 0]) > 1e3  # the poison is there, scaled with the clean statistics


def test_static_categorical_one_hot_and_channel_order(tmp_path):
    path = _long(tmp_path)
    spec, channels, _ = covariates.prepare(path, load_series(path, COVS), COVS, val_size=10)
    assert spec.levels == {"kind": ["mall", "shop"], "size": None}
    assert spec.calendar == ("hour", "dayofweek")
    assert spec.channel_names() == ["temp", "kind=mall", "kind=shop", "size", "promo",
                                    "hour_sin", "hour_cos", "dayofweek_sin", "dayofweek_cos"]
    assert (spec.channels, spec.known) == (9, 5)
    np.testing.assert_array_equal(channels[0][:, 1:3], [[0, 1]] * 60)  # x is a shop
    np.testing.assert_array_equal(channels[1][:, 1:3], [[1, 0]] * 60)
    assert channels[0][0, 3] < 0 < channels[1][0, 3]  # size 1 and 3, standardised


def test_static_must_be_constant_per_series_and_needs_long_layout(tmp_path, hourly_csv):
    frame = pd.read_csv(_long(tmp_path))
    frame.loc[5, "kind"] = "mall"
    path = write_frame(tmp_path / "varying.csv", frame)
    with pytest.raises(InputError, match=r"static column 'kind' varies within series 'x'"):
        covariates.prepare(path, load_series(path, COVS), COVS, val_size=10)
    wide = DataConfig(static=("a",), target=("b",))
    with pytest.raises(InputError, match="--static needs the long layout"):
        covariates.prepare(hourly_csv, load_series(hourly_csv, wide), wide, val_size=10)


def test_train_predict_evaluate_with_covariates(tmp_path):
    path = _long(tmp_path)
    report = api.train(path, COVS, horizon=4, lookback=12, train_config=TINY, run_dir=tmp_path / "run", **TINY_MODEL)
    meta = json.loads((report.run_dir / "run.json").read_text())
    assert meta["covariates"]["future"] == ["promo"] and meta["model"]["input_size"] == 10
    assert meta["model"]["known_size"] == 5 and meta["data"]["static"] == ["kind", "size"]
    assert any("inputs besides the target" in n for n in report.notes)
    toml = (report.run_dir / "config.toml").read_text()  # train --config config.toml repeats the run
    assert 'past_covariates = "temp"' in toml and 'static = "kind,size"' in toml and "calendar = true" in toml
    with pytest.raises(InputError, match="future covariates"):
        api.predict(report.run_dir)  # the stored tails hold no future promo
    with pytest.raises(InputError, match=r"'promo' of series 'x' is missing for 4 of the 4 steps"):
        api.predict(report.run_dir, data=path)
    future = _long(tmp_path, future_rows=4, name="future.csv")
    forecast = api.predict(report.run_dir, data=future).forecast
    assert len(forecast) == 8 and np.isfinite(forecast["forecast"]).all()
    assert forecast["time"].iloc[0] == pd.Timestamp("2024-01-03 12:00")
    assert np.isfinite(api.evaluate(report.run_dir, path)["overall"]["mae"])


def test_calendar_off_by_default_on_with_flag_and_stored_tails_predict(tmp_path, hourly_csv):
    on = api.train(hourly_csv, DataConfig(calendar=True), horizon=4, lookback=12, train_config=TINY,
                   run_dir=tmp_path / "on", **TINY_MODEL)
    assert on.model["input_size"] == 5 and on.model["known_size"] == 4
    assert len(api.predict(on.run_dir, horizon=10).forecast) == 20  # calendar runs recurse beyond the horizon
    off = api.train(hourly_csv, horizon=4, lookback=12, train_config=TINY, run_dir=tmp_path / "off", **TINY_MODEL)
    assert off.model["input_size"] == 1 and "covariates" not in json.loads((off.run_dir / "run.json").read_text())


def test_cli_predict_names_missing_future_covariate(tmp_path, cli):
    path = _long(tmp_path)
    api.train(path, COVS, horizon=4, lookback=12, train_config=TINY, run_dir=tmp_path / "run", **TINY_MODEL)
    done = cli("predict", "--run", tmp_path / "run", "--data", path, "--output", tmp_path / "fc.csv")
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "'promo'" in lines[0] and "'x'" in lines[0] and "Traceback" not in done.stderr
    assert not (tmp_path / "fc.csv").exists()
