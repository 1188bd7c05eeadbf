"""Precision and recall of `lstmcast detect` on real series with planted anomalies of known kinds.

    python benchmarks/detect_planted.py                       # mae (the default loss), huber, mse
    python benchmarks/detect_planted.py --datasets airline --losses mae --trials 10

For each series (../shared/data: daily minimum temperatures, monthly sunspots, airline
passengers, daily female births) the first 60% is the training part and the rest the
test part. Three spikes of 6 sigma are planted in the training part (sigma: the standard
deviation of the seasonal difference of the training part, a robust noise scale), so a
loss that fits outliers learns them; one run is trained per loss with `api.train` on
that part. Then, per trial, one anomaly is planted at a random place of the test part
and `api.detect` scores the whole series:

    spike       one point moved by +-K sigma (K = --size, default 5)
    level       every point from t0 on moved by +K sigma
    flatline    the sensor sticks: `span` points from t0 repeat the value before t0

An event counts as detected when a point in its span is flagged (spike: t0; level shift:
t0 .. t0 + span - 1; flatline: the stuck points); a flagged point of the test part
outside the span is a false alarm. Precision = flagged points inside spans / all flagged
points; recall = detected events / events. Also reported: the share of points flagged
with nothing planted (clean), against 1 - level.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from common import data_file, markdown_table

DATASETS = {
    "daily-min-temperatures": ("daily-min-temperatures.csv", 365),
    "monthly-sunspots": ("monthly-sunspots.csv", 12),
    "airline": ("airline-passengers.csv", 12),
    "female-births": ("daily-total-female-births.csv", 7),
}
KINDS = ("spike", "level", "flatline")
SPAN = {"spike": 1, "level": 10, "flatline": 10}


def noise_scale(values: np.ndarray, season: int) -> float:
    diff = values[season:] - values[:-season] if len(values) > 2 * season else np.diff(values)
    return float(np.std(diff))


def plant(values: np.ndarray, kind: str, t0: int, size: float, sigma: float, rng: np.random.Generator) -> np.ndarray:
    out = values.copy()
    if kind == "spike":
        out[t0] += rng.choice([-1.0, 1.0]) * size * sigma
    elif kind == "level":
        out[t0:] += size * sigma
    else:
        out[t0:t0 + SPAN["flatline"]] = out[t0 - 1]
    return out


def trial_counts(found: pd.DataFrame, cut: int, t0: int | None, span: int) -> tuple[int, int, bool]:
    """(flags in the span, flags in the test part outside it, detected) of one trial."""
    pos = found.attrs["rows"]
    flags = found["anomaly"].to_numpy(bool) & (pos >= cut)
    if t0 is None:
        return 0, int(flags.sum()), False
    inside = (pos >= t0) & (pos < t0 + span)
    return int((flags & inside).sum()), int((flags & ~inside).sum()), bool((flags & inside).any())


def run(args: argparse.Namespace) -> None:
    import torch

    from lstmcast import api
    from lstmcast.config import Device, Loss, Precision, TrainConfig

    torch.set_num_threads(1)
    rows, started = [], time.perf_counter()
    for name in args.datasets:
        file, season = DATASETS[name]
        frame = pd.read_csv(data_file(file, args.data_dir))
        time_col, value_col = frame.columns[:2]
        values = frame[value_col].to_numpy(float)
        cut = int(0.6 * len(values))
        sigma = noise_scale(values[:cut], season)
        rng = np.random.default_rng(args.seed)
        train_values = values[:cut].copy()
        for t in rng.choice(np.arange(season + 1, cut - 1), 3, replace=False):
            train_values[t] += rng.choice([-1.0, 1.0]) * 6.0 * sigma
        for loss in args.losses:
            with tempfile.TemporaryDirectory(prefix="lstmcast-planted-") as tmp:
                tmp = Path(tmp)
                train_csv = tmp / "train.csv"
                pd.DataFrame({time_col: frame[time_col][:cut], value_col: train_values}).to_csv(train_csv, index=False)
                config = TrainConfig(max_steps=args.max_steps, loss=Loss(loss), device=Device.cpu,
                                     precision=Precision.fp32, seed=args.seed)
                report = api.train(train_csv, train_config=config, run_dir=tmp / "run")
                lookback = report.model["lookback"]
                rows_of = pd.Series(np.arange(len(frame)), index=pd.to_datetime(frame[time_col]))

                def detect(series: np.ndarray, level: float, flatline: bool) -> pd.DataFrame:
                    path = tmp / "d.csv"
                    pd.DataFrame({time_col: frame[time_col], value_col: series}).to_csv(path, index=False)
                    found = api.detect(report.run_dir, path, level=level, window=args.window,
                                       flatline=flatline).frame
                    found.attrs["rows"] = rows_of.reindex(found[found.columns[1]]).to_numpy()  # file rows
                    return found

                trial_rng = np.random.default_rng(args.seed + 1)
                plan = [(kind, int(trial_rng.integers(max(cut, lookback + 64), len(values) - SPAN[kind])))
                        for kind in KINDS for _ in range(args.trials)]
                for level, flatline in [(lv, fl) for fl in args.flatline for lv in args.levels]:
                    clean = detect(values, level, flatline)
                    scored = clean["score"].notna().to_numpy() & (clean.attrs["rows"] >= cut)
                    clean_rate = float(clean["anomaly"].to_numpy(bool)[scored].mean())
                    for kind in KINDS:
                        inside = outside = hits = 0
                        for k, t0 in [p for p in plan if p[0] == kind]:
                            got = detect(plant(values, k, t0, args.size, sigma, np.random.default_rng(t0)), level, flatline)
                            a, b, hit = trial_counts(got, cut, t0, SPAN[k])
                            inside, outside, hits = inside + a, outside + b, hits + hit
                        flagged = inside + outside
                        rows.append([name, loss, "on" if flatline else "off", level, kind, args.trials, f"{hits / args.trials:.2f}",
                                     f"{inside / flagged:.2f}" if flagged else "—",
                                     f"{outside / args.trials:.2f}", f"{clean_rate:.4f}"])
                print(f"{name} {loss}: trained and scored in {time.perf_counter() - started:.0f} s so far", flush=True)
    print()
    print(markdown_table(["series", "loss", "--flatline", "level", "kind", "trials", "recall", "precision",
                          "false alarms / trial", "clean flag rate"], rows))
    print(f"\nsize {args.size} sigma, window {args.window}, {args.max_steps} training steps, seed {args.seed}; "
          f"total {time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--losses", nargs="+", default=["mae", "huber", "mse"], choices=["mae", "huber", "mse"])
    parser.add_argument("--levels", nargs="+", type=float, default=[0.99, 0.999])
    parser.add_argument("--flatline", nargs="+", type=lambda v: v == "on", default=[False],
                        help="detect --flatline: off, on, or both (default off)")
    parser.add_argument("--trials", type=int, default=20, help="anomalies planted per kind (one per trial)")
    parser.add_argument("--size", type=float, default=5.0, help="spike and level-shift size in sigmas")
    parser.add_argument("--window", type=int, default=5000)
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, default=None)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
