"""The network: a stacked recurrent encoder over the lookback window and a head for all horizon steps."""

from __future__ import annotations

import math

import torch
from torch import nn

from lstmcast.config import Cell, ModelConfig, WindowNorm
from lstmcast.model.quantiles import monotone_torch
from lstmcast.model.shapes import MIN_STD



def make_encoder(config: ModelConfig) -> nn.Module:
    """The stacked recurrent encoder of `config.cell`; batch-first, returns (outputs, state)."""
    kwargs = dict(input_size=config.input_size, hidden_size=config.hidden, num_layers=config.layers,
                  dropout=config.dropout if config.layers > 1 else 0.0, bidirectional=config.bidirectional)
    if config.cell is Cell.peephole:
        from lstmcast.model.cells import PeepholeLSTM

        return PeepholeLSTM(**kwargs)
    if any(d > 1 for d in config.dilations):
        return DilatedRNN(config)
    fused = nn.GRU if config.cell is Cell.gru else nn.LSTM
    return fused(batch_first=True, **kwargs)


def dilate(x: torch.Tensor, d: int) -> torch.Tensor:
    """[B, T, F] -> [B * d, ceil(T / d), F]: chain j of each row holds its steps j, j + d, j + 2d, ...

    The last chains are padded with zeros at the end; the padding comes after every real
    step of its chain, so no real step reads it.
    """
    b, t, f = x.shape
    n = -(-t // d)
    if n * d > t:
        x = torch.cat([x, x.new_zeros(b, n * d - t, f)], 1)
    return x.reshape(b, n, d, f).transpose(1, 2).reshape(b * d, n, f)


def undilate(y: torch.Tensor, d: int, t: int) -> torch.Tensor:
    """The inverse of `dilate` for a sequence of `t` steps: [B * d, n, F] -> [B, t, F]."""
    bd, n, f = y.shape
    return y.reshape(bd // d, d, n, f).transpose(1, 2).reshape(bd // d, n * d, f)[:, :t]


class DilatedRNN(nn.Module):
    """A stacked LSTM or GRU whose layer k links each step to the one `dilations[k]` before.

    A dilated layer is the fused kernel run over d interleaved chains at once (steps j,
    j + d, ... of each sequence form one chain), so a season-long dilation carries a state
    from one day's hour to the next day's in one step instead of 24. The parameters have
    nn.LSTM's / nn.GRU's names, shapes and initialisation: with every dilation 1 this is
    that module, and the numpy forward reads both alike.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        fused = nn.GRU if config.cell is Cell.gru else nn.LSTM
        reference = fused(config.input_size, config.hidden, num_layers=config.layers, batch_first=True)
        for name, param in reference.named_parameters():
            self.register_parameter(name, param)
        self.gru, self.hidden, self.dropout = config.cell is Cell.gru, config.hidden, config.dropout
        self.dilations = config.dilations

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        seq = x
        for k, d in enumerate(self.dilations):
            if k and self.dropout and self.training:
                seq = nn.functional.dropout(seq, self.dropout, True)
            weights = [getattr(self, f"{n}_l{k}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            steps = seq.size(1)
            z = dilate(seq, d) if d > 1 else seq
            h0 = z.new_zeros(1, z.size(0), self.hidden)
            if self.gru:
                out = torch.gru(z, h0, weights, True, 1, 0.0, self.training, False, True)[0]
            else:
                out = torch.lstm(z, (h0, h0), weights, True, 1, 0.0, self.training, False, True)[0]
            seq = undilate(out, d, steps) if d > 1 else out
        return seq, None


def attend(states: torch.Tensor, query: torch.Tensor, lookback: int) -> torch.Tensor:
    """Scaled dot-product attention of each origin over the states of its own window.

    states [B, L + K - 1, D], query [B, K, D] -> context [B, K, D]: origin k weighs
    states k .. k + L - 1 only (the band of its window), so no origin sees later values.
    """
    scores = query @ states.transpose(1, 2) / math.sqrt(states.size(-1))  # [B, K, L + K - 1]
    origins, steps = scores.shape[1], scores.shape[2]
    pos = torch.arange(steps, device=states.device)
    start = torch.arange(origins, device=states.device).unsqueeze(1)
    outside = (pos < start) | (pos >= start + lookback)  # [K, L + K - 1]
    weights = torch.softmax(scores.masked_fill(outside, float("-inf")), dim=-1)
    return weights.to(states.dtype) @ states


class LSTMForecaster(nn.Module):
    """Stacked recurrent encoder (LSTM, GRU or peephole LSTM) with a direct multi-step head.

    Each window is normalised by its own statistics before the encoder and the output is
    mapped back, so that one global model serves series at different levels (instance
    normalisation on top of per-series scaling). With `skip`, a linear map from the
    normalised window to the horizon is added to the head. With `bidirectional`, the
    encoder reads the window both ways and the head sees both final states; with
    `attention`, the head also sees a weighted sum of all the window's encoder states
    (query: a learned map of the final state).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        # The attribute names the cell: "lstm.*" tensors are what runs before the other cells wrote.
        self.encoder_name = config.cell.value
        self.add_module(self.encoder_name, make_encoder(config))
        width = config.hidden * (2 if config.bidirectional else 1)
        self.attn = nn.Linear(width, width, bias=False) if config.attention else None
        known = config.horizon * config.known_size  # the future-known channels of every forecast step
        self.head = nn.Linear(width * (2 if config.attention else 1) + known, config.horizon)
        self.skip = nn.Linear(config.lookback, config.horizon) if config.skip else None
        # Quantile head: Q values per step, offsets around the point forecast (see quantiles.py).
        levels = len(config.quantiles)
        self.qhead = nn.Linear(self.head.in_features, config.horizon * levels) if levels else None
        self.register_buffer("levels", torch.tensor(config.quantiles, dtype=torch.float32), persistent=False)

    @property
    def encoder(self) -> nn.Module:
        return getattr(self, self.encoder_name)

    def forward(self, x: torch.Tensor, cov: torch.Tensor | None = None) -> torch.Tensor:
        """x: scaled history [B, L], cov: covariate channels [B, L + H, C] -> scaled forecast [B, H]."""
        return self.forward_origins(x, cov)[:, -1]

    def forward_origins(self, x: torch.Tensor, cov: torch.Tensor | None = None) -> torch.Tensor:
        """Point forecasts from every origin: `forward_all(x, cov)[0]`, [B, K, H]."""
        return self.forward_all(x, cov)[0]

    def forward_all(self, x: torch.Tensor, cov: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Point and quantile forecasts from every origin of a longer input (forking sequences, MQ-RNN).

        x: scaled values [B, L + K - 1] -> scaled forecasts [B, K, H], where origin k
        forecasts the H steps after x[:, L - 1 + k]. One forward pass of the encoder over
        the sequence serves all K origins; the window statistics come from the first L
        values, which every origin has seen, so no origin looks ahead. A bidirectional
        encoder reads each origin's window on its own instead (its backward direction
        starts at the origin: over the whole sequence it would see later values). K = 1
        is the plain window forecast. Quantiles [B, K, H, Q] (None without a quantile head)
        are non-decreasing along Q.

        cov: the other input channels [B, L + K - 1 + H, C] (lstmcast.covariates), at the
        same positions as x and H steps beyond: the encoder reads them beside the target
        up to each origin; the head of origin k also reads the last `known_size` channels
        over its H forecast steps. The window normalisation applies to the target only.
        """
        cfg = self.config
        lookback, norm = cfg.lookback, cfg.window_norm
        head = x[:, :lookback]
        if norm is WindowNorm.none:
            level = torch.zeros_like(head[:, :1])
        else:
            level = head.mean(dim=1, keepdim=True)  # [B, 1]
        if norm is WindowNorm.revin:
            spread = head.std(dim=1, keepdim=True).clamp_min(MIN_STD)
        else:
            spread = torch.ones_like(level)
        z = (x - level) / spread  # [B, L + K - 1]
        if norm is WindowNorm.revin:
            # A window that does not move at all (a constant series) forecasts its own value: its output
            # is not scaled back. Scaling every window below MIN_STD back by its own spread instead lost
            # on M4 Weekly (OWA 0.745 against 0.735, seed 0), so only flat ones are.
            spread = spread * (head.amax(dim=1, keepdim=True) > head.amin(dim=1, keepdim=True))
        windows = z.unfold(1, lookback, 1)  # [B, K, L]
        batch, origins = windows.shape[:2]
        seq = z.unsqueeze(-1) if cov is None else torch.cat([z.unsqueeze(-1), cov[:, :z.size(1)].to(z.dtype)], -1)
        if cfg.bidirectional:
            framed = seq.unfold(1, lookback, 1).transpose(2, 3)  # [B, K, L, C + 1]
            out, _ = self.encoder(framed.reshape(batch * origins, lookback, seq.size(-1)))  # [B*K, L, 2 hidden]
            hidden = cfg.hidden
            # Forward direction's last state and backward direction's state at the window start.
            last = torch.cat([out[:, -1, :hidden], out[:, 0, hidden:]], dim=-1).unsqueeze(1)  # [B*K, 1, D]
        else:
            out, _ = self.encoder(seq)  # [B, L + K - 1, hidden]
            last = out[:, lookback - 1:]  # [B, K, hidden]
        if self.attn is not None:
            context = attend(out, self.attn(last), lookback)
            last = torch.cat([last, context], dim=-1)
        if cfg.known_size:  # origin k's known channels over its forecast steps, [B, K, known * H]
            known = cov[:, lookback:, cov.size(-1) - cfg.known_size:].to(last.dtype).unfold(1, cfg.horizon, 1)
            last = torch.cat([last.reshape(batch, origins, -1), known.reshape(batch, origins, -1)], dim=-1)
        y = self.head(last).reshape(batch, origins, -1)  # [B, K, H]
        if self.skip is not None:
            y = y + self.skip(windows)
        spread, level = spread.unsqueeze(-1), level.unsqueeze(-1)  # [B, 1, 1]
        if self.qhead is None:
            return y * spread + level, None
        raw = self.qhead(last).reshape(batch, origins, cfg.horizon, len(cfg.quantiles))  # [B, K, H, Q]
        q = y.unsqueeze(-1) + monotone_torch(raw)
        return y * spread + level, q * spread.unsqueeze(-1) + level.unsqueeze(-1)
