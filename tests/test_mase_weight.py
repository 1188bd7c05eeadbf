"""--mase-weight: per-series loss weights that count each series' errors partly as MASE does."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TINY, TINY_MODEL, write_frame

from lstmcast import api
from lstmcast.data.scaling import MASE_WEIGHT_RANGE, mase_weights
from lstmcast.train.loop import _Batches


def test_weights_mix_equal_weights_with_the_mase_ratio():
    # Two series in logs at levels 100 and 10 with the same seasonal naive error 2: the first one's
    # relative errors are worth ten times more MASE, so it weighs ten times more at mix 1.
    parts = [np.full(50, 100.0), np.full(50, 10.0)]
    log = np.array([True, True])
    full = mase_weights(parts, log, np.ones(2), [2.0, 2.0], 1.0)
    np.testing.assert_allclose(full, [20 / 11, 2 / 11], rtol=1e-6)
    half = mase_weights(parts, log, np.ones(2), [2.0, 2.0], 0.5)
    np.testing.assert_allclose(half, 0.5 + 0.5 * full, rtol=1e-6)
    assert half.dtype == np.float32 and abs(float(half.mean()) - 1.0) < 1e-6


def test_series_modelled_as_values_use_their_scale():
    parts = [np.arange(10.0), np.arange(10.0)]
    w = mase_weights(parts, np.array([False, False]), np.array([4.0, 1.0]), [1.0, 1.0], 1.0)
    np.testing.assert_allclose(w, [1.6, 0.4], rtol=1e-6)  # errors over scale 4 are 4x as many MASE units


def test_no_weights_where_they_would_all_be_one():
    parts = [np.full(20, 5.0), np.full(20, 7.0)]
    assert mase_weights(parts, np.array([True, True]), np.ones(2), [1.0, 2.0], 0.0) is None
    assert mase_weights(parts[:1], np.array([True]), np.ones(1), [1.0], 1.0) is None
    assert mase_weights(parts, np.array([True, True]), np.ones(2), [None, None], 1.0) is None


def test_a_flat_series_neither_takes_the_loss_over_nor_breaks_it():
    parts = [np.full(30, 10.0)] * 4
    log = np.ones(4, dtype=bool)
    w = mase_weights(parts, log, np.ones(4), [1.0, 1.0, 1e-9, None], 1.0)
    assert np.isfinite(w).all()
    ratio = w / w[0]  # the first two sit at the median ratio
    assert ratio[2] == pytest.approx(MASE_WEIGHT_RANGE, rel=1e-5)  # kept within the range of the median
    assert ratio[3] == pytest.approx(1.0)  # no naive error: the median ratio


def test_each_origin_weighs_by_its_own_series():
    b = _Batches(torch.zeros(10), None, torch.ones(10, dtype=torch.bool), None, 2, None, None,
                 offsets=torch.tensor([0, 4]), weight=torch.tensor([1.0, 3.0]))
    err = torch.ones(2, 3, 2)  # two sequences of three origins, horizon 2
    out = b.weigh(err, torch.tensor([1, 3]))  # origins 1, 2, 3 (series 0) and 3, 4, 5 (4, 5: series 1)
    np.testing.assert_array_equal(out[:, :, 0].numpy(), [[1, 1, 1], [1, 3, 3]])


def _two_levels(tmp_path):
    t = np.arange(240)
    day = np.sin(2 * np.pi * t / 24)
    frame = pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=240, freq="h"),
                          "big": 1000 + 50 * day, "small": 5 + 2 * day + 0.3 * np.cos(t)})
    return write_frame(tmp_path / "levels.csv", frame)


def test_weighted_training_is_recorded_and_changes_what_is_learned(tmp_path):
    data = _two_levels(tmp_path)
    cfg = replace(TINY, max_steps=6)
    plain = api.train(data, horizon=6, lookback=24, train_config=replace(cfg, mase_weight=0.0),
                      run_dir=tmp_path / "plain", **TINY_MODEL)
    weighted = api.train(data, horizon=6, lookback=24, train_config=replace(cfg, mase_weight=1.0),
                         run_dir=tmp_path / "weighted", **TINY_MODEL)
    assert json.loads((weighted.run_dir / "run.json").read_text())["train"]["mase_weight"] == 1.0
    assert "mase_weight = 1.0" in (weighted.run_dir / "config.toml").read_text()
    a = api.predict(plain.run_dir).forecast["forecast"].to_numpy()
    b = api.predict(weighted.run_dir).forecast["forecast"].to_numpy()
    assert np.isfinite(b).all() and not np.array_equal(a, b)


def test_runs_written_before_mase_weights_read_as_unweighted(trained_run, tmp_path, monkeypatch):
    from dataclasses import dataclass

    from lstmcast.config import TrainConfig
    from lstmcast.run import record
    from lstmcast.run.rundir import load_run

    @dataclass(frozen=True)
    class WeightedByDefault(TrainConfig):  # a later default must not reach runs written before the field
        mase_weight: float = 0.5

    monkeypatch.setattr(record, "TrainConfig", WeightedByDefault)
    old = tmp_path / "old"
    shutil.copytree(trained_run.run_dir, old)
    meta = json.loads((old / "run.json").read_text())
    meta["train"].pop("mase_weight", None)
    (old / "run.json").write_text(json.dumps(meta))
    assert load_run(old).record.train.mase_weight == 0.0


@pytest.mark.parametrize("value", ["half", 2.0, None, True])
def test_a_spoilt_mase_weight_in_run_json_names_the_field(trained_run, tmp_path, value):
    from lstmcast.errors import RunDirError
    from lstmcast.run.rundir import load_run

    bad = tmp_path / "bad"
    shutil.copytree(trained_run.run_dir, bad)
    meta = json.loads((bad / "run.json").read_text())
    meta["train"]["mase_weight"] = value
    (bad / "run.json").write_text(json.dumps(meta))
    with pytest.raises(RunDirError, match="train.mase_weight"):
        load_run(bad)
