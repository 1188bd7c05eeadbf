"""Per-series scalers: round trip, fitted only on what is passed, constant series, sklearn parity."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

from lstmcast.config import ScalerKind
from lstmcast.data.scaling import apply, fit_scalers, invert

RNG = np.random.default_rng(7)
SERIES = [RNG.normal(50, 10, 40), RNG.normal(-3, 0.5, 25), RNG.uniform(0, 1e6, 60)]


@pytest.mark.parametrize("kind", list(ScalerKind))
def test_round_trip(kind):
    center, scale = fit_scalers(SERIES, kind)
    assert center.shape == scale.shape == (3,)
    for values, c, s in zip(SERIES, center, scale):
        np.testing.assert_allclose(invert(apply(values, c, s), c, s), values, rtol=1e-12, atol=1e-9)


def test_invert_broadcasts_per_series():
    center, scale = fit_scalers([s[:20] for s in SERIES], ScalerKind.standard)
    block = np.stack([apply(s[:20], c, k) for s, c, k in zip(SERIES, center, scale)])  # [S, T]
    np.testing.assert_allclose(invert(block, center[:, None], scale[:, None]), np.stack([s[:20] for s in SERIES]))


@pytest.mark.parametrize(("kind", "reference"), [
    (ScalerKind.standard, lambda v: (v.mean(), v.std())),
    (ScalerKind.minmax, lambda v: (v.min(), v.max() - v.min())),
    (ScalerKind.robust, lambda v: (np.median(v), np.subtract(*np.percentile(v, [75, 25])))),
    (ScalerKind.mean, lambda v: (0.0, np.abs(v).mean())),
    (ScalerKind.none, lambda v: (0.0, 1.0)),
])
def test_statistics_per_kind(kind, reference):
    center, scale = fit_scalers(SERIES, kind)
    for values, c, s in zip(SERIES, center, scale):
        want_c, want_s = reference(values)
        assert c == pytest.approx(want_c, rel=1e-9, abs=1e-12)
        assert s == pytest.approx(want_s, rel=1e-9)


@pytest.mark.parametrize("kind", [ScalerKind.standard, ScalerKind.minmax, ScalerKind.robust])
def test_scaled_ranges(kind):
    center, scale = fit_scalers(SERIES, kind)
    scaled = apply(SERIES[0], center[0], scale[0])
    if kind is ScalerKind.standard:
        assert scaled.mean() == pytest.approx(0, abs=1e-12) and scaled.std() == pytest.approx(1)
    elif kind is ScalerKind.minmax:
        assert scaled.min() == pytest.approx(0, abs=1e-12) and scaled.max() == pytest.approx(1)
    else:
        assert np.median(scaled) == pytest.approx(0, abs=1e-12)


def test_fitted_only_on_what_is_passed():
    values = np.concatenate([np.full(30, 10.0) + RNG.normal(0, 1, 30), np.full(10, 1000.0)])
    center, scale = fit_scalers([values[:30]], ScalerKind.standard)
    assert center[0] == pytest.approx(values[:30].mean())
    assert scale[0] == pytest.approx(values[:30].std())
    assert center[0] < 20, "the tail that was not passed must not move the statistics"


@pytest.mark.parametrize("kind", list(ScalerKind))
def test_unequal_lengths_fit_each_series_alone(kind):
    # One scikit-learn fit over NaN-padded columns must equal fitting each series by itself.
    together_c, together_s = fit_scalers(SERIES, kind)
    for k, values in enumerate(SERIES):
        c, s = fit_scalers([values], kind)
        assert together_c[k] == pytest.approx(c[0]) and together_s[k] == pytest.approx(s[0])


def test_many_series_across_chunks():
    series = [RNG.normal(k, 1 + k % 5, 10 + k % 7) for k in range(1100)]  # > one 512-series chunk
    center, scale = fit_scalers(series, ScalerKind.standard)
    np.testing.assert_allclose(center, [s.mean() for s in series])
    np.testing.assert_allclose(scale, [s.std() for s in series])


@pytest.mark.parametrize("kind", list(ScalerKind))
@pytest.mark.parametrize("level", [0.0, 5.0, -7.5, 1e12])
def test_constant_series_gives_finite_nonzero_scale(kind, level):
    values = np.full(30, level)
    center, scale = fit_scalers([values], kind)
    assert np.isfinite(center).all() and np.isfinite(scale).all() and (scale > 0).all()
    scaled = apply(values, center[0], scale[0])
    assert np.isfinite(scaled).all()
    np.testing.assert_allclose(invert(scaled, center[0], scale[0]), values)


def test_matches_sklearn_standard_scaler():
    values = RNG.normal(123.0, 45.0, 200)
    reference = StandardScaler().fit(values.reshape(-1, 1))
    center, scale = fit_scalers([values], ScalerKind.standard)
    assert center[0] == pytest.approx(reference.mean_[0], rel=1e-12)
    assert scale[0] == pytest.approx(reference.scale_[0], rel=1e-12)
    np.testing.assert_allclose(apply(values, center[0], scale[0]),
                               reference.transform(values.reshape(-1, 1)).ravel(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("make", [MinMaxScaler, RobustScaler])
def test_matches_sklearn_other_scalers(make):
    values = RNG.normal(-20.0, 3.0, 150)
    kind = ScalerKind.minmax if make is MinMaxScaler else ScalerKind.robust
    center, scale = fit_scalers([values], kind)
    want = make().fit_transform(values.reshape(-1, 1)).ravel()
    np.testing.assert_allclose(apply(values, center[0], scale[0]), want, rtol=1e-10, atol=1e-12)


def test_tiny_magnitude_series_is_scaled_by_its_own_spread():
    values = 1e-9 * (1 + 0.1 * np.sin(np.arange(60) / 2))
    center, scale = fit_scalers([values], ScalerKind.standard)
    assert scale[0] == pytest.approx(values.std(), rel=1e-6)


def test_train_fits_scalers_on_the_training_part_only(trained_run, tmp_path):
    # The run stores each series' statistics; they must come from the points before the validation tail.
    import json
    from dataclasses import replace

    import pandas as pd

    from lstmcast import api
    from lstmcast.config import Transform
    from conftest import TINY, TINY_MODEL

    # By default these positive series are modelled in logs, and a log series is not scaled further.
    default = json.loads((trained_run.run_dir / "run.json").read_text())
    assert all(e["log"] and e["center"] == 0.0 and e["scale"] == 1.0 for e in default["series"])
    report = api.train(trained_run.data, horizon=6, lookback=12, train_config=replace(TINY, transform=Transform.none),
                       run_dir=tmp_path / "run", **TINY_MODEL)
    meta = json.loads((report.run_dir / "run.json").read_text())
    val_size = meta["train"]["val_size"]
    frame = pd.read_csv(trained_run.data)
    assert meta["train"]["transform"] == "none" and not any("log" in e for e in meta["series"])
    for entry in meta["series"]:
        head = frame[entry["id"]].to_numpy()[:-val_size]
        assert entry["center"] == pytest.approx(head.mean(), rel=1e-12)
        assert entry["scale"] == pytest.approx(head.std(), rel=1e-12)
        assert entry["center"] != pytest.approx(frame[entry["id"]].mean(), rel=1e-12)
