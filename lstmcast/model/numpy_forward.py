"""The trained network's forward pass in numpy, for `predict` and `evaluate`.

Forecasting a few thousand windows is a few hundred small matrix products; importing
torch for it would cost more than the arithmetic. This module computes exactly what
`model.LSTMForecaster.forward` computes (a test holds the two equal, for every cell,
direction and head) from the tensors of a safetensors file, read without torch.
"""

from __future__ import annotations

import numpy as np

from lstmcast.config import Cell, ModelConfig, WindowNorm
from lstmcast.model.quantiles import monotone_np
from lstmcast.model.shapes import MIN_STD, directions, expected_shapes  # noqa: F401 (expected_shapes: API)

def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow for large |x|


def _recurrent_layer(cell: Cell, seq: np.ndarray, w: dict[str, np.ndarray], prefix: str, suffix: str,
                     reverse: bool) -> np.ndarray:
    """One layer, one direction: seq [B, T, in] -> states [B, T, hidden], zero initial state.

    Gate orders are PyTorch's: i, f, g, o for the LSTMs (and the peephole rows p_i, p_f,
    p_o); r, z, n for the GRU, whose n gate sees r * (W_hn h + b_hn).
    """
    w_ih = w[f"{prefix}.weight_ih{suffix}"].T  # [in, G]
    w_hh = w[f"{prefix}.weight_hh{suffix}"].T  # [H, G]
    b_ih, b_hh = w[f"{prefix}.bias_ih{suffix}"], w[f"{prefix}.bias_hh{suffix}"]
    hidden = w_hh.shape[0]
    batch, steps = seq.shape[:2]
    h = np.zeros((batch, hidden), np.float32)
    c = np.zeros_like(h)
    out = np.empty((batch, steps, hidden), np.float32)
    bias = b_ih if cell is Cell.gru else b_ih + b_hh
    if cell is Cell.peephole:
        p_i, p_f, p_o = w[f"{prefix}.weight_peep{suffix}"]
    for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
        # One input feature is a broadcast multiply, not a matrix product.
        x_t = seq[:, t, :1] * w_ih[0] if w_ih.shape[0] == 1 else seq[:, t] @ w_ih
        x_t = x_t + bias
        if cell is Cell.gru:
            hh = h @ w_hh + b_hh
            r = _sigmoid(x_t[:, :hidden] + hh[:, :hidden])
            z = _sigmoid(x_t[:, hidden:2 * hidden] + hh[:, hidden:2 * hidden])
            n = np.tanh(x_t[:, 2 * hidden:] + r * hh[:, 2 * hidden:])
            h = (1.0 - z) * n + z * h
        else:
            gates = x_t + h @ w_hh  # [B, 4H]
            i, f = gates[:, :hidden], gates[:, hidden:2 * hidden]
            g, o = np.tanh(gates[:, 2 * hidden:3 * hidden]), gates[:, 3 * hidden:]
            if cell is Cell.peephole:
                c = _sigmoid(f + p_f * c) * c + _sigmoid(i + p_i * c) * g
                h = _sigmoid(o + p_o * c) * np.tanh(c)
            else:
                c = _sigmoid(f) * c + _sigmoid(i) * g
                h = _sigmoid(o) * np.tanh(c)
        out[:, t] = h
    return out


def _dilate(x: np.ndarray, d: int) -> np.ndarray:
    """[B, T, F] -> [B * d, ceil(T / d), F], zero-padded at the end (model.network.dilate)."""
    b, t, f = x.shape
    n = -(-t // d)
    padded = np.concatenate([x, np.zeros((b, n * d - t, f), x.dtype)], 1) if n * d > t else x
    return padded.reshape(b, n, d, f).transpose(0, 2, 1, 3).reshape(b * d, n, f)


def _undilate(y: np.ndarray, d: int, t: int) -> np.ndarray:
    bd, n, f = y.shape
    return y.reshape(bd // d, d, n, f).transpose(0, 2, 1, 3).reshape(bd // d, n * d, f)[:, :t]


class NumpyForecaster:
    """Callable: scaled windows [B, L] float32 (and covariate channels [B, L + H, C]) -> scaled forecasts [B, H]."""

    def __init__(self, config: ModelConfig, weights: dict[str, np.ndarray]) -> None:
        self.config = config
        self.w = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}

    def __call__(self, x: np.ndarray, cov: np.ndarray | None = None) -> np.ndarray:
        return self.forward_all(x, cov)[0]

    def forward_all(self, x: np.ndarray, cov: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Scaled windows [B, L] -> (forecasts [B, H], quantiles [B, H, Q] or None), as `LSTMForecaster.forward_all`."""
        cfg, w = self.config, self.w
        x = x.astype(np.float32, copy=False)
        if cfg.window_norm is WindowNorm.none:
            level = np.zeros((len(x), 1), np.float32)
        else:
            level = x.mean(axis=1, keepdims=True)
        if cfg.window_norm is WindowNorm.revin:
            spread = np.maximum(x.std(axis=1, ddof=1, keepdims=True), MIN_STD).astype(np.float32)
        else:
            spread = np.ones_like(level)
        z = (x - level) / spread  # [B, L]
        if cfg.window_norm is WindowNorm.revin:  # a window that does not move forecasts its value (network.py)
            spread = spread * (x.max(axis=1, keepdims=True) > x.min(axis=1, keepdims=True))
        seq = z[:, :, None]  # [B, L, in]
        if cov is not None:
            seq = np.concatenate([seq, cov[:, :x.shape[1]].astype(np.float32)], axis=-1)
        for layer in range(cfg.layers):
            d = cfg.dilations[layer] if cfg.dilations else 1
            if d > 1:  # one direction (ModelConfig): d interleaved chains, as model.network.dilate
                seq = _undilate(_recurrent_layer(cfg.cell, _dilate(seq, d), w, cfg.cell.value, f"_l{layer}", False),
                                d, seq.shape[1])
                continue
            outs = [_recurrent_layer(cfg.cell, seq, w, cfg.cell.value, f"_l{layer}{sfx}", sfx == "_reverse")
                    for sfx in directions(cfg)]
            seq = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=-1)
        hidden = cfg.hidden
        # The final state of each direction: forward at the window's end, backward at its start.
        last = np.concatenate([seq[:, -1, :hidden], seq[:, 0, hidden:]], axis=-1) if cfg.bidirectional \
            else seq[:, -1]
        if cfg.attention:
            query = last @ w["attn.weight"].T  # [B, D]
            scores = np.einsum("bd,btd->bt", query, seq) / np.float32(np.sqrt(seq.shape[-1]))
            weights = np.exp(scores - scores.max(axis=1, keepdims=True))
            weights /= weights.sum(axis=1, keepdims=True)
            last = np.concatenate([last, np.einsum("bt,btd->bd", weights, seq)], axis=-1)
        if cfg.known_size:  # the known channels over the forecast steps, flattened as the model does
            known = cov[:, x.shape[1]:x.shape[1] + cfg.horizon, cov.shape[-1] - cfg.known_size:]
            last = np.concatenate([last, known.transpose(0, 2, 1).reshape(len(x), -1).astype(np.float32)], axis=-1)
        y = last @ w["head.weight"].T + w["head.bias"]  # [B, H]
        if cfg.skip:
            y = y + z @ w["skip.weight"].T + w["skip.bias"]
        if not cfg.quantiles:
            return y * spread + level, None
        raw = (last @ w["qhead.weight"].T + w["qhead.bias"]).reshape(len(x), cfg.horizon, len(cfg.quantiles))
        q = y[:, :, None] + monotone_np(raw)  # [B, H, Q]
        return y * spread + level, q * spread[:, :, None] + level[:, :, None]
