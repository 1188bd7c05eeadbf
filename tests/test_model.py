"""The network, seeded determinism, and run directories: round trip and every refusal."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import RUN_FILES, TINY, TINY_MODEL
from safetensors.torch import load_file
from typer.testing import CliRunner

from lstmcast import api
from lstmcast import config
from lstmcast.run.rundir import FORMAT_VERSION, load_meta, load_run
from lstmcast.cli.app import app
from lstmcast.config import ModelConfig, WindowNorm
from lstmcast.errors import EXIT_RUN, RunDirError
from lstmcast.forecast.recursive import forecast_scaled, forecast_series
from lstmcast.model.network import LSTMForecaster

NORMS = list(getattr(config, "WindowNorm", [None]))  # window normalisation variants, where the model has them


def make_config(**kw) -> ModelConfig:
    return ModelConfig(**{k: v for k, v in kw.items() if v is not None})


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize(("lookback", "horizon", "hidden", "layers"), [(12, 6, 8, 2), (5, 1, 4, 1), (24, 48, 16, 3)])
def test_output_shape(lookback, horizon, hidden, layers, norm):
    torch.manual_seed(0)
    model = LSTMForecaster(make_config(lookback=lookback, horizon=horizon, hidden=hidden, layers=layers,
                                       window_norm=norm))
    x = torch.randn(7, lookback)
    y = model(x)
    assert y.shape == (7, horizon) and y.dtype == torch.float32
    assert torch.isfinite(y).all()
    y.sum().backward()  # differentiable end to end


def test_flat_windows_stay_finite():
    model = LSTMForecaster(ModelConfig(lookback=10, horizon=3, hidden=8)).eval()
    with torch.inference_mode():
        y = model(torch.zeros(2, 10))
    assert torch.isfinite(y).all()


def test_recursive_forecast_beyond_horizon():
    torch.manual_seed(0)
    from lstmcast.model.numpy_forward import NumpyForecaster

    model = LSTMForecaster(ModelConfig(lookback=8, horizon=3, hidden=8)).eval()
    net = NumpyForecaster(model.config, {k: v.numpy() for k, v in model.state_dict().items()})
    history = np.random.default_rng(0).normal(size=(4, 20)).astype(np.float32)
    out = forecast_scaled(net, history, 7)
    assert out.shape == (4, 7)
    with torch.inference_mode():
        first = model(torch.from_numpy(history[:, -8:])).numpy()
        window = np.concatenate([history[:, -8:], first], axis=1)[:, -8:]
        second = model(torch.from_numpy(window)).numpy()
    np.testing.assert_allclose(out[:, :3], first, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[:, 3:6], second, rtol=1e-5, atol=1e-6)


def test_same_seed_same_forecasts(hourly_csv, tmp_path):
    kwargs = dict(horizon=6, lookback=12, train_config=TINY, **TINY_MODEL)
    first = api.train(hourly_csv, run_dir=tmp_path / "one", **kwargs)
    second = api.train(hourly_csv, run_dir=tmp_path / "two", **kwargs)
    a = api.predict(first.run_dir).forecast
    b = api.predict(second.run_dir).forecast
    np.testing.assert_array_equal(a["forecast"].to_numpy(), b["forecast"].to_numpy())  # bit-identical
    assert a.equals(b)
    wa, wb = load_file(first.run_dir / "weights.safetensors"), load_file(second.run_dir / "weights.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    from dataclasses import replace

    other = api.train(hourly_csv, run_dir=tmp_path / "three", **{**kwargs, "train_config": replace(TINY, seed=1)})
    c = api.predict(other.run_dir).forecast
    assert not np.array_equal(a["forecast"].to_numpy(), c["forecast"].to_numpy()), "the seed should matter"


def test_ctrl_c_during_training_leaves_a_usable_run(hourly_csv, tmp_path):
    from dataclasses import replace

    def interrupt(info):
        raise KeyboardInterrupt

    report = api.train(hourly_csv, horizon=6, lookback=12, train_config=replace(TINY, epochs=3, max_steps=None),
                       run_dir=tmp_path / "run", progress=interrupt, **TINY_MODEL)
    assert report.metrics["stopped"] == "interrupted" and report.metrics["best_epoch"] == 1
    assert len(report.metrics["history"]) == 1
    assert np.isfinite(api.predict(report.run_dir).forecast["forecast"]).all()


def test_run_directory_contents(trained_run):
    names = sorted(p.name for p in trained_run.run_dir.iterdir())
    assert names == RUN_FILES
    record = load_meta(trained_run.run_dir)
    assert record.format_version == FORMAT_VERSION
    assert record.model.lookback == trained_run.lookback and record.model.horizon == trained_run.horizon
    assert record.data.freq == "h" and record.ids == ["a", "b"]
    assert all(len(s.tail) == trained_run.lookback for s in record.series)
    metrics = json.loads((trained_run.run_dir / "metrics.json").read_text())
    assert metrics["stopped"] == "max_steps" and metrics["steps"] == 3
    assert not list(trained_run.run_dir.parent.glob(".*.tmp")), "no temporary directory left behind"


def test_checkpoint_round_trip(trained_run):
    state = load_file(trained_run.run_dir / "weights.safetensors")  # plain tensors, no code run
    run = load_run(trained_run.run_dir)
    assert set(state) == set(run.model.w)
    for key, array in run.model.w.items():
        assert torch.equal(torch.from_numpy(array), state[key])
    histories = [s.tail for s in run.record.series]
    center = np.array([s.center for s in run.record.series])
    scale = np.array([s.scale for s in run.record.series])
    log = np.array([s.log for s in run.record.series])  # series modelled in logs (--transform auto)
    from lstmcast.data.covariates import for_forecast

    cov = for_forecast(run, None, [], trained_run.horizon, None)  # None: the session run reads the target alone
    mine = forecast_series(run.model, histories, center, scale, trained_run.horizon, cov, log)
    report = api.predict(trained_run.run_dir)
    np.testing.assert_array_equal(report.forecast["forecast"].to_numpy(), mine.ravel())
    # Forecasting from the CSV itself gives the same numbers as from the stored tails.
    from_csv = api.predict(trained_run.run_dir, data=trained_run.data)
    np.testing.assert_allclose(from_csv.forecast["forecast"].to_numpy(), mine.ravel(), rtol=1e-6)


def test_old_run_without_newer_model_fields_loads(run_copy):
    # A format-1 run.json written before optional model fields existed must still load with defaults.
    meta_path = run_copy / "run.json"
    meta = json.loads(meta_path.read_text())
    # known_size stays (0 here: no calendar features or covariates); tests/fixtures/run_format1 is a real old run.
    keep = ("lookback", "horizon", "input_size", "hidden", "layers", "dropout", "known_size")
    meta["model"] = {k: meta["model"][k] for k in keep}
    meta_path.write_text(json.dumps(meta))
    # Runs of that time had no skip layer either.
    from safetensors.torch import save_file

    state = load_file(run_copy / "weights.safetensors")
    save_file({k: v for k, v in state.items() if not k.startswith("skip.")}, str(run_copy / "weights.safetensors"))
    run = load_run(run_copy)
    assert run.model_config.hidden == 8
    assert run.model_config.window_norm is WindowNorm.mean and run.model_config.skip is False


# --- refusals: RunDirError naming the file, exit code 3 from the CLI --------------------------------


def refuse(run_dir: Path, names: Path) -> None:
    with pytest.raises(RunDirError) as info:
        load_run(run_dir)
    assert str(names) in str(info.value), str(info.value)
    result = CliRunner().invoke(app, ["predict", "--run", str(run_dir), "--output", str(run_dir.parent / "f.csv")])
    assert result.exit_code == EXIT_RUN, result.output
    assert str(names) in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (run_dir.parent / "f.csv").exists()


class _CreatesFile:
    """Unpickling this calls open(path, 'w'): code execution on load."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_refuses_pickled_weights(run_copy, tmp_path):
    # The payload works: unpickling it does create its file.
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps({"lstm.weight_ih_l0": _CreatesFile(probe)})).get("lstm.weight_ih_l0").close()
    assert probe.exists()
    marker = tmp_path / "pwned"
    weights = run_copy / "weights.safetensors"
    weights.write_bytes(pickle.dumps({"lstm.weight_ih_l0": _CreatesFile(marker)}))
    refuse(run_copy, weights)
    assert not marker.exists(), "loading a run must never unpickle"
    # Also through evaluate.
    result = CliRunner().invoke(app, ["evaluate", "--run", str(run_copy), "--data", str(tmp_path / "x.csv")])
    assert result.exit_code == EXIT_RUN and not marker.exists()


def test_refuses_torch_save_weights(run_copy, tmp_path):
    weights = run_copy / "weights.safetensors"
    state = {k: v.clone() for k, v in load_file(weights).items()}  # copies: load_file maps the file
    weights.unlink()
    torch.save(state, weights)  # a pickle-based state_dict under the safetensors name
    refuse(run_copy, weights)


def test_refuses_truncated_weights(run_copy):
    weights = run_copy / "weights.safetensors"
    data = weights.read_bytes()
    for cut in (len(data) // 2, 5, 0):
        weights.write_bytes(data[:cut])
        refuse(run_copy, weights)


def test_refuses_missing_weights(run_copy):
    (run_copy / "weights.safetensors").unlink()
    refuse(run_copy, run_copy / "weights.safetensors")


@pytest.mark.parametrize("text", ["{not json", "", "[1, 2]", '{"format_version": 1}', "\xff\xfe garbage"])
def test_refuses_corrupt_run_json(run_copy, text):
    (run_copy / "run.json").write_text(text, encoding="latin-1")
    refuse(run_copy, run_copy / "run.json")


def test_refuses_missing_run_json(run_copy):
    (run_copy / "run.json").unlink()
    refuse(run_copy, run_copy / "run.json")


def test_refuses_newer_format_version(run_copy):
    meta = json.loads((run_copy / "run.json").read_text())
    meta["format_version"] = FORMAT_VERSION + 1
    (run_copy / "run.json").write_text(json.dumps(meta))
    refuse(run_copy, run_copy / "run.json")
    with pytest.raises(RunDirError, match="newer"):
        load_run(run_copy)


def test_refuses_mismatched_shapes(run_copy):
    meta = json.loads((run_copy / "run.json").read_text())
    meta["model"]["hidden"] = 16  # trained with 8
    (run_copy / "run.json").write_text(json.dumps(meta))
    refuse(run_copy, run_copy / "weights.safetensors")
    with pytest.raises(RunDirError, match="do not match"):
        load_run(run_copy)


def test_refuses_invalid_model_config(run_copy):
    meta = json.loads((run_copy / "run.json").read_text())
    meta["model"]["hidden"] = "eight"
    (run_copy / "run.json").write_text(json.dumps(meta))
    refuse(run_copy, run_copy / "run.json")


def test_refuses_missing_directory(tmp_path):
    with pytest.raises(RunDirError, match="not found"):
        load_run(tmp_path / "nope")


# --- a run written by a released version ---------------------------------------------------------------

FIXTURES = Path(__file__).parent / "fixtures"


def test_format1_fixture_loads_and_forecasts_the_same():
    run_dir = FIXTURES / "run_format1"
    run = load_run(run_dir)
    assert run.record.format_version == 1
    expected = pd.read_csv(run_dir / "expected_forecast.csv")
    got = api.predict(run_dir).forecast
    assert list(got.columns) == list(expected.columns)
    assert got["series"].tolist() == expected["series"].tolist()
    assert pd.to_datetime(got["date"]).tolist() == pd.to_datetime(expected["date"]).tolist()
    np.testing.assert_allclose(got["forecast"].to_numpy(), expected["forecast"].to_numpy(), rtol=1e-5)


def test_format1_fixture_predicts_and_evaluates_on_data():
    run_dir, data = FIXTURES / "run_format1", FIXTURES / "run_format1_data.csv"
    expected = pd.read_csv(run_dir / "expected_forecast.csv")
    got = api.predict(run_dir, data=data).forecast
    np.testing.assert_allclose(got["forecast"].to_numpy(), expected["forecast"].to_numpy(), rtol=1e-5)
    result = api.evaluate(run_dir, data)
    assert result["test_size"] == 4 and set(result["series"]) == {"a", "b"}


@pytest.mark.parametrize("window_norm", list(WindowNorm))
@pytest.mark.parametrize(("layers", "skip"), [(1, False), (2, True), (3, False)])
def test_numpy_inference_matches_torch_model(window_norm, layers, skip):
    # predict runs the numpy forward pass; it must compute what the trained torch module computes.
    from lstmcast.model.numpy_forward import NumpyForecaster, expected_shapes

    torch.manual_seed(0)
    config = ModelConfig(lookback=12, horizon=5, hidden=16, layers=layers, window_norm=window_norm, skip=skip)
    model = LSTMForecaster(config).eval()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected_shapes(config)
    net = NumpyForecaster(config, {k: v.numpy() for k, v in model.state_dict().items()})
    x = torch.randn(7, 12) * 3 + 5
    x[0] = 2.0  # a flat window: the spread floor applies
    with torch.inference_mode():
        expected = model(x).numpy()
    np.testing.assert_allclose(net(x.numpy()), expected, rtol=1e-5, atol=1e-5)
