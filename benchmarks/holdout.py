"""Held-out check on multi-series files: train without the last horizon of each series, score it.

The files were kept out of the choice of `--mase-weight` (benchmarks/RESULTS.md, "MASE-scaled
loss"): ETTh1's seven columns (last 4,000 hours), and the store sales and hourly load of
sample_data. Each case trains on the file less its last H rows per series, then runs
`lstmcast evaluate --run RUN --data FULL --test-size H` and prints the overall MASE and sMAPE::

    python benchmarks/holdout.py --extra "--threads 1 --seed 0 --mase-weight 0.5"
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from common import REPO, data_file

# (name, file, keep only the last N rows or None, id column or None, horizon)
CASES = (
    ("etth1-last4000", "ETTh1.csv", 4000, None, 48),
    ("store_sales", REPO / "sample_data" / "store_sales.csv", None, "store", 14),
    ("hourly_load", REPO / "sample_data" / "hourly_load.csv", None, None, 48),
)


def run_case(name: str, path: Path, last: int | None, id_col: str | None, horizon: int,
             extra: list[str]) -> dict[str, float]:
    frame = pd.read_csv(path)
    if last:
        frame = frame.iloc[-last:]
    if id_col:  # long layout: the last `horizon` rows of each series
        cut = frame[frame.groupby(id_col).cumcount(ascending=False) >= horizon]
    else:
        cut = frame.iloc[:-horizon]
    with tempfile.TemporaryDirectory(prefix="lstmcast-holdout-") as tmp:
        full_csv, cut_csv, run, out = (Path(tmp) / n for n in ("full.csv", "cut.csv", "run", "metrics.json"))
        frame.to_csv(full_csv, index=False)
        cut.to_csv(cut_csv, index=False)
        cli = [sys.executable, "-m", "lstmcast"]
        subprocess.run([*cli, "train", str(cut_csv), "--horizon", str(horizon), "--run-dir", str(run), "--quiet",
                        *extra], check=True, cwd=REPO)
        subprocess.run([*cli, "evaluate", "--run", str(run), "--data", str(full_csv), "--test-size", str(horizon),
                        "--output", str(out), "--quiet"], check=True, cwd=REPO)
        overall = json.loads(out.read_text())["overall"]
    return {"mase": overall["mase"], "smape": overall["smape"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra", default="", help="options passed to lstmcast train")
    args = parser.parse_args()
    extra = shlex.split(args.extra)
    for name, file, last, id_col, horizon in CASES:
        path = file if isinstance(file, Path) else data_file(file)
        scores = run_case(name, path, last, id_col, horizon, extra)
        print(f"{name:16} h {horizon:3}  MASE {scores['mase']:.4f}  sMAPE {scores['smape']:.3f}  ({args.extra})",
              flush=True)


if __name__ == "__main__":
    main()
