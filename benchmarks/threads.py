"""How many torch threads training should use: 10 steps of the demo at each thread count, beside whatever runs.

    python benchmarks/threads.py [--threads 1 2] [--steps 10] [--data sample_data/hourly_load.csv]

Each count runs in a fresh process (torch fixes its pool at start); the load average
before each run says how busy the machine was. `lstmcast train` picks its own count
(`lstmcast.train.device.choose_threads`: the CPUs this process may use less the load of
the others); this shows what that choice is worth.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from common import REPO, markdown_table

STEPS = """
import json, sys, time
from lstmcast import api
from lstmcast.config import TrainConfig
threads, data, steps, run_dir = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
started = time.process_time()
report = api.train(data, train_config=TrainConfig(max_steps=steps, epochs=1, batch_size=256), run_dir=run_dir,
                   overwrite=True, threads=threads)
print(json.dumps({"train_seconds": report.metrics["train_seconds"], "cpu_seconds": time.process_time() - started,
                  "steps": report.metrics["steps"]}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--data", default=str(REPO / "sample_data" / "hourly_load.csv"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.threads:
            load = os.getloadavg()[0]
            env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
            out = subprocess.run([sys.executable, "-c", STEPS, str(n), args.data, str(args.steps), f"{tmp}/run{n}"],
                                 env=env, capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append([n, f"{load:.2f}", r["steps"], f"{r['train_seconds']:.2f}",
                         f"{r['train_seconds'] / r['steps']:.3f}", f"{r['cpu_seconds']:.1f}"])
    print(markdown_table(["threads", "load before", "steps", "train s", "s per step", "process CPU s"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
