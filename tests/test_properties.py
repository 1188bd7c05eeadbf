"""Property tests (hypothesis) for the pure-numpy pieces: window origins and scaler round trips."""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402

from lstmcast.config import ScalerKind  # noqa: E402
from lstmcast.data.scaling import apply, fit_scalers, invert  # noqa: E402
from lstmcast.data.windows import concat, origins  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(1, 60), min_size=1, max_size=5), lookback=st.integers(1, 20),
       horizon=st.integers(1, 10), extra=st.integers(0, 10))
def test_origins_property(lengths, lookback, horizon, extra):
    val_size = horizon + extra
    lengths = np.array(lengths)
    flat, offsets = concat([np.arange(n, dtype=np.float64) for n in lengths])
    train, val, val_series = origins(offsets, lengths, lookback, horizon, val_size)
    series_of = np.searchsorted(offsets, train, side="right") - 1
    local = train - offsets[series_of]
    assert (local >= lookback).all()
    assert (local + horizon <= lengths[series_of] - val_size).all()
    local_val = val - offsets[val_series]
    assert (local_val >= lookback).all() and (local_val + horizon <= lengths[val_series]).all()
    assert (local_val >= lengths[val_series] - val_size).all()


@settings(max_examples=60, deadline=None)
@given(values=arrays(np.float64, st.integers(2, 40), elements=st.floats(-1e6, 1e6, allow_nan=False)),
       kind=st.sampled_from(list(ScalerKind)))
def test_round_trip_property(values, kind):
    center, scale = fit_scalers([values], kind)
    assert np.isfinite(center).all() and np.isfinite(scale).all() and (scale > 0).all()
    np.testing.assert_allclose(invert(apply(values, center[0], scale[0]), center[0], scale[0]), values,
                               rtol=1e-9, atol=1e-6)
