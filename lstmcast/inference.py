"""The trained network's forward pass in numpy, for `predict` and `evaluate`.

Forecasting a few thousand windows is a few hundred small matrix products; importing
torch for it would cost more than the arithmetic. This module computes exactly what
`model.LSTMForecaster.forward` computes (a test holds the two equal) from the tensors
of a safetensors file, read without torch.
"""

from __future__ import annotations

import numpy as np

from lstmcast.config import ModelConfig, WindowNorm
from lstmcast.quantiles import monotone_np

_MIN_STD = 1e-2  # must match model._MIN_STD


def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The tensor names and shapes `LSTMForecaster(config).state_dict()` has."""
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in range(config.layers):
        width = config.input_size if layer == 0 else config.hidden
        shapes[f"lstm.weight_ih_l{layer}"] = (4 * config.hidden, width)
        shapes[f"lstm.weight_hh_l{layer}"] = (4 * config.hidden, config.hidden)
        shapes[f"lstm.bias_ih_l{layer}"] = (4 * config.hidden,)
        shapes[f"lstm.bias_hh_l{layer}"] = (4 * config.hidden,)
    shapes["head.weight"] = (config.horizon, config.hidden)
    shapes["head.bias"] = (config.horizon,)
    if config.skip:
        shapes["skip.weight"] = (config.horizon, config.lookback)
        shapes["skip.bias"] = (config.horizon,)
    if config.quantiles:
        shapes["qhead.weight"] = (config.horizon * len(config.quantiles), config.hidden)
        shapes["qhead.bias"] = (config.horizon * len(config.quantiles),)
    return shapes


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow for large |x|


class NumpyForecaster:
    """Callable: scaled windows [B, L] float32 -> scaled forecasts [B, H]."""

    def __init__(self, config: ModelConfig, weights: dict[str, np.ndarray]) -> None:
        self.config = config
        self.w = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward_all(x)[0]

    def forward_all(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Scaled windows [B, L] -> (forecasts [B, H], quantiles [B, H, Q] or None), as `LSTMForecaster.forward_all`."""
        cfg, w = self.config, self.w
        x = x.astype(np.float32, copy=False)
        if cfg.window_norm is WindowNorm.none:
            level = np.zeros((len(x), 1), np.float32)
        else:
            level = x.mean(axis=1, keepdims=True)
        if cfg.window_norm is WindowNorm.revin:
            spread = np.maximum(x.std(axis=1, ddof=1, keepdims=True), _MIN_STD).astype(np.float32)
        else:
            spread = np.ones_like(level)
        z = (x - level) / spread  # [B, L]
        seq = z[:, :, None]  # [B, L, in]
        hidden = cfg.hidden
        for layer in range(cfg.layers):
            w_ih = w[f"lstm.weight_ih_l{layer}"].T  # [in, 4H]; PyTorch's gate order i, f, g, o
            w_hh = w[f"lstm.weight_hh_l{layer}"].T  # [H, 4H]
            bias = w[f"lstm.bias_ih_l{layer}"] + w[f"lstm.bias_hh_l{layer}"]
            h = np.zeros((len(x), hidden), np.float32)
            c = np.zeros_like(h)
            outputs = np.empty((len(x), seq.shape[1], hidden), np.float32) if layer < cfg.layers - 1 else None
            for t in range(seq.shape[1]):
                # One input feature is a broadcast multiply, not a matrix product.
                step_in = seq[:, t, :1] * w_ih[0] if w_ih.shape[0] == 1 else seq[:, t] @ w_ih
                gates = step_in + bias + h @ w_hh  # [B, 4H]
                i = _sigmoid(gates[:, :hidden])
                f = _sigmoid(gates[:, hidden:2 * hidden])
                g = np.tanh(gates[:, 2 * hidden:3 * hidden])
                o = _sigmoid(gates[:, 3 * hidden:])
                c = f * c + i * g
                h = o * np.tanh(c)
                if outputs is not None:
                    outputs[:, t] = h
            if outputs is not None:
                seq = outputs
        y = h @ w["head.weight"].T + w["head.bias"]  # [B, H]
        if cfg.skip:
            y = y + z @ w["skip.weight"].T + w["skip.bias"]
        if not cfg.quantiles:
            return y * spread + level, None
        raw = (h @ w["qhead.weight"].T + w["qhead.bias"]).reshape(len(x), cfg.horizon, len(cfg.quantiles))
        q = y[:, :, None] + monotone_np(raw)  # [B, H, Q]
        return y * spread + level, q * spread[:, :, None] + level[:, :, None]
