"""The network: a stacked LSTM over the lookback window and a head for all horizon steps."""

from __future__ import annotations

import torch
from torch import nn

from lstmcast.config import ModelConfig, WindowNorm
from lstmcast.quantiles import monotone_torch

_MIN_STD = 1e-2  # in per-series scaled units: flat windows are not blown up


class LSTMForecaster(nn.Module):
    """Stacked `nn.LSTM` (Hochreiter & Schmidhuber, 1997) with a direct multi-step head.

    Each window is normalised by its own statistics before the LSTM and the output is
    mapped back, so that one global model serves series at different levels (instance
    normalisation on top of per-series scaling). With `skip`, a linear map from the
    normalised window to the horizon is added to the LSTM head.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.lstm = nn.LSTM(
            input_size=config.input_size, hidden_size=config.hidden, num_layers=config.layers,
            batch_first=True, dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.head = nn.Linear(config.hidden, config.horizon)
        self.skip = nn.Linear(config.lookback, config.horizon) if config.skip else None
        # Quantile head: Q values per step, offsets around the point forecast (see quantiles.py).
        levels = len(config.quantiles)
        self.qhead = nn.Linear(config.hidden, config.horizon * levels) if levels else None
        self.register_buffer("levels", torch.tensor(config.quantiles, dtype=torch.float32), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: scaled history [B, L] -> scaled forecast [B, H]."""
        return self.forward_origins(x)[:, -1]

    def forward_origins(self, x: torch.Tensor) -> torch.Tensor:
        """Point forecasts from every origin: `forward_all(x)[0]`, [B, K, H]."""
        return self.forward_all(x)[0]

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Point and quantile forecasts from every origin of a longer input (forking sequences, MQ-RNN).

        x: scaled values [B, L + K - 1] -> scaled forecasts [B, K, H], where origin k
        forecasts the H steps after x[:, L - 1 + k], and quantiles [B, K, H, Q] (None
        without a quantile head), non-decreasing along Q. One pass of the LSTM over the
        sequence serves all K origins; the window statistics come from the first L
        values, which every origin has seen, so no origin looks ahead. K = 1 is the
        plain window forecast.
        """
        lookback, norm = self.config.lookback, self.config.window_norm
        head = x[:, :lookback]
        if norm is WindowNorm.none:
            level = torch.zeros_like(head[:, :1])
        else:
            level = head.mean(dim=1, keepdim=True)  # [B, 1]
        if norm is WindowNorm.revin:
            spread = head.std(dim=1, keepdim=True).clamp_min(_MIN_STD)
        else:
            spread = torch.ones_like(level)
        z = (x - level) / spread  # [B, L + K - 1]
        out, _ = self.lstm(z.unsqueeze(-1))  # [B, L + K - 1, hidden]
        state = out[:, lookback - 1:]  # [B, K, hidden]
        y = self.head(state)  # [B, K, H]
        if self.skip is not None:
            y = y + self.skip(z.unfold(1, lookback, 1))  # windows [B, K, L]
        spread, level = spread.unsqueeze(-1), level.unsqueeze(-1)  # [B, 1, 1]
        if self.qhead is None:
            return y * spread + level, None
        raw = self.qhead(state).unflatten(-1, (self.config.horizon, len(self.config.quantiles)))  # [B, K, H, Q]
        q = y.unsqueeze(-1) + monotone_torch(raw)
        return y * spread + level, q * spread.unsqueeze(-1) + level.unsqueeze(-1)
