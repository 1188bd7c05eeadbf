"""Train quantile runs on single real series and dump their raw (uncalibrated) quantiles.

    nice -n 10 .venv/bin/python benchmarks/calib_dump.py --seeds 0 1 2 --val-horizons 1 3 --max-steps 200 --batch-size 64
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/calib_dump.py --series etth1 --val-horizons 0 --workdir W
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/calib_dump.py --m4 hourly --seeds 0 --max-steps 400 --workdir W

For every series, seed and `--val-size` (a multiple of the horizon) one run is trained on
the series minus its held-out tail, and an .npz is written beside it with, in the run's
scaled units: the head's quantiles and the actuals on the validation windows (what
calibration sees) and on every rolling test origin in the held-out tail (history up to
the origin, as `predict --data` would get it), and the inputs of each. `--val-horizons 0`
leaves `--val-size` to lstmcast (what a user gets); `--m4` dumps M4 Hourly or Weekly
(validation: one window per series; test: the test file). `benchmarks/calib_compare.py` then scores
candidate calibrations on these dumps without retraining, and `coverage.py --only classic`
scores the shipped one through `predict`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd


from lstmcast import api
from lstmcast.forecast.histories import read_like_run
from lstmcast.run import rundir
from lstmcast.model import intervals
from lstmcast.config import TrainConfig
from lstmcast.data.series import load_series

from common import DATA_DIR
REPO = Path(__file__).resolve().parent.parent

DATA = DATA_DIR
LEVELS = (0.1, 0.5, 0.9)
# name: (file, horizon, held-out points, columns read or None for all): hold-outs leave many rolling origins
SERIES = {
    "airline": ("airline-passengers.csv", 12, 24, None),
    "births": ("daily-total-female-births.csv", 14, 70, None),
    "sunspots": ("monthly-sunspots.csv", 12, 240, None),
    "temps": ("daily-min-temperatures.csv", 14, 365, None),
    "etth1": ("ETTh1.csv", 48, 3484, ["date", "OT"]),  # oil temperature alone; the last 20% held out
}
CLASSIC = ("airline", "births", "sunspots", "temps")  # the default set (ETTh1 with --series etth1)


def read_series(name: str) -> pd.DataFrame:
    """The series' file as a frame (only its `columns` when given)."""
    file, _, _, columns = SERIES[name]
    frame = pd.read_csv(DATA / file)
    return frame if columns is None else frame[columns]


def test_quantiles(run: rundir.Run, series, first: int, calibration=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scaled quantiles [N, H, Q], actuals [N, H] and inputs [N, L] from every origin >= `first` of the one series,
    through predict's own path (history cut at the origin, calendar channels from its times); raw
    (the head's own) unless `calibration` is given (a run's `run.correction`)."""
    from lstmcast.data import covariates
    from lstmcast.forecast.recursive import forecast_series_all

    cfg = run.model_config
    s = run.record.series[0]
    center, scale = np.array([s.center]), np.array([s.scale])
    values = series.values[0]
    quant, actual, inputs = [], [], []
    for cut in range(first, len(values) - cfg.horizon + 1):
        cov = covariates.for_forecast(run, series, [cut], cfg.horizon, None)
        q = forecast_series_all(run.model, [values[:cut]], center, scale, cfg.horizon, calibration, cov)[1][0]
        quant.append((q - center[0]) / scale[0])
        actual.append((values[cut:cut + cfg.horizon] - center[0]) / scale[0])
        inputs.append((values[cut - cfg.lookback:cut] - center[0]) / scale[0])
    return np.array(quant), np.array(actual), np.array(inputs)


@contextlib.contextmanager
def capture():
    """What calibration sees while a run trains: the validation windows' inputs (val_x [N, L]),
    the head's quantiles (val_q [N, H, Q]) and the targets (val_y [N, H]), scaled units."""
    seen = {}
    original_cal, original_corr = intervals.calibrate, intervals.corrections

    def spy_cal(net, flat, val_origin, cov=None, **kw):
        seen["val_x"] = flat[val_origin[:, None] + np.arange(-net.config.lookback, 0)].astype(np.float64)
        return original_cal(net, flat, val_origin, cov, **kw)

    def spy_corr(quant, actual, levels, *args):
        seen["val_q"], seen["val_y"] = quant, actual
        return original_corr(quant, actual, levels, *args)

    intervals.calibrate, intervals.corrections = spy_cal, spy_corr
    try:
        yield seen
    finally:
        intervals.calibrate, intervals.corrections = original_cal, original_corr


def dump(name: str, seed: int, k: int, max_steps: int, batch: int, work: Path, horizon: int | None = None) -> dict:
    """k > 0: --val-size k horizons; k < 0: --val-size -k percent of the training series;
    k == 0: no --val-size, lstmcast's own choice (what a user gets)."""
    _, default_h, hold, _ = SERIES[name]
    horizon = horizon or default_h
    frame = read_series(name)
    train_csv = work / f"{name}-train.csv"
    frame.iloc[:-hold].to_csv(train_csv, index=False)
    tag = "d0" if k == 0 else f"v{k}" if k > 0 else f"f{-k}"
    run_dir = work / f"{name}-h{horizon}-{tag}-s{seed}-m{max_steps}"
    val_size = None if k == 0 else k * horizon if k > 0 else max(horizon, (len(frame) - hold) * -k // 100)
    t0 = time.perf_counter()
    with capture() as seen:
        api.train(train_csv, horizon=horizon, quantiles=LEVELS, run_dir=run_dir, overwrite=True,
                  train_config=TrainConfig(seed=seed, val_size=val_size, max_steps=max_steps or None,
                                           batch_size=batch))
    seconds = time.perf_counter() - t0
    run = rundir.load_run(run_dir)
    n, lookback = len(load_series(train_csv).values[0]), run.model_config.lookback
    s = run.record.series[0]
    full_csv = work / f"{name}-full.csv"
    frame.to_csv(full_csv, index=False)
    full = read_like_run(run, full_csv)
    tq, ty, tx = test_quantiles(run, full, n)
    np.savez(run_dir.with_suffix(".npz"), **seen, test_q=tq, test_y=ty, test_x=tx, scale=s.scale,
             center=s.center)
    return {"series": name, "horizon": horizon, "seed": seed, "val_size": run.record.train.val_size, "val_windows": len(seen["val_q"]),
            "test_origins": len(tq), "lookback": lookback, "train_s": round(seconds, 1)}


def dump_m4(kind: str, seed: int, max_steps: int, work: Path) -> dict:
    """M4 Hourly or Weekly: train on the train file (414 series, h 48; 359, h 13), dump the validation
    windows (one per series) and the test windows (the steps after each series, from the test file)."""
    from m4 import DATASETS, load_m4, write_long_csv

    spec = DATASETS[kind]
    data = load_m4(spec, DATA)
    train_csv = work / f"m4-{kind}-train.csv"
    write_long_csv(data, train_csv)
    run_dir = work / f"m4-{kind}-h{spec.horizon}-d0-s{seed}-m{max_steps}"
    t0 = time.perf_counter()
    with capture() as seen:
        api.train(train_csv, api.DataConfig(id_col="unique_id", time_col="ds", target=("y",)), horizon=spec.horizon,
                  quantiles=LEVELS, run_dir=run_dir, overwrite=True,
                  train_config=TrainConfig(seed=seed, max_steps=max_steps))
    seconds = time.perf_counter() - t0
    run = rundir.load_run(run_dir)
    assert run.record.ids == list(data.ids)
    center = np.array([s.center for s in run.record.series])[:, None]
    scale = np.array([s.scale for s in run.record.series])[:, None]
    from lstmcast.forecast.recursive import forecast_series_all

    lookback = run.model_config.lookback
    histories = [np.asarray(v, np.float64) for v in data.train]
    tq = forecast_series_all(run.model, histories, center[:, 0], scale[:, 0], spec.horizon, None, None)[1]
    tq = (tq - center[..., None]) / scale[..., None]
    ty = (np.asarray(data.test, np.float64) - center) / scale
    tx = (np.array([h[-lookback:] for h in histories]) - center) / scale
    np.savez(run_dir.with_suffix(".npz"), **seen, test_q=tq, test_y=ty, test_x=tx, scale=1.0, center=0.0)
    return {"series": f"m4-{kind}", "seed": seed, "val_windows": len(seen["val_q"]), "test_origins": len(tq),
            "lookback": lookback, "train_s": round(seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", nargs="+", default=list(CLASSIC), choices=list(SERIES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--val-horizons", type=int, nargs="+", default=[1, 3],
                        help="--val-size in horizons; a negative number -p: p percent of the training series; "
                             "0: lstmcast's own choice")
    parser.add_argument("--horizon", type=int, help="instead of each series' own")
    parser.add_argument("--max-steps", type=int, default=200, help="0: the default training (epochs)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workdir", type=Path, default=REPO / "benchmarks" / "work" / "calib")
    parser.add_argument("--m4", choices=("hourly", "weekly"), help="M4 Hourly or Weekly instead (--max-steps)")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.m4:
        for seed in args.seeds:
            print(json.dumps(dump_m4(args.m4, seed, args.max_steps, args.workdir)), flush=True)
        return 0
    for k in args.val_horizons:
        for seed in args.seeds:
            for name in args.series:
                print(json.dumps(dump(name, seed, k, args.max_steps, args.batch_size, args.workdir, args.horizon)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
