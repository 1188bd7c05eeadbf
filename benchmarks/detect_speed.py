"""How fast `lstmcast detect` scores every point of many series: 10,000 series x 1,000 points by default.

    python benchmarks/detect_speed.py                        # hidden 64, 2 layers (train's defaults)
    python benchmarks/detect_speed.py --hidden 16 --layers 1 --write

A wide CSV of daily series (a weekly and a yearly season, noise, a few spikes) is
written once; a run is trained on 200 of its series (50 steps: the weights do not change
the cost); then, in a fresh process that must not import torch, `api.detect` scores
every point after the lookback of every series. Prints the time of reading the file
and of the whole call, points per second, peak memory, and with --write the time of
`lstmcast detect --output` (the same plus writing the 10-million-row CSV).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from common import markdown_table

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from lstmcast import api
from lstmcast.forecast.histories import read_like_run
from lstmcast.run.rundir import load_run
run_dir, data, stride = sys.argv[1], sys.argv[2], (int(sys.argv[3]) or None)
t1 = time.perf_counter()
series = read_like_run(load_run(run_dir), data)
t2 = time.perf_counter()
found = api.detect(run_dir, data, stride=stride)
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "read": t2 - t1, "detect": t3 - t2, "rows": found.rows, "scored": found.scored,
                  "anomalies": found.anomalies, "stride": found.stride, "torch": "torch" in sys.modules,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_data(path: Path, n_series: int, length: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    level = rng.uniform(10, 1000, (n_series, 1))
    values = level * (1 + 0.1 * np.sin(2 * np.pi * t / 7) + 0.2 * np.sin(2 * np.pi * t / 365.25)
                      + 0.05 * rng.standard_normal((n_series, length)))
    spikes = rng.random((n_series, length)) < 0.002
    values[spikes] *= 1.8
    frame = pd.DataFrame(values.T.round(3), columns=[f"s{i}" for i in range(n_series)])
    frame.insert(0, "date", pd.date_range("2020-01-01", periods=length, freq="D").strftime("%Y-%m-%d"))
    frame.to_csv(path, index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--length", type=int, default=1_000)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--stride", type=int, default=0, help="detect --stride (default: detect's, horizon / 3)")
    parser.add_argument("--write", action="store_true", help="also time the CLI writing the CSV")
    parser.add_argument("--work-dir", type=Path, help="keep the data and run here")
    args = parser.parse_args()

    import torch

    from lstmcast import api
    from lstmcast.config import Device, TrainConfig

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="lstmcast-detect-speed-") as tmp:
        root = args.work_dir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        data = root / f"wide_{args.series}x{args.length}.csv"
        if not data.exists():
            make_data(data, args.series, args.length)
        sample = root / "sample.csv"
        pd.read_csv(data, usecols=list(range(201))).to_csv(sample, index=False)
        run_dir = root / f"run_h{args.hidden}_l{args.layers}"
        report = api.train(sample, hidden=args.hidden, layers=args.layers, run_dir=run_dir, overwrite=True,
                           train_config=TrainConfig(max_steps=50, device=Device.cpu))
        env = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
        import os

        env.update({k: v for k, v in os.environ.items() if k in ("PYTHONPATH", "HOME")})
        done = subprocess.run([sys.executable, "-c", CHILD, str(run_dir), str(data), str(args.stride)], capture_output=True, text=True,
                              env=env, check=True)
        got = json.loads(done.stdout.strip().splitlines()[-1])
        assert not got["torch"], "detect imported torch"
        rows = [["api.detect (read, forecast, score, rows in memory)", f"{got['detect']:.1f}",
                 f"{got['scored'] / got['detect']:,.0f}", f"{got['peak_mb']:,.0f}"],
                ["of which reading the CSV", f"{got['read']:.1f}", "", ""]]
        if args.write:
            exe = Path(sys.executable).with_name("lstmcast")
            t0 = time.perf_counter()
            stride = ["--stride", str(args.stride)] if args.stride else []
            subprocess.run([str(exe), "detect", "--run", str(run_dir), "--data", str(data), "--output",
                            str(root / "anomalies.csv"), "--quiet", *stride], env=env, check=True)
            seconds = time.perf_counter() - t0
            rows.append(["lstmcast detect --output (a new process, writing the CSV)", f"{seconds:.1f}",
                         f"{got['scored'] / seconds:,.0f}", ""])
        m = report.model
        print(f"{args.series} series x {args.length} points (daily): {got['rows']:,} rows, {got['scored']:,} scored, "
              f"{got['anomalies']:,} flagged at 0.99; model hidden {m['hidden']}, {m['layers']} layers, lookback "
              f"{m['lookback']}, horizon {m['horizon']}, stride {got['stride']}; torch imported: {got['torch']}")
        print(markdown_table(["step", "seconds", "points/s", "peak MB"], rows))


if __name__ == "__main__":
    main()
