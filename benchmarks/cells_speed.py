"""Seconds per training step of each encoder, and of the peephole loop compiled three ways.

One step is what `lstmcast train` does per batch: the forking-sequence forward pass
(`LSTMForecaster.forward_origins` of `lstmcast.model.network`), the masked loss, backward, gradient clipping and Adam. The model is
the default one (2 layers x 64, lookback 168, horizon 48, 48 origins, batch 256) on
random data; the variants run interleaved, round after round, and the median per
variant is reported, so that load from other processes on shared cores hits all alike.
Both wall and CPU seconds (`time.process_time`) are reported: with `--threads 1` the CPU
seconds are the work itself, and stay meaningful on a machine shared with other jobs.

    python benchmarks/cells_speed.py [--rounds 5] [--steps 3] [--precision auto|bf16|fp32]
        [--variants lstm,gru,peephole-eager,peephole-script,peephole-compile-step,...]

Variants: `lstm`, `gru`, `peephole-eager` (the plain Python loop of `lstmcast.model.cells`,
what training uses), `peephole-script` (TorchScript), `peephole-compile-step` and
`peephole-compile-loop` (`torch.compile` of one step or of the loop), `bi` (LSTM,
bidirectional, one origin per sequence) and `attn` (LSTM + attention).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch


from lstmcast.model import cells
from lstmcast.config import Cell, ModelConfig
from lstmcast.model.network import LSTMForecaster


def _step_cell(xw_t: torch.Tensor, h: torch.Tensor, c: torch.Tensor, w_hh_t: torch.Tensor, peep: torch.Tensor):
    gates = torch.addmm(xw_t, h, w_hh_t)
    i, f, g, o = gates.chunk(4, 1)
    c = torch.sigmoid(f + peep[1] * c) * c + torch.sigmoid(i + peep[0] * c) * torch.tanh(g)
    h = torch.sigmoid(o + peep[2] * c) * torch.tanh(c)
    return h, c


def _loop_with(step):
    def recurrence(xw, w_hh, peep, reverse: bool):
        steps, w_hh_t = xw.size(1), w_hh.t()
        h = torch.zeros(xw.size(0), w_hh.size(1), dtype=peep.dtype, device=xw.device)
        c = torch.zeros_like(h)
        outputs = []
        for s in range(steps):
            h, c = step(xw[:, steps - 1 - s if reverse else s], h, c, w_hh_t, peep)
            outputs.append(h)
        if reverse:
            outputs.reverse()
        return torch.stack(outputs, 1)
    return recurrence


LOOPS = {
    "eager": lambda: cells._recurrence,
    "script": cells.scripted,
    "compile-step": lambda: _loop_with(torch.compile(_step_cell, dynamic=False)),
    "compile-loop": lambda: torch.compile(cells._recurrence, dynamic=False),
}


def build(name: str, args) -> torch.nn.Module:
    cell, _, loop = name.partition("-")
    bidirectional = attention = False
    if cell in ("bi", "attn"):  # bi = lstm bidirectional, attn = lstm + attention
        bidirectional, attention, cell = cell == "bi", cell == "attn", "lstm"
    config = ModelConfig(lookback=args.lookback, horizon=args.horizon, hidden=args.hidden, layers=args.layers,
                         cell=Cell(cell), bidirectional=bidirectional, attention=attention)
    torch.manual_seed(0)
    model = LSTMForecaster(config)
    if cell == "peephole":
        model.encoder.step_fn = LOOPS[loop or "eager"]()
    return model


def time_steps(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int,
               bf16: bool) -> tuple[float, float]:
    """(wall, CPU) seconds per step."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            pred = model.forward_origins(x)
        loss = (pred.float() - y).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return (time.perf_counter() - started) / steps, (time.process_time() - cpu) / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="lstm,gru,peephole-eager,peephole-script,peephole-compile-step")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lookback", type=int, default=168)
    parser.add_argument("--horizon", type=int, default=48)
    parser.add_argument("--forking", type=int, default=48)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from lstmcast.config import Precision
    from lstmcast.train.device import use_bf16

    bf16 = use_bf16(Precision(args.precision), torch.device("cpu"))
    print(f"precision: {'bf16' if bf16 else 'fp32'}, threads {args.threads}", file=sys.stderr)
    names = args.variants.split(",")
    models = {name: build(name, args) for name in names}
    gen = torch.Generator().manual_seed(0)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for name, model in models.items():  # warm-up: scripting, compilation, allocator
        forking = 1 if model.config.bidirectional else args.forking
        x = torch.randn(args.batch, args.lookback + forking - 1, generator=gen)
        wall, cpu = time_steps(model, x, torch.randn(args.batch, forking, args.horizon, generator=gen), 1, bf16)
        print(f"{name}: first step {wall:.2f} s wall, {cpu:.2f} s CPU", file=sys.stderr, flush=True)
    for _ in range(args.rounds):
        for name, model in models.items():
            forking = 1 if model.config.bidirectional else args.forking
            x = torch.randn(args.batch, args.lookback + forking - 1, generator=gen)
            y = torch.randn(args.batch, forking, args.horizon, generator=gen)
            times[name].append(time_steps(model, x, y, args.steps, bf16))
            print(f"{name}: {times[name][-1][0]:.2f} s wall, {times[name][-1][1]:.2f} s CPU per step",
                  file=sys.stderr, flush=True)
    print(f"| variant | CPU s/step (median of {args.rounds} x {args.steps} steps) | wall s/step | origins/step |")
    print("|---|---:|---:|---:|")
    for name in names:
        forking = 1 if models[name].config.bidirectional else args.forking
        wall = statistics.median(t[0] for t in times[name])
        cpu = statistics.median(t[1] for t in times[name])
        print(f"| {name} | {cpu:.3f} | {wall:.3f} | {args.batch * forking} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
