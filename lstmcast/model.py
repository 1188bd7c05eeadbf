"""The network: a stacked LSTM over the lookback window and a head for all horizon steps."""

from __future__ import annotations

import torch
from torch import nn

from lstmcast.config import ModelConfig, WindowNorm

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: scaled history [B, L] -> scaled forecast [B, H]."""
        norm = self.config.window_norm
        level = x.mean(dim=1, keepdim=True) if norm is not WindowNorm.none else torch.zeros_like(x[:, :1])  # [B, 1]
        spread = x.std(dim=1, keepdim=True).clamp_min(_MIN_STD) if norm is WindowNorm.revin else torch.ones_like(level)
        z = (x - level) / spread  # [B, L]
        out, _ = self.lstm(z.unsqueeze(-1))  # [B, L, hidden]
        y = self.head(out[:, -1])  # [B, H]
        if self.skip is not None:
            y = y + self.skip(z)
        return y * spread + level
