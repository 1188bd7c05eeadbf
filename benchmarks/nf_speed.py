"""Training throughput of NeuralForecast's ``LSTM`` on the lstmcast reference case.

Runs in its own virtual environment (NeuralForecast is never a dependency of
lstmcast), made once with::

    python3 -m venv /work/nfvenv
    /work/nfvenv/bin/pip install torch==2.13.0
    echo torch==2.13.0 > /tmp/nf-constraints.txt
    /work/nfvenv/bin/pip install -c /tmp/nf-constraints.txt neuralforecast

and is called by ``benchmarks/speed.py --nf-python /work/nfvenv/bin/python`` on
the same generated CSV that lstmcast trains on (wide layout: a ``timestamp``
column and one column per series)::

    /work/nfvenv/bin/python benchmarks/nf_speed.py --data DATA.csv --steps 100 \\
        --json-out nf.json

Architecture, matched to ``lstmcast train --hidden 128 --layers 2 --lookback 168
--horizon 48 --batch-size 256``: ``LSTM(h=48, input_size=168,
encoder_n_layers=2, encoder_hidden_size=128, decoder_layers=1)``, i.e. a
2-layer ``torch.nn.LSTM`` of 128 units over 168 input steps with one input
feature (``y``), and a ``Linear(128 -> 1)`` applied to each of the last 48
hidden states. That head has the same multiply-adds as lstmcast's
``Linear(128 -> 48)`` on the last state (2 x 128 x 48 FLOPs per window); the
default ``decoder_layers=2`` would add a 128x128 layer per horizon step.
Loss MAE, Adam lr 1e-3, gradient norm clipped at 1.0, as lstmcast. NF scales
each window with its ``scaler_type`` (default ``robust``); lstmcast scales each
series once and normalises each window inside the model (``--window-norm``,
revin by default) and by default adds a ``Linear(168 -> 48)`` skip head. None of
these costs much next to the LSTM (the skip head is 0.02% of the FLOPs).

How NeuralForecast's batch maps to windows (``common/_base_model.py``,
``training_step`` and ``_create_windows``, NeuralForecast 3.3): one training
step takes one dataloader batch of ``batch_size`` *series* (shuffled), unfolds
every window of length ``input_size + h`` of those series (step
``step_size=1``), keeps the windows whose inputs and targets hold data, and
draws ``windows_batch_size`` of them at random (without replacement when there
are at least that many, else with). So every step trains exactly
``windows_batch_size`` windows whatever ``batch_size`` is, and

    windows trained = steps x windows_batch_size

which is what lstmcast's ``train_windows`` counts (steps x ``--batch-size``).
``batch_size`` only decides how many series the windows of one step come from,
and how big the unfolded window tensor is that NF builds every step
(``batch_size x windows per series x (input_size + h) x 2`` floats: y and the
availability mask); ``--batch-size`` defaults to NF's own default, 32.

Timing: a Lightning callback takes the time at ``on_train_start`` and at the
end of every step. ``train_seconds`` runs from the start of training to the end
of the last step, as lstmcast's ``train_seconds`` (which starts at its first
epoch and ends after the last step plus one small validation pass), and
``windows_per_second = steps x windows_batch_size / train_seconds``.
``steady_windows_per_second`` leaves out the first ``--warmup`` steps.
``fit_seconds`` is the whole ``NeuralForecast.fit`` call (dataset build,
Lightning set-up). No validation is run (``val_size=0``).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True,
                   help="wide CSV: a time column first, then one column per series")
    p.add_argument("--steps", type=int, default=100, help="training steps (max_steps)")
    p.add_argument("--lookback", type=int, default=168, help="input_size")
    p.add_argument("--horizon", type=int, default=48, help="h")
    p.add_argument("--hidden", type=int, default=128, help="encoder_hidden_size")
    p.add_argument("--layers", type=int, default=2, help="encoder_n_layers")
    p.add_argument("--windows-batch-size", type=int, default=256, help="windows per step")
    p.add_argument("--batch-size", type=int, default=32,
                   help="series per step, from which the step's windows are drawn (NF default 32)")
    p.add_argument("--decoder-layers", type=int, default=1,
                   help="MLP decoder layers (1: one Linear(hidden -> 1) per horizon step)")
    p.add_argument("--scaler-type", default="robust", help="NF temporal scaler (NF default robust)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="fp32 (Lightning '32-true') or bf16 autocast (Lightning 'bf16-mixed')")
    p.add_argument("--warmup", type=int, default=5, help="steps left out of the steady rate")
    p.add_argument("--freq", default="h", help="pandas frequency of the time column")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json-out", type=Path, help="write the result here as JSON")
    return p.parse_args(argv)


def load_long(path: Path) -> Any:
    """The wide CSV as NF's long frame: unique_id, ds, y."""
    import pandas as pd

    wide = pd.read_csv(path)
    time_col = wide.columns[0]
    wide[time_col] = pd.to_datetime(wide[time_col])
    long = wide.melt(id_vars=[time_col], var_name="unique_id", value_name="y")
    long = long.rename(columns={time_col: "ds"})[["unique_id", "ds", "y"]]
    long["y"] = long["y"].astype("float32")
    return long


class StepTimes:
    """Where the callback writes. Module-level, because NeuralForecast deep-copies its
    models (and with them the callbacks) before training."""

    started: float | None = None
    step_ends: list[float] = []


def make_timer() -> Any:
    """A Lightning callback recording the start of training and the end of each step."""
    import pytorch_lightning as pl

    class StepTimer(pl.Callback):
        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            StepTimes.started = time.perf_counter()
            StepTimes.step_ends = []

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any,
                               batch_idx: int) -> None:
            StepTimes.step_ends.append(time.perf_counter())

    return StepTimer()


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train once and return the measured rates."""
    warnings.filterwarnings("ignore")
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric", "neuralforecast"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import neuralforecast
    import pytorch_lightning
    import torch
    from neuralforecast import NeuralForecast
    from neuralforecast.models import LSTM

    loaded = time.perf_counter()
    df = load_long(args.data)
    read_seconds = time.perf_counter() - loaded
    n_series = int(df["unique_id"].nunique())
    timer = make_timer()
    model = LSTM(
        h=args.horizon, input_size=args.lookback, encoder_n_layers=args.layers,
        encoder_hidden_size=args.hidden, decoder_hidden_size=args.hidden,
        decoder_layers=args.decoder_layers, recurrent=False, max_steps=args.steps,
        learning_rate=1e-3, val_check_steps=args.steps, early_stop_patience_steps=-1,
        batch_size=args.batch_size, windows_batch_size=args.windows_batch_size,
        scaler_type=args.scaler_type, random_seed=args.seed,
        # Lightning trainer settings: CPU (or whatever lstmcast would use), quiet, no validation.
        accelerator="gpu" if torch.cuda.is_available() else "cpu", devices=1,
        precision="bf16-mixed" if args.precision == "bf16" else "32-true",
        gradient_clip_val=1.0, enable_progress_bar=False, enable_model_summary=False,
        logger=False, enable_checkpointing=False, limit_val_batches=0, num_sanity_val_steps=0,
        callbacks=[timer],
    )
    nf = NeuralForecast(models=[model], freq=args.freq)
    fit_start = time.perf_counter()
    nf.fit(df=df, val_size=0)
    fit_seconds = time.perf_counter() - fit_start

    ends, started = StepTimes.step_ends, StepTimes.started
    steps = len(ends)
    if started is None or steps == 0:
        raise RuntimeError("NeuralForecast trained no step (the timing callback was never called)")
    train_seconds = ends[-1] - started
    windows = steps * args.windows_batch_size
    out: dict[str, Any] = {
        "tool": "neuralforecast", "model": "LSTM", "precision": args.precision,
        "steps": steps, "windows_batch_size": args.windows_batch_size, "batch_size_series": args.batch_size,
        "train_windows": windows, "train_seconds": round(train_seconds, 3),
        "windows_per_second": round(windows / train_seconds, 1),
        "fit_seconds": round(fit_seconds, 3), "read_seconds": round(read_seconds, 3),
        "series": n_series, "lookback": args.lookback, "horizon": args.horizon, "hidden": args.hidden,
        "layers": args.layers, "decoder_layers": args.decoder_layers, "scaler_type": args.scaler_type,
        "versions": {"neuralforecast": neuralforecast.__version__, "torch": torch.__version__,
                     "pytorch_lightning": pytorch_lightning.__version__, "python": platform.python_version()},
        "torch_threads": torch.get_num_threads(),
    }
    if steps > args.warmup + 1:
        span = ends[-1] - ends[args.warmup - 1] if args.warmup > 0 else train_seconds
        out["steady_windows_per_second"] = round((steps - args.warmup) * args.windows_batch_size / span, 1)
    out["parameters"] = sum(p.numel() for p in nf.models[0].parameters())
    return out


def main(argv: list[str] | None = None) -> int:
    """Run, print a one-line summary to stderr and the JSON to stdout (and --json-out)."""
    args = parse_args(argv)
    result = run(args)
    text = json.dumps(result, indent=2)
    if args.json_out is not None:
        args.json_out.write_text(text + "\n")
    print(f"neuralforecast LSTM ({args.precision}): {result['steps']} steps x {args.windows_batch_size} windows "
          f"in {result['train_seconds']:.2f} s = {result['windows_per_second']:.0f} windows/s", file=sys.stderr)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
