"""The network: a stacked LSTM over the lookback window and a head for all horizon steps."""

from __future__ import annotations

import torch
from torch import nn

from lstmcast.config import ModelConfig


class LSTMForecaster(nn.Module):
    """Stacked `nn.LSTM` (Hochreiter & Schmidhuber, 1997) with a direct multi-step head.

    Each window is shifted by its own mean before the LSTM and shifted back after the
    head, so that one global model serves series at different levels (instance
    normalisation on top of per-series scaling).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.lstm = nn.LSTM(
            input_size=config.input_size, hidden_size=config.hidden, num_layers=config.layers,
            batch_first=True, dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.head = nn.Linear(config.hidden, config.horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: scaled history [B, L] -> scaled forecast [B, H]."""
        level = x.mean(dim=1, keepdim=True)  # [B, 1]
        out, _ = self.lstm((x - level).unsqueeze(-1))  # [B, L, hidden]
        return self.head(out[:, -1]) + level  # [B, H]
