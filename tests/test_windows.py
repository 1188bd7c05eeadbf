"""Windows as index arithmetic: views, origins that keep validation targets out of training, gather."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmcast.data.windows import concat, gather, origins, window_view


def test_window_view_shape_and_no_copy():
    values = np.arange(20, dtype=np.float64)
    view = window_view(values, lookback=5, horizon=3)
    assert view.shape == (20 - 5 - 3 + 1, 8)
    assert np.shares_memory(view, values), "windows must be a view of the series, not a copy"
    assert not view.flags.writeable
    with pytest.raises(ValueError):
        view[0, 0] = 1.0
    np.testing.assert_array_equal(view[0], values[:8])
    np.testing.assert_array_equal(view[-1], values[-8:])
    np.testing.assert_array_equal(view[4], values[4:12])


def test_concat_offsets():
    flat, offsets = concat([np.arange(3.0), np.arange(5.0), np.arange(2.0)])
    assert flat.dtype == np.float32 and flat.shape == (10,)
    np.testing.assert_array_equal(offsets, [0, 3, 8])
    np.testing.assert_array_equal(flat[3:8], np.arange(5.0))


LENGTHS = np.array([40, 25, 31])


@pytest.mark.parametrize(("lookback", "horizon", "val_size"), [(6, 4, 4), (10, 3, 7), (5, 5, 12), (1, 1, 1)])
def test_training_targets_never_reach_validation(lookback, horizon, val_size):
    flat, offsets = concat([np.arange(n, dtype=np.float64) for n in LENGTHS])
    train, val, val_series = origins(offsets, LENGTHS, lookback, horizon, val_size)
    assert train.dtype == val.dtype == val_series.dtype == np.int32  # int32 counts these positions
    series_of = np.searchsorted(offsets, train, side="right") - 1
    for s, (off, n) in enumerate(zip(offsets, LENGTHS)):
        t = train[series_of == s] - off  # origin within series s
        assert (t - lookback >= 0).all(), "inputs must start inside their own series"
        assert (t + horizon <= n - val_size).all(), "training targets must end before the validation part"
        # ...and every such origin is used.
        np.testing.assert_array_equal(t, np.arange(lookback, n - val_size - horizon + 1))


@pytest.mark.parametrize(("lookback", "horizon", "val_size"), [(6, 4, 4), (10, 3, 7), (30, 5, 12)])
def test_validation_origins_as_documented(lookback, horizon, val_size):
    # Docstring: validation origins n - V <= t <= n - H (inputs may reach back), never before lookback.
    flat, offsets = concat([np.arange(n, dtype=np.float64) for n in LENGTHS])
    train, val, val_series = origins(offsets, LENGTHS, lookback, horizon, val_size)
    for s, (off, n) in enumerate(zip(offsets, LENGTHS)):
        t = val[val_series == s] - off
        np.testing.assert_array_equal(t, np.arange(max(n - val_size, lookback), n - horizon + 1))
        assert (t + horizon <= n).all() and (t - lookback >= 0).all()
    assert len(val) == len(val_series)
    assert np.all(np.diff(val_series) >= 0)


def test_validation_windows_cover_the_validation_part():
    lengths = np.array([30])
    _, val, _ = origins(np.array([0]), lengths, lookback=8, horizon=4, val_size=10)
    covered = np.unique((val[:, None] + np.arange(4)).ravel())
    np.testing.assert_array_equal(covered, np.arange(20, 30))


def test_series_too_short_for_training_gives_no_training_origins():
    train, val, _ = origins(np.array([0]), np.array([10]), lookback=6, horizon=3, val_size=3)
    assert len(train) == 0 and len(val) == 1


def test_gather_shapes_and_values():
    flat_np, offsets = concat([np.arange(100, 140, dtype=np.float64), np.arange(500, 525, dtype=np.float64)])
    flat = torch.from_numpy(flat_np)
    train, _, _ = origins(offsets, np.array([40, 25]), 7, 3, 3)
    origin = torch.from_numpy(train)
    x, y = gather(flat, origin, 7, 3)
    assert x.shape == (len(train), 7) and y.shape == (len(train), 3)
    assert x.dtype == y.dtype == torch.float32
    for k, o in enumerate(train.tolist()):
        np.testing.assert_array_equal(x[k].numpy(), flat_np[o - 7:o])
        np.testing.assert_array_equal(y[k].numpy(), flat_np[o:o + 3])
    # Windows never mix series: each window is consecutive values of one series.
    window = torch.cat([x, y], dim=1).numpy()
    assert (np.diff(window, axis=1) == 1).all()


def test_gather_matches_window_view():
    values = np.linspace(-1, 1, 30)
    flat = torch.from_numpy(values.astype(np.float32))
    view = window_view(values.astype(np.float32), 5, 2)
    origin = torch.arange(5, 30 - 2 + 1)
    x, y = gather(flat, origin, 5, 2)
    np.testing.assert_array_equal(torch.cat([x, y], 1).numpy(), view)


def test_shared_rows_index_like_the_concatenated_array() -> None:
    import torch

    from lstmcast.data.windows import concat, concat_shared

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((30, 4)), rng.standard_normal((20, 4))
    blocks = [a, a, b, a, b, rng.standard_normal((25, 4))]  # series 0, 1, 3 share one block; 2 and 4 another
    dense = concat(blocks)[0]
    shared = concat_shared(blocks)
    assert len(shared) == len(dense) and len(shared.table) == 30 + 20 + 25  # shared blocks stored once
    idx = rng.integers(0, len(dense), (7, 11))
    np.testing.assert_array_equal(shared[idx], dense[idx])
    on_torch = shared.to("cpu")
    assert torch.equal(on_torch[torch.from_numpy(idx)], torch.from_numpy(dense)[torch.from_numpy(idx)])
