"""lstmcast with default settings against naive and seasonal naive on the classic series.

For each dataset the last T points are removed, `lstmcast train` runs on the rest with
no tuning flags, and `lstmcast evaluate --test-size T` forecasts the removed points
from what precedes them, beside the naive and seasonal-naive forecasts of the same
points. Everything goes through the installed command line.

    python benchmarks/classic.py [--data-dir ../shared/data] [--json-out FILE] [--extra=--calendar]

`--extra` adds train flags to every case (e.g. `--extra=--calendar` to measure the
calendar features; write it with `=`, since the value starts with a dash).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import DATA_DIR

REPO = Path(__file__).resolve().parents[1]

# (file, points held out): airline twice, as issue 3 asks (the last 12 and 24 months).
CASES: list[tuple[str, int]] = [
    ("airline-passengers.csv", 12),
    ("airline-passengers.csv", 24),
    ("daily-total-female-births.csv", 14),
    ("daily-min-temperatures.csv", 14),
    ("monthly-sunspots.csv", 12),
]


def lstmcast(*args: str) -> float:
    """Run the CLI; return its wall time; stop the benchmark on failure."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "lstmcast", *args], cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"lstmcast {' '.join(args)} failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return time.perf_counter() - started


def best_flat_mae(held_out: list[float]) -> float:
    """The lowest MAE a flat forecast can reach on `held_out`, chosen knowing it (its median).

    No forecast of a level alone, however good, does better: where seasonal naive beats this,
    only a forecast with the right within-season pattern can beat seasonal naive.
    """
    ordered = sorted(held_out)
    median = (ordered[(len(ordered) - 1) // 2] + ordered[len(ordered) // 2]) / 2
    return sum(abs(v - median) for v in held_out) / len(held_out)


def run_case(data_dir: Path, name: str, test_size: int, work: Path, extra: list[str]) -> dict[str, Any]:
    source = data_dir / name
    lines = source.read_text(encoding="utf-8").splitlines()
    train_csv = work / f"{Path(name).stem}-train{test_size}.csv"
    train_csv.write_text("\n".join(lines[: len(lines) - test_size]) + "\n", encoding="utf-8")
    run_dir = work / f"run-{Path(name).stem}-{test_size}"
    metrics_json = work / f"metrics-{Path(name).stem}-{test_size}.json"
    train_s = lstmcast("train", str(train_csv), "--horizon", str(test_size), "--run-dir", str(run_dir), "--quiet",
                       *extra)
    lstmcast("evaluate", "--run", str(run_dir), "--data", str(source), "--test-size", str(test_size),
             "--output", str(metrics_json), "--quiet")
    result = json.loads(metrics_json.read_text())
    held_out = [float(line.rsplit(",", 1)[1]) for line in lines[len(lines) - test_size:]]
    return {
        "dataset": name, "test_size": test_size, "season": result["season"], "train_seconds": round(train_s, 1),
        "lstmcast": result["overall"], "naive": result["baselines"]["naive"],
        "seasonal_naive": result["baselines"]["seasonal_naive"],
        "best_flat_mae": best_flat_mae(held_out),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--extra", default="", help="train flags added to every case, one shell-quoted string")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONHASHSEED", "0")
    rows = []
    with tempfile.TemporaryDirectory(prefix="lstmcast-classic-") as tmp:
        for name, test_size in CASES:
            rows.append(run_case(args.data_dir, name, test_size, Path(tmp), shlex.split(args.extra)))
            print(f"done {name} T={test_size}", file=sys.stderr, flush=True)
    print("| dataset | held out | season | lstmcast MAE | seasonal naive MAE | naive MAE | lstmcast MASE "
          "| seasonal naive MASE | better than seasonal naive | best flat MAE (hindsight) | train s (wall) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for r in rows:
        ours, snaive, naive = r["lstmcast"], r["seasonal_naive"], r["naive"]
        print(f"| {r['dataset']} | {r['test_size']} | {r['season']} | {ours['mae']:.3f} | {snaive['mae']:.3f} | "
              f"{naive['mae']:.3f} | {ours['mase']:.3f} | {snaive['mase']:.3f} | "
              f"{'yes' if ours['mae'] < snaive['mae'] else 'NO'} | {r['best_flat_mae']:.3f} | {r['train_seconds']} |")
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
