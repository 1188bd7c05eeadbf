"""Sliding windows as index arithmetic over one flat array, never a copy per window.

One series of length n, forecast origin t (the first step forecast)::

    |<------- lookback L ------->|<---- horizon H ---->|
    x[t-L]  ...          x[t-1]  x[t]   ...    x[t+H-1]

    training origins:   L <= t <= n - V - H      (targets end before the validation part)
    validation origins: n - V <= t <= n - H      (V = val_size >= H; inputs may reach back)

All series are concatenated into one flat array; a window is named by the flat
position of its origin, and a batch is gathered as `flat[origin + arange(-L, H)]`.

Short series are padded at the front with their first value (`pad_sizes`), so that one
young series neither shrinks everyone's lookback nor stops the file: its window reads
at least MIN_INPUT real values and the padding before them, and its targets are always
real values. With P padding points before n real ones (positions in the padded series)::

    |pad ... pad|x[0] ... x[n-1]|
     0        P-1 P          P+n-1
    training origins:   max(L, P + MIN_INPUT) <= t <= P + n - V - H
    validation origins: max(L, P + n - V) <= t <= P + n - H   (when n - V >= MIN_INPUT)
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def window_view(values: np.ndarray, lookback: int, horizon: int) -> np.ndarray:
    """All windows of one series as a read-only view: [n - L - H + 1, L + H], no copy."""
    return sliding_window_view(values, lookback + horizon)


def concat(series: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(flat float32 array of all series, start offset of each series)."""
    lengths = np.array([len(s) for s in series], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    flat = np.concatenate(series).astype(np.float32) if series else np.zeros(0, np.float32)
    return flat, offsets


def concat_scaled(series: list[np.ndarray], center: np.ndarray, scale: np.ndarray,
                  log: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`concat` of the scaled series, `(f(x) - center) / scale` (`scaling.apply`), without a scaled
    float64 copy of all of them: one float32 array filled series by series (the same values, bit for bit)."""
    from lstmcast.data.scaling import forward

    log = np.zeros(len(series), dtype=bool) if log is None else log
    lengths = np.array([len(s) for s in series], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    flat = np.empty(int(lengths.sum()), dtype=np.float32)
    for values, off, c, s, m in zip(series, offsets, center, scale, log):
        flat[off:off + len(values)] = (forward(values, bool(m)) - c) / s
    return flat, offsets


MIN_INPUT = 3  # real values a padded window reads at least (fewer: the series is not trained on)


def pad_sizes(lengths: np.ndarray | list[int], lookback: int, horizon: int, val_size: int) -> np.ndarray:
    """Padding before each series: int64 [S].

    Only what a series lacks for one window, L + V + H points (so a series shorter than the
    lookback still has a window to forecast from). Padding more, so that short series had L - MIN_INPUT + 1 windows each, lost on M4
    Weekly, where 65 of 359 series are that short (OWA 0.771 against 0.745, seed 0; M3
    quarterly 9.83 against 9.91: benchmarks/RESULTS.md, "Short series").
    """
    n = np.asarray(lengths, np.int64)
    return np.maximum(lookback + val_size + horizon - n, 0)


def pad_front(values: np.ndarray, size: int) -> np.ndarray:
    """`values` after `size` copies of its first value (itself when size <= 0)."""
    if size <= 0 or not len(values):
        return values
    return np.concatenate([np.full(size, values[0], dtype=values.dtype), values])


def index_dtype(size: int) -> type:
    """int32 for positions in a flat array that int32 can count (half the memory of int64:
    ten thousand series of 2,000 points have 17 million training origins), else int64."""
    return np.int32 if size < 2**31 else np.int64


def origins(offsets: np.ndarray, lengths: np.ndarray, lookback: int, horizon: int,
            val_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat positions of training and validation origins, and the series of each val origin.

    Returns:
        train: [N_train]; val: [N_val]; val_series: [N_val]; all of `index_dtype` of the flat length.
    """
    train = TrainOrigins.of(offsets, lengths, lookback, horizon, val_size).table()
    return (train, *val_origins(offsets, lengths, lookback, horizon, val_size))


def val_origins(offsets: np.ndarray, lengths: np.ndarray, lookback: int, horizon: int,
                val_size: int, pads: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(flat positions of the validation origins, the series of each), of `index_dtype`.

    `lengths` count the padded series, `pads` the padding before each (None: none); a series with
    fewer than MIN_INPUT real values before its validation part has no validation origin.
    """
    pads = np.zeros(len(lengths), np.int64) if pads is None else pads
    dtype = index_dtype(int(np.sum(lengths)) + len(lengths))
    val, val_series = [], []
    for s, (off, n, p) in enumerate(zip(offsets, lengths, pads)):
        if n - p - val_size < MIN_INPUT:
            continue
        v = np.arange(off + max(n - val_size, lookback), off + n - horizon + 1, dtype=dtype)
        val.append(v)
        val_series.append(np.full(len(v), s, dtype=dtype))
    cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0, dtype)  # noqa: E731
    return cat(val), cat(val_series)


class TrainOrigins:
    """The training origins of every series, without a table of them: series s has `count[s]`
    consecutive origins from flat position `first[s]`, and training origin k (counted over all
    series in order) is found by a binary search. Ten thousand series of 2,000 points have 17
    million training origins: their table would take 70-140 MB beside a 76 MB flat array."""

    def __init__(self, first: np.ndarray, count: np.ndarray) -> None:
        self.first, self.count = np.asarray(first, np.int64), np.asarray(count, np.int64)

    @classmethod
    def of(cls, offsets: np.ndarray, lengths: np.ndarray, lookback: int, horizon: int,
           val_size: int, pads: np.ndarray | None = None) -> TrainOrigins:
        """max(L, P + MIN_INPUT) <= t <= n - V - H in each series of padded length n (see the module's diagram)."""
        lengths = np.asarray(lengths, np.int64)
        first = np.full(len(lengths), lookback, np.int64)
        if pads is not None:
            first = np.where(pads > 0, np.maximum(first, np.asarray(pads, np.int64) + MIN_INPUT), first)
        count = np.maximum(lengths - val_size - horizon - first + 1, 0)
        return cls(np.asarray(offsets, np.int64) + first, count)

    def __len__(self) -> int:
        return int(self.count.sum())

    def table(self) -> np.ndarray:
        """Every origin's flat position, in order, of `index_dtype`."""
        dtype = index_dtype(int(self.first[-1] + self.count[-1]) + 1 if len(self.first) else 0)
        parts = [np.arange(f, f + c, dtype=dtype) for f, c in zip(self.first, self.count) if c]
        return np.concatenate(parts) if parts else np.zeros(0, dtype)


class OriginLookup:
    """Training origins on a torch device: `lookup(k)` gives the flat positions of origins k
    (a tensor of indices into the origins), `mark(valid)` sets the origins' positions True.
    From a `TrainOrigins` (no table) or a table of positions."""

    def __init__(self, origins, device) -> None:
        import torch

        self.table = torch.from_numpy(origins).to(device) if isinstance(origins, np.ndarray) else None
        if self.table is None:
            self.blocks = origins
            self.first = torch.from_numpy(origins.first).to(device)
            self.ends = torch.from_numpy(np.cumsum(origins.count)).to(device)
            self.count = torch.from_numpy(origins.count).to(device)
        self.size = len(origins)

    def __len__(self) -> int:
        return self.size

    def __call__(self, k):
        if self.table is not None:
            return self.table[k]
        import torch

        s = torch.searchsorted(self.ends, k.to(self.ends.dtype), right=True)  # the series holding origin k
        return self.first[s] + (k - (self.ends[s] - self.count[s]))

    def mark(self, valid) -> None:
        if self.table is not None:
            valid[self.table] = True
            return
        for f, c in zip(self.blocks.first.tolist(), self.blocks.count.tolist()):
            valid[f:f + c] = True


def gather(flat, origin, lookback: int, horizon: int):
    """Windows at `origin` positions from a flat torch tensor: (x [B, L], y [B, H])."""
    import torch

    steps = torch.arange(-lookback, horizon, device=flat.device)
    window = flat[origin.unsqueeze(1) + steps]  # [B, L + H]
    return window[:, :lookback], window[:, lookback:]


class SharedRows:
    """Rows [T, C] beside the flat array (covariate channels) whose series may share one block:
    row p of series s (flat offset `offsets[s]`) is `table[base[s] + p - offsets[s]]`.

    Calendar channels are a function of the time alone, so the series of a wide file, which
    share their times, share one block: ten thousand hourly series of 2,000 steps hold 2,000
    rows of channels, not 20 million (305 MB). Indexed like the [T, C] array it stands for.
    """

    def __init__(self, table, base, offsets, size: int) -> None:
        self.table, self.base, self.offsets, self.size = table, base, offsets, size

    def __len__(self) -> int:
        return self.size

    @property
    def device(self):
        return self.table.device

    def rows(self, idx):
        """Table rows of flat positions `idx` (numpy or torch, any shape)."""
        if isinstance(idx, np.ndarray):
            s = np.searchsorted(self.offsets, idx, side="right") - 1
        else:
            import torch

            s = torch.searchsorted(self.offsets, idx.contiguous(), right=True) - 1
        return self.base[s] + (idx - self.offsets[s])

    def __getitem__(self, idx):
        return self.table[self.rows(idx)]

    def to(self, device) -> SharedRows:
        """The same rows as torch tensors on `device`."""
        import torch

        t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
        return SharedRows(t(self.table), t(self.base), t(self.offsets), self.size)


def concat_shared(series: list[np.ndarray]) -> SharedRows:
    """float32 rows of every series, a block shared by the series that hold the same array object."""
    lengths = np.array([len(s) for s in series], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    first: dict[int, int] = {}
    blocks, base, rows = [], np.empty(len(series), np.int64), 0
    for k, block in enumerate(series):
        if id(block) not in first:
            first[id(block)] = rows
            blocks.append(block)
            rows += len(block)
        base[k] = first[id(block)]
    table = np.concatenate(blocks).astype(np.float32) if blocks else np.zeros((0, 0), np.float32)
    return SharedRows(table, base, offsets, int(lengths.sum()))
