"""ETTh1 univariate (`OT`), the long-horizon benchmark of Informer, DLinear and PatchTST.

The standard split: 12 months train, 4 validation, 4 test (8,640 / 2,880 / 2,880
hourly rows); values z-scored with the training rows' mean and standard deviation; MSE
and MAE on that scale over every test window (stride 1, each window's input reaching
back before the test start as far as the lookback needs).

lstmcast trains through its command line on the train + validation rows, holding the
validation rows out with `--val-size 2880` (so its scaler, fitted on the training part
only, is exactly the z-score of the benchmark) and no tuning flags. The test windows
are then forecast in-process with lstmcast's modules (`lstmcast.run.rundir.load_run` and
`lstmcast.forecast.recursive.forecast_series`): 2,785 to 2,161 forecast origins are one batched
call instead of thousands of `predict` processes.

    python benchmarks/etth1.py --horizons 96,192,336,720 [--json-out FILE] [--extra "FLAGS"]
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from common import DATA_DIR

REPO = Path(__file__).resolve().parents[1]
TRAIN, VAL, TEST = 12 * 30 * 24, 4 * 30 * 24, 4 * 30 * 24

# Published univariate ETTh1 MSE, as quoted in issue 3 (DLinear and PatchTST papers).
PUBLISHED = {
    "DLinear": {96: 0.056, 192: 0.071, 336: 0.098, 720: 0.189},
    "PatchTST/42": {96: 0.055, 192: 0.071, 336: 0.081, 720: 0.087},
}


DATA_FILE = [DATA_DIR / "ETTh1.csv"]


def load_ot(path: Path) -> tuple[list[str], np.ndarray]:
    import pandas as pd

    frame = pd.read_csv(path)
    return frame["date"].tolist()[: TRAIN + VAL + TEST], frame["OT"].to_numpy(np.float64)[: TRAIN + VAL + TEST]


def train_command(csv: Path, run_dir: Path, horizon: int, extra: list[str]) -> list[str]:
    """The documented command for one horizon (the harness adds only paths and --quiet)."""
    return [sys.executable, "-m", "lstmcast", "train", str(csv), "--time-col", "date", "--target", "OT",
            "--horizon", str(horizon), "--val-size", str(VAL), "--run-dir", str(run_dir), "--quiet", *extra]


def score(run_dir: Path, values: np.ndarray, horizon: int, full_csv: Path | None = None) -> dict[str, float]:
    """MSE and MAE on the training z-score over all test windows (stride 1).

    full_csv: every row (test too), for the covariate and calendar channels a run reads.
    """
    from lstmcast.run.rundir import load_run
    from lstmcast.forecast.recursive import forecast_series

    run = load_run(run_dir)
    channels = None
    if full_csv is not None and run.record.covariates is not None:
        from lstmcast.forecast.histories import read_like_run
        from lstmcast.data import covariates

        channels = covariates.history_channels(run, read_like_run(run, full_csv), full_csv)[0]
    lookback = run.model_config.lookback
    series = run.record.series[0]
    origins = np.arange(TRAIN + VAL, TRAIN + VAL + TEST - horizon + 1)
    histories = [values[t - lookback:t] for t in origins]
    center = np.full(len(origins), series.center)
    scale = np.full(len(origins), series.scale)
    cov = None if channels is None else np.stack([channels[t - lookback:t + horizon] for t in origins])
    forecast = forecast_series(run.model, histories, center, scale, horizon, cov)
    actual = np.stack([values[t:t + horizon] for t in origins])
    mean, std = values[:TRAIN].mean(), values[:TRAIN].std()
    err = (forecast - actual) / std
    return {"mse": float(np.mean(err ** 2)), "mae": float(np.mean(np.abs(err))), "windows": len(origins),
            "lookback": lookback, "train_mean": float(mean), "train_std": float(std)}


def run_horizon(dates: list[str], values: np.ndarray, horizon: int, extra: list[str], work: Path) -> dict[str, Any]:
    import pandas as pd

    csv, full = work / "etth1_ot_train_val.csv", work / "etth1_all.csv"
    if not csv.exists():  # every column (the load columns serve as covariates); --target OT picks the series
        frame = pd.read_csv(DATA_FILE[0]).iloc[: TRAIN + VAL + TEST]
        frame.iloc[: TRAIN + VAL].to_csv(csv, index=False)
        frame.to_csv(full, index=False)
    run_dir = work / f"run-{horizon}"
    cmd = train_command(csv, run_dir, horizon, extra)
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"training failed (exit {proc.returncode}): {proc.stderr.strip()}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    result = score(run_dir, values, horizon, full)
    result.update(horizon=horizon, wall_seconds=round(wall, 1), train_seconds=metrics["train_seconds"],
                  steps=metrics["steps"], best_epoch=metrics["best_epoch"], stopped=metrics["stopped"],
                  command="lstmcast train ETTh1_OT_train_val.csv --time-col date --target OT "
                          f"--horizon {horizon} --val-size {VAL}" + (" " + shlex.join(extra) if extra else ""))
    return result


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| horizon | lookback | lstmcast MSE | lstmcast MAE | DLinear MSE | PatchTST/42 MSE | below DLinear "
             "| train s | steps |", "|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        h = r["horizon"]
        dl, pt = PUBLISHED["DLinear"].get(h), PUBLISHED["PatchTST/42"].get(h)
        below = "" if dl is None else ("yes" if r["mse"] < dl else "NO")
        lines.append(f"| {h} | {r['lookback']} | {r['mse']:.4f} | {r['mae']:.4f} | {dl or ''} | {pt or ''} | {below} | {r['train_seconds']:.0f} | {r['steps']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--horizons", default="96,192,336,720")
    parser.add_argument("--extra", default="", help='extra "lstmcast train" flags, one shell-quoted string')
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    dates, values = load_ot(args.data_dir / "ETTh1.csv")
    DATA_FILE[0] = args.data_dir / "ETTh1.csv"
    rows = []
    with tempfile.TemporaryDirectory(prefix="lstmcast-etth1-") as tmp:
        for h in (int(x) for x in args.horizons.split(",")):
            rows.append(run_horizon(dates, values, h, shlex.split(args.extra), Path(tmp)))
            print(f"horizon {h}: MSE {rows[-1]['mse']:.4f} MAE {rows[-1]['mae']:.4f} "
                  f"({rows[-1]['train_seconds']:.0f} s)", file=sys.stderr, flush=True)
    print(table(rows))
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
