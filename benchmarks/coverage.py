"""Empirical coverage of lstmcast's calibrated prediction intervals on held-out data.

    nice -n 19 .venv/bin/python benchmarks/coverage.py                  # both data sets
    nice -n 19 .venv/bin/python benchmarks/coverage.py --only airline --seeds 0 1 2 --val-size 36
    nice -n 19 .venv/bin/python benchmarks/coverage.py --only m4 --max-steps 800
    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/coverage.py --only classic --seeds 0 1 2

M4 Hourly: train on the train file (414 series) with `--quantiles 0.1,0.5,0.9
--horizon 48`, forecast the 48 steps after each series, score against the test file.
airline-passengers (144 months): the last 24 months are held out; train on the first
120 with horizon 12 and forecast from every origin in the hold-out that leaves 12
actuals (13 origins, 156 points, the history up to each origin given with `--data`),
and with horizon 24 from the one origin (24 points).

`--only classic`: four real single series (airline h 12, daily-total-female-births h 14,
monthly-sunspots h 12, daily-min-temperatures h 14; held-out tails of 24, 70, 240 and 365
points), trained with lstmcast's own choice of `--val-size` (`--max-steps 200`, batch 64)
and scored from every rolling origin in the tail through predict's path.

For each: coverage of the 80% interval (q0.1..q0.9), mean width, the mean pinball loss
over the three levels, and the same interval before calibration (the run's correction
set to zero), so the calibration's effect shows. Everything runs through the plain
API (`lstmcast.api.train` / `predict`), as `lstmcast train` / `predict` would.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd


from lstmcast import api
from lstmcast.forecast.histories import read_like_run
from lstmcast.config import TrainConfig

from common import DATA_DIR
REPO = Path(__file__).resolve().parent.parent

DATA = DATA_DIR
LEVELS = (0.1, 0.5, 0.9)


def score(actual: np.ndarray, frame: pd.DataFrame) -> dict[str, float]:
    """Coverage and mean width of q0.1..q0.9, pinball over the levels: actual and frame rows aligned."""
    q = frame[["q0.1", "q0.5", "q0.9"]].to_numpy(np.float64)
    y = actual.astype(np.float64)
    inside = (q[:, 0] <= y) & (y <= q[:, 2])
    u = y[:, None] - q
    pinball = float(np.mean(u * (np.array(LEVELS) - (u < 0))))
    return {"points": int(len(y)), "coverage": float(inside.mean()), "width": float(np.mean(q[:, 2] - q[:, 0])),
            "pinball": pinball, "below_q0.1": float(np.mean(y < q[:, 0])), "above_q0.9": float(np.mean(y > q[:, 2]))}


def uncalibrated(run_dir: Path, work: Path) -> Path:
    """A copy of the run with the interval correction set to zero: the head's own quantiles."""
    raw = work / (run_dir.name + "-raw")
    shutil.rmtree(raw, ignore_errors=True)
    shutil.copytree(run_dir, raw)
    meta = json.loads((raw / "run.json").read_text())
    meta["intervals"]["correction"] = [[0.0] * len(row) for row in meta["intervals"]["correction"]]
    meta["intervals"]["form"] = "additive"  # a zero "blend" correction would still shrink each pair
    (raw / "run.json").write_text(json.dumps(meta))
    return raw


def m4_hourly(work: Path, max_steps: int, seed: int) -> dict:
    from m4 import DATASETS, load_m4, write_long_csv

    spec = DATASETS["hourly"]
    data = load_m4(spec, DATA)
    train_csv = work / "m4-hourly-train.csv"
    write_long_csv(data, train_csv)
    cfg = TrainConfig(max_steps=max_steps, seed=seed)
    t0 = time.perf_counter()
    report = api.train(train_csv, api.DataConfig(id_col="unique_id", time_col="ds", target=("y",)),
                       horizon=spec.horizon, quantiles=LEVELS, train_config=cfg, run_dir=work / f"m4-run-{seed}",
                       overwrite=True)
    seconds = time.perf_counter() - t0
    actual = data.test.ravel()  # [414 * 48], series in file order, as predict writes them
    out = {"data": "M4 Hourly (414 series, h 48)", "seed": seed, "max_steps": max_steps,
           "train_seconds": round(seconds, 1), "calibration": report.metrics["intervals"],
           "validation_mase": report.metrics["validation"]["mase"]}
    for name, run in (("calibrated", report.run_dir), ("raw", uncalibrated(report.run_dir, work))):
        frame = api.predict(run).forecast
        assert list(frame["unique_id"].unique()) == data.ids
        out[name] = score(actual, frame)
        if name == "calibrated":  # coverage by horizon step: steps 1-12, 13-24, 25-36, 37-48
            step = np.tile(np.arange(spec.horizon), len(data.ids))
            out["by_steps"] = {f"{lo + 1}-{lo + 12}": score(actual[(step >= lo) & (step < lo + 12)],
                                                             frame[(step >= lo) & (step < lo + 12)])["coverage"]
                               for lo in range(0, spec.horizon, 12)}
    return out


def airline(work: Path, seed: int, horizon: int, val_size: int | None) -> dict:
    frame = pd.read_csv(DATA / "airline-passengers.csv")
    hold = 24
    train_csv = work / "airline-train.csv"
    frame.iloc[:-hold].to_csv(train_csv, index=False)
    cfg = TrainConfig(seed=seed, val_size=val_size)
    t0 = time.perf_counter()
    report = api.train(train_csv, horizon=horizon, quantiles=LEVELS, train_config=cfg,
                       run_dir=work / f"airline-run-h{horizon}-{seed}", overwrite=True)
    seconds = time.perf_counter() - t0
    origins = range(len(frame) - hold, len(frame) - horizon + 1)  # every origin with `horizon` actuals after it
    out = {"data": f"airline-passengers (last {hold} months held out, h {horizon})", "seed": seed,
           "val_size": json.loads((report.run_dir / "run.json").read_text())["train"]["val_size"],
           "origins": len(origins), "train_seconds": round(seconds, 1),
           "calibration": report.metrics["intervals"], "validation_mase": report.metrics["validation"]["mase"]}
    for name, run in (("calibrated", report.run_dir), ("raw", uncalibrated(report.run_dir, work))):
        actual, rows = [], []
        for origin in origins:
            history = work / "airline-history.csv"
            frame.iloc[:origin].to_csv(history, index=False)
            rows.append(api.predict(run, data=history).forecast)
            actual.append(frame["Passengers"].to_numpy()[origin:origin + horizon])
        out[name] = score(np.concatenate(actual), pd.concat(rows, ignore_index=True))
    return out


def classic(work: Path, name: str, seed: int, max_steps: int | None, val_size: int | None) -> dict:
    """One real single series (calib_dump.SERIES): train on all but its held-out tail with lstmcast's
    defaults (--val-size chosen by lstmcast unless given), score every rolling origin in the tail."""
    from calib_dump import SERIES, read_series, test_quantiles

    from lstmcast.run import rundir
    from lstmcast.data.series import load_series

    _, horizon, hold, _ = SERIES[name]
    frame = read_series(name)
    train_csv = work / f"{name}-train.csv"
    frame.iloc[:-hold].to_csv(train_csv, index=False)
    cfg = TrainConfig(seed=seed, val_size=val_size, max_steps=max_steps, batch_size=64)
    t0 = time.perf_counter()
    report = api.train(train_csv, horizon=horizon, quantiles=LEVELS, train_config=cfg,
                       run_dir=work / f"classic-{name}-{seed}", overwrite=True)
    seconds = time.perf_counter() - t0
    run = rundir.load_run(report.run_dir)
    full_csv = work / f"{name}-full.csv"
    frame.to_csv(full_csv, index=False)
    full = read_like_run(run, full_csv)
    first = len(load_series(train_csv).values[0])
    scale = run.record.series[0].scale
    out = {"data": f"{name} (last {hold} held out, h {horizon})", "seed": seed, "max_steps": max_steps,
           "val_size": run.record.train.val_size, "origins": len(full.values[0]) - horizon + 1 - first,
           "train_seconds": round(seconds, 1), "calibration": report.metrics["intervals"]}
    for kind, calibration in (("calibrated", run.correction), ("raw", None)):
        q, y, _ = test_quantiles(run, full, first, calibration)
        lo, hi = q[..., 0], q[..., 2]
        u = (y[..., None] - q) * scale
        out[kind] = {"points": int(y.size), "coverage": float(np.mean((lo <= y) & (y <= hi))),
                     "width": float(np.mean(hi - lo) * scale),
                     "pinball": float(np.mean(u * (np.array(LEVELS) - (u < 0)))),
                     "below_q0.1": float(np.mean(y < lo)), "above_q0.9": float(np.mean(y > hi))}
        if kind == "calibrated":  # the same numbers as `predict --data` (history up to the last origin)
            history = work / f"{name}-history.csv"
            frame.iloc[:len(frame) - horizon].to_csv(history, index=False)
            last = api.predict(report.run_dir, data=history).forecast[["q0.1", "q0.5", "q0.9"]].to_numpy()
            assert np.allclose(last, q[-1] * scale + run.record.series[0].center, rtol=1e-6, atol=1e-6)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("m4", "airline", "classic"), default=None,
                        help="classic: airline, births, sunspots, temps with rolling origins (calib_dump.SERIES; "
                             "--series etth1 adds ETTh1's oil temperature)")
    parser.add_argument("--series", nargs="+", default=None, help="with --only classic: a subset of the series")
    parser.add_argument("--classic-steps", type=int, default=200, help="classic: --max-steps (batch 64)")
    parser.add_argument("--max-steps", type=int, default=800, help="M4 Hourly optimiser steps")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="airline seeds")
    parser.add_argument("--val-size", type=int, default=None, help="airline/classic --val-size (default: lstmcast's)")
    parser.add_argument("--workdir", type=Path, default=REPO / "benchmarks" / "work" / "coverage")
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    results = []
    if args.only in (None, "airline"):
        for horizon in (12, 24):
            for seed in args.seeds:
                results.append(airline(args.workdir, seed, horizon, args.val_size))
                print(json.dumps(results[-1]), flush=True)
    if args.only in (None, "classic"):
        from calib_dump import CLASSIC

        for seed in args.seeds:
            for name in args.series or list(CLASSIC):
                results.append(classic(args.workdir, name, seed, args.classic_steps, args.val_size))
                print(json.dumps(results[-1]), flush=True)
    if args.only in (None, "m4"):
        results.append(m4_hourly(args.workdir, args.max_steps, 0))
        print(json.dumps(results[-1]), flush=True)
    print("\n| data | seed | val-size | points | 80% coverage (raw) | 80% coverage (calibrated) | mean width | pinball |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        c, raw = r["calibrated"], r["raw"]
        print(f"| {r['data']} | {r['seed']} | {r.get('val_size', '')} | {c['points']} | {100 * raw['coverage']:.1f}% | "
              f"{100 * c['coverage']:.1f}% | {c['width']:.1f} | {c['pinball']:.2f} |")
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
