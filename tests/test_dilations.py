"""Dilated layers (--dilations): what they compute, the auto rule, and how a run keeps them."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TINY, seasonal, write_frame

from lstmcast import api
from lstmcast.config import Cell, ModelConfig, WindowNorm
from lstmcast.errors import EXIT_INPUT, EXIT_RUN, InputError, RunDirError
from lstmcast.model.network import LSTMForecaster
from lstmcast.model.numpy_forward import NumpyForecaster, expected_shapes
from lstmcast.train.defaults import parse_dilations, pick_dilations, seasonal_acf


@pytest.mark.parametrize("cell", [Cell.lstm, Cell.gru])
@pytest.mark.parametrize("dilations", [(1, 4), (3, 2), (1, 12)])
def test_numpy_forward_matches_torch(cell, dilations):
    torch.manual_seed(0)
    config = ModelConfig(lookback=12, horizon=3, hidden=6, cell=cell, dilations=dilations, attention=True)
    model = LSTMForecaster(config).eval()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected_shapes(config)
    net = NumpyForecaster(config, {k: v.numpy() for k, v in model.state_dict().items()})
    x = torch.randn(5, 12) * 2 + 3
    with torch.inference_mode():
        expected = model(x).numpy()
        # Origin 0 of a forking sequence is the plain window forecast: padding never reaches a real step.
        torch.testing.assert_close(model.forward_origins(torch.cat([x, x[:, :5]], 1))[:, 0], model(x))
    np.testing.assert_allclose(net(x.numpy()), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cell", [Cell.lstm, Cell.gru])
def test_dilations_of_one_are_the_plain_encoder(cell):
    """Same names, shapes, initialisation and outputs as nn.LSTM / nn.GRU when no layer is dilated."""
    torch.manual_seed(0)
    plain = LSTMForecaster(ModelConfig(lookback=10, horizon=2, hidden=5, cell=cell)).eval()
    torch.manual_seed(0)
    dilated = LSTMForecaster(ModelConfig(lookback=10, horizon=2, hidden=5, cell=cell, dilations=(1, 2))).eval()
    assert type(dilated.encoder).__name__ == "DilatedRNN"
    dilated.encoder.dilations = (1, 1)  # the same module, every layer undilated
    for name, value in plain.state_dict().items():
        torch.testing.assert_close(dilated.state_dict()[name], value, rtol=0, atol=0)
    x = torch.randn(4, 10)
    with torch.inference_mode():
        torch.testing.assert_close(dilated(x), plain(x))


def test_a_dilated_layer_reads_only_its_own_chain():
    """One layer dilated by 4: the last state depends on the steps 4, 8, ... before it and on nothing else."""
    torch.manual_seed(0)
    config = ModelConfig(lookback=12, horizon=2, hidden=5, layers=1, dilations=(4,), skip=False,
                         window_norm=WindowNorm.none)
    model = LSTMForecaster(config).eval()
    x = torch.randn(3, 12)
    with torch.inference_mode():
        clean = model(x)
        for step in range(12):
            poisoned = x.clone()
            poisoned[:, step] = 50.0
            moved = not torch.allclose(model(poisoned), clean)
            assert moved == (step % 4 == 11 % 4), step


def test_no_origin_sees_later_values():
    torch.manual_seed(0)
    lookback, origins = 8, 6
    model = LSTMForecaster(ModelConfig(lookback=lookback, horizon=3, hidden=6, dilations=(2, 4))).eval()
    x = torch.randn(2, lookback + origins - 1)
    with torch.inference_mode():
        clean = model.forward_origins(x)
        for k in range(origins - 1):
            poisoned = x.clone()
            poisoned[:, lookback + k:] = 1e3
            torch.testing.assert_close(model.forward_origins(poisoned)[:, : k + 1], clean[:, : k + 1])


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"dilations": (1, 2, 3)}, "one integer"),
    ({"dilations": (0, 2)}, "one integer"),
    ({"dilations": (1, 99)}, "lookback 12"),
    ({"dilations": (1, 2), "bidirectional": True}, "bidirectional"),
    ({"dilations": (1, 2), "cell": Cell.peephole}, "peephole"),
    ({"dilations": [1, 2]}, "tuple of integers"),
    ({"dilations": (1, True)}, "tuple of integers"),
])
def test_model_config_refuses_dilations_it_cannot_run(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(lookback=12, horizon=3, **kwargs)


def test_parse_dilations():
    assert parse_dilations(None) is None and parse_dilations("auto") is None and parse_dilations(" Auto ") is None
    assert parse_dilations("none") == ()
    assert parse_dilations("1,24") == (1, 24) and parse_dilations(" 1 , 7 ") == (1, 7) and parse_dilations([2, 3]) == (2, 3)
    for bad in ("1,x", "0,24", "1,-2", "", "1.5,2", [1.5, 2]):
        with pytest.raises(InputError, match="--dilations"):
            parse_dilations(bad)


def _seasonal_parts(period: int, n: int = 400, k: int = 3, noise: float = 0.3) -> list[np.ndarray]:
    return [seasonal(n, period=period, level=20.0 + s, amp=4.0, noise=noise, seed=s) for s in range(k)]


def test_auto_dilates_the_last_layer_by_the_season():
    notes: list[str] = []
    parts = _seasonal_parts(24)
    assert pick_dilations(None, parts, 24, 168, 2, "lstm", False, notes) == ((1, 24), notes[0].split(": ", 1)[1][:-1])
    assert "dilations 1,24" in notes[0] and "the season, autocorrelation 0." in notes[0]
    assert pick_dilations(None, parts, 24, 168, 3, "gru", False, [])[0] == (1, 1, 24)


def test_auto_finds_the_period_of_a_time_axis_without_frequency():
    notes: list[str] = []
    assert pick_dilations(None, _seasonal_parts(12), 1, 84, 2, "lstm", False, notes)[0] == (1, 12)
    assert "autocorrelation's period" in notes[0]
    assert seasonal_acf(_seasonal_parts(12), (12,))[12] > 0.5


@pytest.mark.parametrize(("parts", "season", "lookback", "layers", "cell", "bidirectional"), [
    ([np.random.default_rng(s).standard_normal(400).cumsum() + 100 for s in range(3)], 1, 96, 2, "lstm", False),
    ([np.random.default_rng(s).standard_normal(400) for s in range(3)], 24, 168, 2, "lstm", False),  # no daily cycle
    (_seasonal_parts(24), 24, 167, 2, "lstm", False),  # the lookback holds less than seven seasons
    (_seasonal_parts(7), 7, 28, 2, "lstm", False),  # a daily file's default lookback: four weeks
    (_seasonal_parts(12), 1, 83, 2, "lstm", False),  # no frequency: the period found must fit seven times too
    (_seasonal_parts(24), 24, 168, 1, "lstm", False),
    (_seasonal_parts(24), 24, 168, 2, "peephole", False),
    (_seasonal_parts(24), 24, 168, 2, "lstm", True),
    ([seasonal(36, period=12)], 1, 30, 2, "lstm", False),  # too short to read a period of 12 from (3 of them)
])
def test_auto_leaves_undilated_where_nothing_supports_it(parts, season, lookback, layers, cell, bidirectional):
    notes: list[str] = []
    dilations, why = pick_dilations(None, parts, season, lookback, layers, cell, bidirectional, notes)
    assert dilations == () and notes == []
    assert why == ("one layer" if layers < 2 else "bidirectional" if bidirectional else "peephole cell"
                   if cell == "peephole" else "no period of autocorrelation 0.2 or more fits 7 times in the lookback")


@pytest.mark.parametrize(("requested", "match"), [
    ((1, 2, 3), "one per layer"),
    ((1, 200), "above the lookback"),
])
def test_requested_dilations_are_checked_against_the_model(requested, match):
    with pytest.raises(InputError, match=match):
        pick_dilations(requested, _seasonal_parts(24), 24, 168, 2, "lstm", False, [])
    with pytest.raises(InputError, match="bidirectional"):
        pick_dilations((1, 24), _seasonal_parts(24), 24, 168, 2, "lstm", True, [])
    assert pick_dilations((1, 1), _seasonal_parts(24), 24, 168, 2, "lstm", False, []) == ((), "given")
    assert pick_dilations((), _seasonal_parts(24), 24, 168, 2, "lstm", False, []) == ((), "given")


@pytest.fixture(scope="module")
def hourly_daily_cycle(tmp_path_factory):
    """Two hourly series with a daily cycle, 16 days."""
    n = 384
    times = pd.date_range("2024-01-01", periods=n, freq="h").strftime("%Y-%m-%d %H:%M:%S")
    frame = pd.DataFrame({"timestamp": times, "a": seasonal(n, period=24, seed=1).round(3),
                          "b": seasonal(n, period=24, level=40.0, amp=9.0, seed=2).round(3)})
    return write_frame(tmp_path_factory.mktemp("dilated") / "hourly.csv", frame)


@pytest.fixture(scope="module")
def dilated_run(hourly_daily_cycle, tmp_path_factory):
    return api.train(hourly_daily_cycle, horizon=6, lookback=168, hidden=6, train_config=replace(TINY, forking=4),
                     run_dir=tmp_path_factory.mktemp("dilated-run") / "run")


def test_a_trained_run_records_and_forecasts_with_its_dilations(dilated_run, hourly_daily_cycle, tmp_path):
    from lstmcast.run.rundir import load_run

    meta = json.loads((dilated_run.run_dir / "run.json").read_text())
    assert meta["model"]["dilations"] == [1, 24] and dilated_run.model["dilations"] == [1, 24]
    assert any(n.startswith("dilations 1,24") for n in dilated_run.notes)
    assert 'dilations = "1,24"' in (dilated_run.run_dir / "config.toml").read_text()
    run = load_run(dilated_run.run_dir)
    assert run.model_config.dilations == (1, 24)
    # predict's numpy forecast is the torch network's
    from safetensors.torch import load_file

    model = LSTMForecaster(run.model_config).eval()
    model.load_state_dict(load_file(dilated_run.run_dir / "weights.safetensors"))
    x = np.random.default_rng(0).standard_normal((3, 168)).astype(np.float32)
    with torch.inference_mode():
        np.testing.assert_allclose(run.model(x), model(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-5)
    forecast = api.predict(dilated_run.run_dir).forecast
    assert len(forecast) == 2 * 6 and np.isfinite(forecast["forecast"]).all()
    # A backtest that refits trains the run's own configuration, dilations included
    folds = api.backtest(dilated_run.run_dir, hourly_daily_cycle, folds=1, refit=True)
    assert np.isfinite(folds["overall"]["mase"])
    # "none" trains without
    plain = api.train(hourly_daily_cycle, horizon=6, lookback=48, hidden=6, dilations="none",
                      train_config=replace(TINY, forking=4), run_dir=tmp_path / "plain")
    assert "dilations" not in json.loads((plain.run_dir / "run.json").read_text())["model"]
    assert 'dilations = "none"' in (plain.run_dir / "config.toml").read_text()


def test_runs_written_before_dilations_read_as_undilated(dilated_run, tmp_path):
    from lstmcast.run.rundir import load_run

    old = tmp_path / "old"
    shutil.copytree(dilated_run.run_dir, old)
    meta = json.loads((old / "run.json").read_text())
    meta["model"].pop("dilations")
    (old / "run.json").write_text(json.dumps(meta))
    assert load_run(old).model_config.dilations == ()


@pytest.mark.parametrize("value", [[1, 10**12], [0, 24], [1, 2, 3], "1,24", [1, 24.5], [1, None]])
def test_spoilt_dilations_in_run_json_are_refused(dilated_run, tmp_path, value):
    from lstmcast.run.rundir import load_run

    bad = tmp_path / "bad"
    shutil.copytree(dilated_run.run_dir, bad)
    meta = json.loads((bad / "run.json").read_text())
    meta["model"]["dilations"] = value
    (bad / "run.json").write_text(json.dumps(meta))
    with pytest.raises(RunDirError, match="dilations") as caught:
        load_run(bad)
    assert caught.value.exit_code == EXIT_RUN


@pytest.mark.slow
@pytest.mark.parametrize(("flags", "match"), [
    (["--dilations", "1,x"], "--dilations: 'x' is not a positive integer"),
    (["--dilations", "1,2,3"], "give one per layer (2)"),
    (["--dilations", "1,24", "--bidirectional"], "not with --bidirectional"),
])
def test_cli_refuses_bad_dilations_in_one_line(cli, hourly_daily_cycle, tmp_path, flags, match):
    result = cli("train", hourly_daily_cycle, "--horizon", "6", "--lookback", "48", "--hidden", "4",
                 "--max-steps", "1", "--run-dir", tmp_path / "run", *flags)
    assert result.returncode == EXIT_INPUT, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and match in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_cli_trains_the_dilations_it_is_given_and_its_config_file_reproduces_them(cli, hourly_daily_cycle, tmp_path):
    result = cli("train", hourly_daily_cycle, "--horizon", "6", "--lookback", "48", "--hidden", "4", "--max-steps",
                 "2", "--forking", "4", "--dilations", "2,3", "--run-dir", tmp_path / "run", "--quiet")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "run" / "run.json").read_text())["model"]["dilations"] == [2, 3]
    again = cli("train", "--config", tmp_path / "run" / "config.toml", "--run-dir", tmp_path / "again", "--quiet")
    assert again.returncode == 0, again.stderr
    first, second = (json.loads((tmp_path / d / "run.json").read_text())["model"] for d in ("run", "again"))
    assert first == second
