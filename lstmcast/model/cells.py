"""The peephole LSTM (Gers & Schmidhuber, 2000): gates that also look at the cell state.

    i(t) = sigmoid(W_i x(t) + U_i h(t-1) + p_i * c(t-1) + b_i)
    f(t) = sigmoid(W_f x(t) + U_f h(t-1) + p_f * c(t-1) + b_f)
    g(t) = tanh(W_g x(t) + U_g h(t-1) + b_g)
    c(t) = f(t) * c(t-1) + i(t) * g(t)
    o(t) = sigmoid(W_o x(t) + U_o h(t-1) + p_o * c(t) + b_o)
    h(t) = o(t) * tanh(c(t))

PyTorch has no fused kernel for it, so it is written for speed by hand: the input
projections of all time steps are one matrix product per layer and direction, and the
recurrent loop does one `addmm` and a few element-wise operations per step. A
`torch.jit.script` version of the loop is available (`script=True`, and in
benchmarks/cells_speed.py); it is not the default: it is deprecated in torch 2.13,
costs seconds of profiling in every process and for every new shape, and no gain from
it has been measured yet (benchmarks/RESULTS.md).

Parameter names and gate order (i, f, g, o) are `nn.LSTM`'s, plus `weight_peep_l{k}`
[3, hidden] (rows p_i, p_f, p_o), so with the peephole weights at zero it computes
exactly what `nn.LSTM` computes with the same weights.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn


def _recurrence(xw: torch.Tensor, w_hh: torch.Tensor, peep: torch.Tensor, reverse: bool) -> torch.Tensor:
    """One layer, one direction. xw [B, T, 4H] (input projection + both biases) -> h [B, T, H]."""
    steps = xw.size(1)
    hidden = w_hh.size(1)
    w_hh_t = w_hh.t()
    p_i, p_f, p_o = peep[0], peep[1], peep[2]
    # The state keeps the weights' precision; under bf16 autocast only the products are bf16.
    h = torch.zeros(xw.size(0), hidden, dtype=peep.dtype, device=xw.device)
    c = torch.zeros_like(h)
    outputs: list[torch.Tensor] = []
    # One unbind, not xw[:, t] per step: each indexing op's backward would add a zero tensor
    # the size of all of xw into its gradient (T times), unbind's backward stacks once.
    inputs = xw.unbind(1)
    for step in range(steps):
        t = steps - 1 - step if reverse else step
        gates = torch.addmm(inputs[t], h, w_hh_t)
        i, f, g, o = gates.chunk(4, 1)
        c = torch.sigmoid(f + p_f * c) * c + torch.sigmoid(i + p_i * c) * torch.tanh(g)
        h = torch.sigmoid(o + p_o * c) * torch.tanh(c)
        outputs.append(h)
    if reverse:
        outputs.reverse()
    return torch.stack(outputs, 1)


@functools.lru_cache(maxsize=None)
def scripted():
    """The loop compiled by TorchScript (built on first use: torch 2.13 warns that it is deprecated)."""
    return torch.jit.script(_recurrence)


class PeepholeLSTM(nn.Module):
    """Stacked (optionally bidirectional) peephole LSTM; batch-first, zero initial state.

    forward(x [B, T, input_size]) -> (outputs [B, T, hidden * directions], None),
    shaped like `nn.LSTM`'s output so the model treats both alike.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0,
                 bidirectional: bool = False, script: bool = False) -> None:
        super().__init__()
        self.hidden_size, self.num_layers, self.dropout = hidden_size, num_layers, dropout
        self.suffixes = ("", "_reverse") if bidirectional else ("",)
        self.step_fn = scripted() if script else _recurrence
        for layer in range(num_layers):
            width = input_size if layer == 0 else hidden_size * len(self.suffixes)
            for sfx in self.suffixes:
                self.register_parameter(f"weight_ih_l{layer}{sfx}", nn.Parameter(torch.empty(4 * hidden_size, width)))
                self.register_parameter(f"weight_hh_l{layer}{sfx}",
                                        nn.Parameter(torch.empty(4 * hidden_size, hidden_size)))
                self.register_parameter(f"bias_ih_l{layer}{sfx}", nn.Parameter(torch.empty(4 * hidden_size)))
                self.register_parameter(f"bias_hh_l{layer}{sfx}", nn.Parameter(torch.empty(4 * hidden_size)))
                self.register_parameter(f"weight_peep_l{layer}{sfx}", nn.Parameter(torch.empty(3, hidden_size)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """`nn.LSTM`'s initialisation, U(-1/sqrt(hidden), 1/sqrt(hidden)), for every weight."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        seq = x
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0 and self.training:
                seq = nn.functional.dropout(seq, self.dropout, training=True)
            outs = []
            for sfx in self.suffixes:
                p = lambda name: getattr(self, f"{name}_l{layer}{sfx}")  # noqa: E731
                # Every time step's input projection (and both biases) in one matrix product.
                xw = nn.functional.linear(seq, p("weight_ih"), p("bias_ih") + p("bias_hh"))
                outs.append(self.step_fn(xw, p("weight_hh"), p("weight_peep"), sfx == "_reverse"))
            seq = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)
        return seq, None
