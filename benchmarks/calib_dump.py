"""Train quantile runs on single real series and dump their raw (uncalibrated) quantiles.

    nice -n 10 .venv/bin/python benchmarks/calib_dump.py --seeds 0 1 2 --val-horizons 1 3 --max-steps 200 --batch-size 64

For every series, seed and `--val-size` (a multiple of the horizon) one run is trained on
the series minus its held-out tail, and an .npz is written beside it with, in the run's
scaled units: the head's quantiles and the actuals on the validation windows (what
calibration sees) and on every rolling test origin in the held-out tail (history up to
the origin, as `predict --data` would get it). `benchmarks/calib_compare.py` then scores
candidate calibrations on these dumps without retraining, and `coverage.py --only classic`
scores the shipped one through `predict`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lstmcast import api, checkpoint, intervals  # noqa: E402
from lstmcast.config import TrainConfig  # noqa: E402
from lstmcast.data import load_series  # noqa: E402

DATA = REPO.parent / "shared" / "data"
LEVELS = (0.1, 0.5, 0.9)
# name: (file, horizon, held-out points): hold-outs leave many rolling origins
SERIES = {
    "airline": ("airline-passengers.csv", 12, 24),
    "births": ("daily-total-female-births.csv", 14, 70),
    "sunspots": ("monthly-sunspots.csv", 12, 240),
    "temps": ("daily-min-temperatures.csv", 14, 365),
}


def test_quantiles(run: checkpoint.Run, series, first: int, calibration=None) -> tuple[np.ndarray, np.ndarray]:
    """Scaled quantiles [N, H, Q] and actuals [N, H] from every origin >= `first` of the one series,
    through predict's own path (history cut at the origin, calendar channels from its times); raw
    (the head's own) unless `calibration` is given (a run's `run.correction`)."""
    from lstmcast import covariates
    from lstmcast.forecast import forecast_series_all

    cfg = run.model_config
    s = run.meta["series"][0]
    center, scale = np.array([s["center"]]), np.array([s["scale"]])
    values = series.values[0]
    quant, actual = [], []
    for cut in range(first, len(values) - cfg.horizon + 1):
        cov = covariates.for_forecast(run, series, [cut], cfg.horizon, None)
        q = forecast_series_all(run.model, [values[:cut]], center, scale, cfg.horizon, calibration, cov)[1][0]
        quant.append((q - center[0]) / scale[0])
        actual.append((values[cut:cut + cfg.horizon] - center[0]) / scale[0])
    return np.array(quant), np.array(actual)


def dump(name: str, seed: int, k: int, max_steps: int, batch: int, work: Path) -> dict:
    """k > 0: --val-size k horizons; k < 0: --val-size -k percent of the training series."""
    file, horizon, hold = SERIES[name]
    frame = pd.read_csv(DATA / file)
    train_csv = work / f"{name}-train.csv"
    frame.iloc[:-hold].to_csv(train_csv, index=False)
    run_dir = work / (f"{name}-v{k}-s{seed}" if k > 0 else f"{name}-f{-k}-s{seed}")
    val_size = k * horizon if k > 0 else max(horizon, (len(frame) - hold) * -k // 100)
    seen = {}
    original = intervals.corrections

    def spy(quant, actual, levels):  # what calibration sees: the validation windows, scaled
        seen["val_q"], seen["val_y"] = quant, actual
        return original(quant, actual, levels)

    intervals.corrections = spy
    t0 = time.perf_counter()
    try:
        api.train(train_csv, horizon=horizon, quantiles=LEVELS, run_dir=run_dir, overwrite=True,
                  train_config=TrainConfig(seed=seed, val_size=val_size, max_steps=max_steps, batch_size=batch))
    finally:
        intervals.corrections = original
    seconds = time.perf_counter() - t0
    run = checkpoint.load_run(run_dir)
    n = len(load_series(train_csv).values[0])
    full = api._read_like_run(run, DATA / file)
    tq, ty = test_quantiles(run, full, n)
    np.savez(run_dir.with_suffix(".npz"), val_q=seen["val_q"], val_y=seen["val_y"], test_q=tq, test_y=ty,
             scale=run.meta["series"][0]["scale"])
    return {"series": name, "seed": seed, "val_size": val_size, "val_windows": len(seen["val_q"]),
            "test_origins": len(tq), "lookback": run.model_config.lookback, "train_s": round(seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", nargs="+", default=list(SERIES), choices=list(SERIES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--val-horizons", type=int, nargs="+", default=[1, 3],
                        help="--val-size in horizons; a negative number -p: p percent of the training series")
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workdir", type=Path, default=REPO / "benchmarks" / "work" / "calib")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    for k in args.val_horizons:
        for seed in args.seeds:
            for name in args.series:
                print(json.dumps(dump(name, seed, k, args.max_steps, args.batch_size, args.workdir)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
