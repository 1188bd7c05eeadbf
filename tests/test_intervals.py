"""Prediction intervals: quantile head, pinball loss, conformal calibration, predict columns, evaluate scores."""

from __future__ import annotations

import io
import json
import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TINY, TINY_CLI, TINY_MODEL, wide_frame, write_frame

from lstmcast import api
from lstmcast.model import intervals
from lstmcast.data import windows
from lstmcast.config import Cell, ModelConfig, WindowNorm
from lstmcast.errors import InputError, RunDirError
from lstmcast.model.numpy_forward import NumpyForecaster
from lstmcast.model.network import LSTMForecaster
from lstmcast.model.quantiles import parse_levels, pinball, pinball_loss, symmetric_pairs

LEVELS = (0.1, 0.5, 0.9)


@pytest.fixture(scope="module")
def quantile_run(tmp_path_factory):
    """One tiny run with --quantiles 0.1,0.5,0.9 (hourly, series a and b, horizon 6)."""
    root = tmp_path_factory.mktemp("quantiles")
    data = write_frame(root / "hourly.csv", wide_frame(n=120, freq="h", time_col="timestamp",
                                                       fmt="%Y-%m-%d %H:%M:%S"))
    report = api.train(data, horizon=6, lookback=12, quantiles=LEVELS, train_config=TINY, run_dir=root / "run",
                       **TINY_MODEL)
    return report, data


# --- levels and the pinball loss -------------------------------------------------------------------------


def test_levels_are_parsed_sorted_and_checked():
    assert parse_levels("0.9, 0.1,0.5") == LEVELS
    assert parse_levels([0.5, 0.5, 0.25]) == (0.25, 0.5)
    for bad in ("0.1,1", "0", "-0.2", "abc", ",", "0.1,nan"):
        with pytest.raises(InputError, match="--quantiles"):
            parse_levels(bad)
    assert symmetric_pairs((0.05, 0.1, 0.5, 0.9, 0.95)) == [(0, 4), (1, 3)]
    assert symmetric_pairs((0.1, 0.5, 0.8)) == []


def test_pinball_loss_matches_a_hand_computation():
    # y = 10; q0.1 = 8 (below y: 0.1 * 2 = 0.2), q0.5 = 11 (above: 0.5 * 1 = 0.5), q0.9 = 10 (0)
    assert pinball(np.array([10.0]), np.array([8.0]), 0.1) == pytest.approx(0.2)
    assert pinball(np.array([10.0]), np.array([11.0]), 0.5) == pytest.approx(0.5)
    quant = torch.tensor([[[8.0, 11.0, 10.0], [1.0, 2.0, 3.0]]])  # [B=1, H=2, Q=3]
    target = torch.tensor([[10.0, 0.0]])
    # step 2: y = 0 under all three: (1 - 0.1) * 1 + 0.5 * 2 + 0.1 * 3 = 0.9 + 1.0 + 0.3 = 2.2
    expected = (0.2 + 0.5 + 0.0 + 2.2) / 6
    levels = torch.tensor(LEVELS)
    assert pinball_loss(quant, target, levels).item() == pytest.approx(expected)
    # a masked-out origin does not count: weight [B, K=1, 1] over quant [B, K, H, Q]
    two = torch.stack([quant[0], quant[0] + 100]).unsqueeze(1)  # [2, 1, 2, 3]
    weight = torch.tensor([[[1.0]], [[0.0]]])
    assert pinball_loss(two, target.expand(2, 2).unsqueeze(1), levels, weight).item() == pytest.approx(expected)


# --- the quantile head -------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", list(WindowNorm))
def test_quantiles_never_cross_with_random_weights(norm):
    torch.manual_seed(0)
    config = ModelConfig(lookback=10, horizon=5, hidden=8, window_norm=norm, quantiles=(0.05, 0.1, 0.5, 0.9, 0.95))
    model = LSTMForecaster(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(20)  # large weights: raw offsets of either sign and any size
        x = torch.randn(64, 10 + 7 - 1) * 5
        point, quant = model.forward_all(x)
    assert quant.shape == (64, 7, 5, 5) and point.shape == (64, 7, 5)
    assert (quant.diff(dim=-1) >= 0).all()
    net = NumpyForecaster(config, {k: v.numpy() for k, v in model.state_dict().items()})
    _, q = net.forward_all(x[:, :10].numpy())
    assert (np.diff(q, axis=-1) >= 0).all()
    # calibration may narrow an interval past its middle: the result is sorted again
    shrink = np.array([[3.0], [3.0], [0.0], [-3.0], [-3.0]]) * np.ones((1, 5))
    assert (np.diff(intervals.apply(q.astype(np.float64), shrink), axis=-1) >= 0).all()


@pytest.mark.parametrize(("norm", "skip", "layers", "arch"), [
    (WindowNorm.revin, True, 2, {}),
    (WindowNorm.none, False, 1, {}),
    (WindowNorm.revin, True, 1, {"cell": Cell.gru, "bidirectional": True, "attention": True}),
])
def test_numpy_and_torch_quantile_heads_agree(norm, skip, layers, arch):
    torch.manual_seed(1)
    config = ModelConfig(lookback=12, horizon=4, hidden=8, layers=layers, window_norm=norm, skip=skip,
                         quantiles=LEVELS, **arch)
    model = LSTMForecaster(config).eval()
    net = NumpyForecaster(config, {k: v.numpy() for k, v in model.state_dict().items()})
    x = torch.randn(6, 12 + 3 - 1)
    with torch.no_grad():
        point, quant = model.forward_all(x)  # origin 0 of a forking sequence is the plain window forecast
    p, q = net.forward_all(x[:, :12].numpy())
    np.testing.assert_allclose(p, point[:, 0].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(q, quant[:, 0].numpy(), rtol=1e-5, atol=1e-5)


# --- calibration -------------------------------------------------------------------------------------------


def test_conformal_correction_on_a_constructed_case():
    # 9 windows, 2 steps; the head says [-1, 1] around 0 for every window; the actuals are 0..8 away.
    n = 9
    quant = np.tile(np.array([-1.0, 0.0, 1.0]), (n, 2, 1))  # [N, H, Q]
    actual = np.stack([np.arange(n, dtype=float), -np.arange(n, dtype=float)], axis=1)  # [N, H]
    correction, info = intervals.corrections(quant, actual, LEVELS, form="additive")
    assert not info["per_step"] and info["windows"] == n  # 9 < MIN_PER_STEP: pooled over both steps
    # scores |y| - 1 for 18 values: -1, -1, 0, 0, ..., 7, 7; ceil(19 * 0.8) = 16th smallest = 6
    assert correction[2] == pytest.approx([6.0, 6.0]) and correction[0] == pytest.approx([-6.0, -6.0])
    # the median is shifted to the 0.5-quantile of y - q0.5 (here 0)
    assert correction[1] == pytest.approx([0.0, 0.0])
    # afterwards 16 of 18 validation values lie inside: at least 80%
    calibrated = intervals.apply(quant, correction)
    inside = (calibrated[..., 0] <= actual) & (actual <= calibrated[..., 2])
    assert inside.mean() == pytest.approx(16 / 18)


def test_correction_per_step_with_enough_windows():
    rng = np.random.default_rng(0)
    n = intervals.MIN_PER_STEP * 4
    actual = rng.standard_normal((n, 3)) * np.array([1.0, 2.0, 4.0])  # errors grow with the step
    quant = np.tile(np.array([-1.0, 0.0, 1.0]), (n, 3, 1))  # but the head's width does not
    correction, info = intervals.corrections(quant, actual, LEVELS, form="additive")
    assert info["per_step"]
    assert correction[2, 0] < correction[2, 1] < correction[2, 2]  # wider where the errors are
    coverage = ((quant[..., 0] + correction[0] <= actual) & (actual <= quant[..., 2] + correction[2])).mean(axis=0)
    assert (coverage >= 0.8).all() and (coverage <= 0.85).all()


def _heteroscedastic(rng, n: int, horizon: int = 4):
    """Windows whose spread varies 10x; the head knows the shape of the spread but is 1.5x too narrow."""
    spread = np.exp(rng.uniform(0, np.log(10), (n, 1))) * np.linspace(1, 2, horizon)  # grows with the step
    quant = np.stack([-1.2816 * spread, np.zeros_like(spread), 1.2816 * spread], axis=-1) / 1.5  # [N, H, 3]
    return quant, rng.standard_normal((n, horizon)) * spread, spread


def test_blend_is_the_mean_of_the_cqr_and_the_absolute_residual_intervals():
    # 9 windows, 2 steps; the head says [-1, 1] around 0.5 for every window; the actuals are 0..8 and -(0..8).
    n = 9
    quant = np.tile(np.array([-0.5, 0.5, 1.5]), (n, 2, 1))
    actual = np.stack([np.arange(n, dtype=float), -np.arange(n, dtype=float)], axis=1)
    correction, info = intervals.corrections(quant, actual, LEVELS)
    assert info["form"] == "blend"
    # CQR scores max(-0.5 - y, y - 1.5): -0.5, -0.5, 0.5, ..., 6.5 and -0.5, 0.5, ..., 7.5; the 16th smallest of 18
    # (ceil(19 * 0.8)) is 6.5. |y - 0.5| (the middle): 0.5, 0.5, 1.5, ..., 7.5 and 0.5, ..., 8.5: the 16th is 7.5
    cqr = intervals.corrections(quant, actual, LEVELS, form="additive")[0][2, 0]
    middle = 7.5
    assert cqr == pytest.approx(6.5)
    assert correction[2] == pytest.approx([(cqr + middle) / 2] * 2) and correction[0] == pytest.approx(-correction[2])
    calibrated = intervals.apply(quant, intervals.Calibration(correction, "blend", LEVELS))
    cqr_lo, cqr_hi = quant[..., 0] - cqr, quant[..., 2] + cqr
    abs_lo, abs_hi = 0.5 - middle, 0.5 + middle
    np.testing.assert_allclose(calibrated[..., 0], (cqr_lo + abs_lo) / 2)
    np.testing.assert_allclose(calibrated[..., 2], (cqr_hi + abs_hi) / 2)
    np.testing.assert_allclose(calibrated[..., 1], quant[..., 1] + correction[1])  # the median: its own shift
    # without a symmetric pair there is nothing to blend: plain one-sided shifts
    one, info = intervals.corrections(quant[..., :2], actual, (0.1, 0.5))
    assert info["form"] == "additive"
    np.testing.assert_allclose(one, intervals.corrections(quant[..., :2], actual, (0.1, 0.5), form="additive")[0])


def test_blend_coverage_on_exchangeable_data_with_informative_and_constant_widths():
    rng = np.random.default_rng(1)
    quant, actual, _ = _heteroscedastic(rng, 400)  # the head knows where the spread is, 1.5x too narrow
    calibration = intervals.Calibration(intervals.corrections(quant, actual, LEVELS)[0], "blend", LEVELS)
    test_q, test_y, spread = _heteroscedastic(rng, 4000)
    q = intervals.apply(test_q, calibration)
    covered = (q[..., 0] <= test_y) & (test_y <= q[..., 2])
    assert 0.78 <= covered.mean() <= 0.86  # marginal: at least about nominal, as both of its parts
    # widths follow the head's half-way: wider where the head is wide
    wide = spread > np.median(spread)
    assert (q[..., 2] - q[..., 0])[wide].mean() > 1.5 * (q[..., 2] - q[..., 0])[~wide].mean()
    # a head whose widths say nothing (constant) but are off: blend and CQR give the same interval, at nominal coverage
    flat_q = np.tile(np.array([-0.5, 0.0, 0.5]), (400, 4, 1))
    noise = rng.standard_normal((400, 4))
    cal = intervals.Calibration(intervals.corrections(flat_q, noise, LEVELS)[0], "blend", LEVELS)
    cqr = intervals.corrections(flat_q, noise, LEVELS, form="additive")[0]
    new = rng.standard_normal((4000, 4))
    test_q = np.tile(np.array([-0.5, 0.0, 0.5]), (4000, 4, 1))
    q = intervals.apply(test_q, cal)
    np.testing.assert_allclose(q, intervals.apply(test_q, cqr), atol=1e-12)
    assert 0.77 <= np.mean((q[..., 0] <= new) & (new <= q[..., 2])) <= 0.85


def test_few_windows_pool_the_steps_and_say_so():
    rng = np.random.default_rng(2)
    quant, actual, _ = _heteroscedastic(rng, 1, horizon=12)  # one window: a single series, --val-size = horizon
    correction, info = intervals.corrections(quant, actual, LEVELS)
    assert not info["per_step"] and info["windows"] == 1
    assert np.ptp(correction, axis=1).max() == 0  # one correction for every step
    assert any("only 1 validation window" in n and "at least 21 points" in n for n in info["notes"])
    _, info = intervals.corrections(*_heteroscedastic(rng, intervals.FEW_WINDOWS)[:2], LEVELS)
    assert not any("only" in n for n in info["notes"])


def test_default_val_size_of_quantile_runs():
    # one series of 120 months, h 12: 20% (24) leaves 84 points, room for the lookback
    assert intervals.default_val_size([120], 12, None)[0] == 24
    assert "20% of the shortest series" in intervals.default_val_size([120], 12, None)[1]
    assert intervals.default_val_size([120] * 10, 12, None) == (12, None)  # enough series: one horizon
    assert intervals.default_val_size([60], 12, None) == (12, None)  # 20% is not more than a horizon
    # a long horizon: 20% of 120 is one window of 24; 10 windows (33 points) leave 16 training windows
    size, note = intervals.default_val_size([120], 24, None)
    assert size == 24 + intervals.FEW_WINDOWS - 1 and "10 validation windows of the shortest series" in note
    # ... unless they would leave fewer than 10 training windows: then the 20% (if more than a horizon)
    assert intervals.default_val_size([120], 24, 60) == (24, None)
    assert intervals.default_val_size([200], 30, 80)[0] == 40
    assert intervals.default_val_size([150], 12, 110) == (12, None)  # no room left for the given lookback


def test_calibration_reads_only_the_validation_windows():
    config = ModelConfig(lookback=6, horizon=3, hidden=8, quantiles=LEVELS)
    torch.manual_seed(0)
    net = NumpyForecaster(config, {k: v.numpy() for k, v in LSTMForecaster(config).state_dict().items()})
    series = [np.sin(np.arange(40) / 3.0) + k for k in range(3)]
    flat, offsets = windows.concat(series)
    _, val_origin, _ = windows.origins(offsets, np.array([40] * 3), 6, 3, 5)
    stored, summary = intervals.calibrate(net, flat, val_origin, series=3)
    assert stored["form"] == "blend" and summary["validation_coverage"].keys() == {"80%"}
    assert stored["windows"] == summary["windows"] == len(val_origin) == 3 * (5 - 3 + 1)
    read = np.zeros(len(flat), bool)
    for origin in val_origin:
        read[origin - 6:origin + 3] = True
    assert not read.all()
    poisoned = flat.copy()
    poisoned[~read] = 1e6  # every value no validation window reads (all training targets before them)
    assert intervals.calibrate(net, poisoned, val_origin, series=3)[0] == stored
    changed = flat.copy()
    changed[val_origin[0] + 1] += 5.0  # a validation target: the correction follows it
    assert intervals.calibrate(net, changed, val_origin, series=3)[0] != stored
    # ten series or more: plain CQR (the head's widths also tell series apart)
    many = intervals.calibrate(net, flat, val_origin, series=intervals.FEW_WINDOWS)[0]
    assert many["form"] == "additive" and many["method"] == intervals.ADDITIVE_METHOD
    assert many["correction"] != stored["correction"]


# --- runs, predict, evaluate -------------------------------------------------------------------------------


def test_run_stores_the_calibration_and_predict_applies_it(quantile_run, tmp_path):
    report, _ = quantile_run
    meta = json.loads((report.run_dir / "run.json").read_text())
    assert meta["model"]["quantiles"] == list(LEVELS)
    stored = meta["intervals"]
    correction = np.array(stored["correction"])
    assert stored["levels"] == list(LEVELS) and correction.shape == (3, 6)
    # two series give few validation windows at --val-size = horizon: 20% of the series (24) is held out,
    # 19 windows per series, and train says so
    assert meta["train"]["val_size"] == 24 and any(n.startswith("--val-size 24 (20%") for n in report.notes)
    assert report.metrics["intervals"]["windows"] == stored["windows"] == 2 * 19
    frame = api.predict(report.run_dir).forecast
    q = frame[["q0.1", "q0.5", "q0.9"]].to_numpy()
    assert np.isfinite(q).all() and (np.diff(q, axis=1) >= 0).all()
    assert stored["form"] == "blend" and stored["method"] == intervals.METHOD
    # form "additive" (runs written before "blend") with the correction set to zero: the head's own quantiles
    raw = tmp_path / "raw"
    shutil.copytree(report.run_dir, raw)
    stored_meta = json.loads((report.run_dir / "run.json").read_text())
    meta["intervals"]["correction"] = [[0.0] * 6] * 3
    meta["intervals"]["form"] = "additive"
    (raw / "run.json").write_text(json.dumps(meta))
    q_raw = api.predict(raw).forecast[["q0.1", "q0.5", "q0.9"]].to_numpy()
    scale = np.repeat([s["scale"] for s in meta["series"]], 6)
    # The series are positive, so they are modelled in logs (--transform auto): the calibration is applied there.
    log = np.repeat([s.get("log", False) for s in meta["series"]], 6)
    assert log.all() and (scale == 1).all()
    q, q_raw = np.log(q), np.log(q_raw)
    # "blend": each end of the 80% interval moves a quarter of the head's width inwards, then by the correction
    quarter = (q_raw[:, 2] - q_raw[:, 0]) / 4
    np.testing.assert_allclose(q[:, 2] - (q_raw[:, 2] - quarter), np.tile(correction[2], 2) * scale, atol=1e-5)
    np.testing.assert_allclose(q[:, 0] - (q_raw[:, 0] + quarter), np.tile(correction[0], 2) * scale, atol=1e-5)
    np.testing.assert_allclose(q[:, 1] - q_raw[:, 1], np.tile(correction[1], 2) * scale, atol=1e-5)
    # a run written before "form" existed applies its corrections as then (additive), as does form "additive"
    for form in (None, "additive"):
        old = json.loads(json.dumps(stored_meta))
        old["intervals"].pop("form") if form is None else old["intervals"].update(form=form)
        (raw / "run.json").write_text(json.dumps(old))
        q_old = np.log(api.predict(raw).forecast[["q0.1", "q0.5", "q0.9"]].to_numpy())
        np.testing.assert_allclose(q_old - q_raw, (np.tile(correction, 2) * scale).T, atol=1e-5)
    stored_meta["intervals"]["form"] = "width"  # CQR-r: never written by a release; refused like any unknown form
    (raw / "run.json").write_text(json.dumps(stored_meta))
    with pytest.raises(RunDirError, match="calibration form"):
        api.predict(raw)
    stored_meta["intervals"]["form"] = "log"
    (raw / "run.json").write_text(json.dumps(stored_meta))
    with pytest.raises(RunDirError, match="calibration form"):
        api.predict(raw)
    # a corrupt calibration is refused like any unusable run (exit 3)
    meta["intervals"]["correction"] = [[0.0] * 5] * 3
    (raw / "run.json").write_text(json.dumps(meta))
    with pytest.raises(RunDirError, match="interval calibration"):
        api.predict(raw)


def test_runs_without_quantiles_are_unchanged(trained_run):
    meta = json.loads((trained_run.run_dir / "run.json").read_text())
    assert "quantiles" not in meta["model"] and "intervals" not in meta
    assert "quantiles" not in (trained_run.run_dir / "config.toml").read_text()
    frame = api.predict(trained_run.run_dir).forecast
    assert list(frame.columns) == ["series", "timestamp", "forecast"]
    assert "intervals" not in api.evaluate(trained_run.run_dir, trained_run.data)


def test_evaluate_reports_coverage_width_and_pinball(quantile_run):
    report, data = quantile_run
    result = api.evaluate(report.run_dir, data, test_size=8)  # 2 steps past the horizon: no interval there
    iv = result["intervals"]
    assert iv["levels"] == list(LEVELS) and iv["points_per_series"] == 6
    # recompute from the forecast of the same history
    history = data.parent / "history.csv"
    frame = pd.read_csv(data)
    frame.iloc[:-8].to_csv(history, index=False)
    fc = api.predict(report.run_dir, data=history, horizon=6).forecast
    coverage, width, loss = [], [], []
    for name in ("a", "b"):
        y = frame[name].to_numpy()[-8:-2]
        q = fc[fc["series"] == name][["q0.1", "q0.5", "q0.9"]].to_numpy()
        coverage.append(np.mean((q[:, 0] <= y) & (y <= q[:, 2])))
        width.append(np.mean(q[:, 2] - q[:, 0]))
        loss.append(np.mean([pinball(y, q[:, i], lvl) for i, lvl in enumerate(LEVELS)]))
    assert iv["intervals"]["80%"]["coverage"] == pytest.approx(np.mean(coverage))
    assert iv["intervals"]["80%"]["width"] == pytest.approx(np.mean(width))
    assert iv["pinball"] == pytest.approx(np.mean(loss))
    assert result["series"]["a"]["intervals"]["intervals"]["80%"]["coverage"] == pytest.approx(coverage[0])


def test_resume_keeps_the_quantiles(tmp_path):
    data = write_frame(tmp_path / "d.csv", wide_frame(n=80))
    cfg = replace(TINY, epochs=2, max_steps=None)
    whole = api.train(data, horizon=6, lookback=12, quantiles="0.2,0.8", train_config=cfg, run_dir=tmp_path / "a",
                      **TINY_MODEL)

    def stop(info):
        raise KeyboardInterrupt

    cut = api.train(data, horizon=6, lookback=12, quantiles="0.2,0.8", train_config=cfg, run_dir=tmp_path / "b",
                    progress=stop, **TINY_MODEL)
    assert cut.metrics["stopped"] == "interrupted"
    done = api.resume(cut.run_dir)
    a, b = api.predict(whole.run_dir).forecast, api.predict(done.run_dir).forecast
    assert list(b.columns[-2:]) == ["q0.2", "q0.8"]
    pd.testing.assert_frame_equal(a, b)
    assert 'quantiles = "0.2,0.8"' in (done.run_dir / "config.toml").read_text()


# --- the command line, as real processes -------------------------------------------------------------------


@pytest.mark.slow
def test_cli_train_predict_evaluate_with_quantiles(cli, tmp_path):
    data = write_frame(tmp_path / "hourly.csv", wide_frame(n=120, freq="h", time_col="timestamp",
                                                           fmt="%Y-%m-%d %H:%M:%S"))
    config = tmp_path / "q.toml"
    config.write_text("[train]\nquantiles = [0.9, 0.1, 0.5]\n")
    run = tmp_path / "run"
    done = cli("train", data, *TINY_CLI, "--horizon", "6", "--lookback", "12", "--config", config,
               "--run-dir", run, "--json")
    assert done.returncode == 0, done.stderr
    assert "80%" in json.loads(done.stdout)["metrics"]["intervals"]["raw_validation_coverage"]
    out = cli("predict", "--run", run, "--output", "-")
    assert out.returncode == 0, out.stderr
    frame = pd.read_csv(io.StringIO(out.stdout))
    assert list(frame.columns) == ["series", "timestamp", "forecast", "q0.1", "q0.5", "q0.9"]
    assert len(frame) == 12 and (frame["q0.1"] <= frame["q0.9"]).all()
    ev = cli("evaluate", "--run", run, "--data", data)
    assert ev.returncode == 0, ev.stderr
    assert "80% interval (0.1-0.9): coverage" in ev.stdout and "pinball loss" in ev.stdout
    bad = cli("train", data, "--quantiles", "0.1,1.5", "--run-dir", tmp_path / "bad")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "strictly between 0 and 1" in bad.stderr
    assert not (tmp_path / "bad").exists()
