"""The whole development suite in one command: lstmcast's defaults on every data set, one overall score.

    .venv/bin/python benchmarks/suite.py                       # every data set, seeds 0 and 1
    .venv/bin/python benchmarks/suite.py --datasets m3-quarterly,m3-yearly --seeds 0 --extra "--ensemble 3"

Each data set is forecast the way a user would: `lstmcast train` with only `--horizon` given (plus
`--seed` and whatever `--extra` holds), then `predict` (collections of series) or `evaluate
--test-size` (single files), through the installed command line. Each is scored with its
competition's metric beside its baseline:

| data set | metric | baseline | anchors |
|---|---|---|---|
| M3 yearly / quarterly / monthly / other | sMAPE over every test point | Naive2 (as M3 and M4 score it) | Theta, N-BEATS |
| M4 Hourly / Weekly | OWA (sMAPE and MASE against Naive2) | Naive2 (OWA 1) | - |
| ETTh1 `OT`, h 96 | MSE on the training z-score, every test window | seasonal naive (24 h) | DLinear, PatchTST |
| airline (h 12), births (h 14), temperatures (h 14), sunspots (h 12) | MASE of the last h points | seasonal naive | - |
| the sample data (hourly load, monthly revenue, store sales) | MASE of the last horizon | seasonal naive | - |

The overall score is the geometric mean over data sets of (metric / baseline metric), the mean of
the seeds taken first: below 1 is better than the baselines. A default changes only when this
improves and no data set gets worse beyond its seed noise (benchmarks/RESULTS.md, "The suite").
M3 series get real dates from `M3-info.csv` (yearly, quarterly and monthly), so lstmcast reads
their frequency as a user's file would show it (the few without a start year start in 1990); "other"
has none and is a plain step index.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import m4_scoring as scoring
import m4
from common import DATA_DIR, markdown_table

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Panel:
    """A collection of series with a fixed test horizon (M3, M4)."""

    ids: list[str]
    train: list[np.ndarray]
    test: np.ndarray  # [series, horizon]
    horizon: int
    season: int
    times: list[pd.DatetimeIndex] | None = None  # per series; None: integer steps
    freq: str | None = None


@dataclass
class Case:
    name: str
    metric: str
    run: Callable[[Path, int, list[str]], dict[str, Any]]
    anchors: dict[str, float] = field(default_factory=dict)


def cli(*args: str) -> float:
    """Run lstmcast; its wall time. RuntimeError with its message when it fails (the suite records it)."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "lstmcast", *args], cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"lstmcast {args[0]} failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}")
    return time.perf_counter() - started


# --- collections of series: M3 and M4 ----------------------------------------------------------------

M3_SETS = {"yearly": ("Yearly", 6, 1, "YS"), "quarterly": ("Quarterly", 8, 4, "QS"),
           "monthly": ("Monthly", 18, 12, "MS"), "other": ("Other", 8, 1, None)}


def load_m3(which: str, data_dir: Path) -> Panel:
    name, horizon, season, freq = M3_SETS[which]
    ids, train = m4.read_wide(data_dir / "m3" / f"M3-{name}-train.csv")
    test_ids, test = m4.read_wide(data_dir / "m3" / f"M3-{name}-test.csv")
    assert ids == test_ids and all(len(t) == horizon for t in test), "M3 train and test do not match"
    times = None
    if freq is not None:
        info = pd.read_csv(data_dir / "m3" / "M3-info.csv", dtype={"series": str}).set_index("series")
        times = []
        for sid, values in zip(ids, train):
            year, period = int(info.at[sid, "start_year"]), info.at[sid, "start_period"]
            period = 1 if pd.isna(period) else int(period)
            year = year if year >= 1700 else 1990  # a few series have no start year (0): any date will do
            month = {"YS": 1, "QS": 1 + 3 * ((period - 1) % 4), "MS": 1 + (period - 1) % 12}[freq]
            times.append(pd.date_range(pd.Timestamp(year=year, month=month, day=1), periods=len(values), freq=freq))
    return Panel(ids, train, np.stack(test), horizon, season, times, freq)


def load_m4(which: str, data_dir: Path) -> Panel:
    """M4 Hourly or Weekly, read and checked by `m4.load_m4` (ids aligned, test series of one horizon)."""
    spec = m4.DATASETS[which]
    data = m4.load_m4(spec, data_dir)
    return Panel(data.ids, data.train, data.test, spec.horizon, spec.season)


def forecast_panel(panel: Panel, work: Path, seed: int, extra: list[str]) -> tuple[np.ndarray, float, dict]:
    """Train and predict through the CLI on a long CSV of the panel; forecasts [series, horizon]."""
    lengths = [len(v) for v in panel.train]
    ds = (np.concatenate([t.strftime("%Y-%m-%d") for t in panel.times]) if panel.times is not None
          else np.concatenate([np.arange(n) for n in lengths]))
    csv, run, out = work / "train.csv", work / "run", work / "forecast.csv"
    pd.DataFrame({"unique_id": np.repeat(np.array(panel.ids, dtype=object), lengths), "ds": ds,
                  "y": np.concatenate(panel.train)}).to_csv(csv, index=False)
    seconds = cli("train", str(csv), "--id-col", "unique_id", "--time-col", "ds", "--target", "y",
                  "--horizon", str(panel.horizon), "--run-dir", str(run), "--overwrite", "--quiet",
                  "--seed", str(seed), *extra)
    cli("predict", "--run", str(run), "--output", str(out), "--quiet")
    fc = pd.read_csv(out, dtype={"unique_id": str})
    index = {sid: i for i, sid in enumerate(panel.ids)}
    fc["row"] = fc["unique_id"].map(index)
    fc["step"] = fc.groupby("row").cumcount()
    forecast = np.full(panel.test.shape, np.nan)
    forecast[fc["row"].to_numpy(), fc["step"].to_numpy()] = fc["forecast"].to_numpy(np.float64)
    if not np.isfinite(forecast).all():
        sys.exit(f"{out}: {int((~np.isfinite(forecast).all(axis=1)).sum())} series lack a finite forecast")
    metrics = json.loads((run / "metrics.json").read_text())
    return forecast, seconds, metrics


def m3_case(which: str, data_dir: Path) -> Callable[[Path, int, list[str]], dict[str, Any]]:
    def run(work: Path, seed: int, extra: list[str]) -> dict[str, Any]:
        panel = load_m3(which, data_dir)
        forecast, seconds, metrics = forecast_panel(panel, work, seed, extra)
        naive2 = scoring.forecast_all(panel.train, panel.horizon, panel.season, "naive2")
        snaive = scoring.forecast_all(panel.train, panel.horizon, panel.season, "snaive")
        return {"value": float(scoring.smape(panel.test, forecast).mean()),
                "baseline": float(scoring.smape(panel.test, naive2).mean()), "baseline_name": "Naive2",
                "seasonal_naive": float(scoring.smape(panel.test, snaive).mean()),
                "train_seconds": round(seconds, 1), "steps": metrics.get("steps"), "series": len(panel.ids)}
    return run


def m4_case(which: str, data_dir: Path) -> Callable[[Path, int, list[str]], dict[str, Any]]:
    def run(work: Path, seed: int, extra: list[str]) -> dict[str, Any]:
        panel = load_m4(which, data_dir)
        forecast, seconds, metrics = forecast_panel(panel, work, seed, extra)
        naive2 = scoring.forecast_all(panel.train, panel.horizon, panel.season, "naive2")
        scores = scoring.evaluate(panel.train, panel.test, forecast, panel.season, naive2=naive2)
        return {"value": scores.owa, "baseline": 1.0, "baseline_name": "Naive2", "smape": scores.smape,
                "mase": scores.mase, "train_seconds": round(seconds, 1), "steps": metrics.get("steps"),
                "series": len(panel.ids)}
    return run


# --- single files: ETTh1, the classic series, the sample data ------------------------------------------

def etth1_case(data_dir: Path) -> Callable[[Path, int, list[str]], dict[str, Any]]:
    def run(work: Path, seed: int, extra: list[str]) -> dict[str, Any]:
        import etth1

        etth1.DATA_FILE[0] = data_dir / "ETTh1.csv"
        dates, values = etth1.load_ot(etth1.DATA_FILE[0])
        r = etth1.run_horizon(dates, values, 96, ["--seed", str(seed), *extra], work)
        start, end, std = etth1.TRAIN + etth1.VAL, etth1.TRAIN + etth1.VAL + etth1.TEST, values[:etth1.TRAIN].std()
        origins = np.arange(start, end - 96 + 1)
        snaive = np.stack([np.tile(values[t - 24:t], 4) for t in origins])
        actual = np.stack([values[t:t + 96] for t in origins])
        return {"value": r["mse"], "baseline": float(np.mean(((snaive - actual) / std) ** 2)),
                "baseline_name": "seasonal naive", "train_seconds": r["wall_seconds"], "steps": r["steps"]}
    return run


def file_case(path: Path, horizon: int | None) -> Callable[[Path, int, list[str]], dict[str, Any]]:
    """Train on all but the last `horizon` points (the run's default horizon when None), evaluate them."""
    def run(work: Path, seed: int, extra: list[str]) -> dict[str, Any]:
        test_size = horizon or _default_horizon(path)
        train = work / f"{path.stem}-train.csv"
        _drop_last(path, test_size).to_csv(train, index=False)
        run_dir, out = work / "run", work / "evaluation.json"
        seconds = cli("train", str(train), "--horizon", str(test_size), "--run-dir", str(run_dir), "--overwrite",
                      "--quiet", "--seed", str(seed), *extra)
        cli("evaluate", "--run", str(run_dir), "--data", str(path), "--test-size", str(test_size),
            "--output", str(out), "--quiet")
        result = json.loads(out.read_text())
        metrics = json.loads((run_dir / "metrics.json").read_text())
        return {"value": result["overall"]["mase"], "baseline": result["baselines"]["seasonal_naive"]["mase"],
                "baseline_name": "seasonal naive", "train_seconds": round(seconds, 1), "steps": metrics.get("steps")}
    return run


def _drop_last(path: Path, test_size: int) -> pd.DataFrame:
    """The file less the last `test_size` points of each series: rows of a wide file, or of each id of a
    long one (the first column is an id when it does not read as time)."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    first = frame.iloc[:, 0]
    if pd.to_datetime(first, errors="coerce", format="mixed").notna().all():
        return frame.iloc[: len(frame) - test_size]
    return frame[first.groupby(first, sort=False).cumcount(ascending=False).to_numpy() >= test_size]


def _default_horizon(path: Path) -> int:
    """The horizon lstmcast would pick for the file (its frequency's default)."""
    from lstmcast.config import DataConfig
    from lstmcast.data.frequency import default_horizon
    from lstmcast.data.series import load_series

    return default_horizon(load_series(path, DataConfig()).freq)


def cases(data_dir: Path) -> list[Case]:
    out = [
        Case("m3-yearly", "sMAPE", m3_case("yearly", data_dir), {"Theta": 16.90, "N-BEATS": 15.93}),
        Case("m3-quarterly", "sMAPE", m3_case("quarterly", data_dir), {"Theta": 8.96, "N-BEATS": 8.84}),
        Case("m3-monthly", "sMAPE", m3_case("monthly", data_dir),
             {"Theta": 13.85, "N-BEATS": 13.11, "AutoGluon medium": 13.47}),
        Case("m3-other", "sMAPE", m3_case("other", data_dir), {"Theta": 4.41, "N-BEATS": 4.24}),
        Case("m4-hourly", "OWA", m4_case("hourly", data_dir)),
        Case("m4-weekly", "OWA", m4_case("weekly", data_dir)),
        Case("etth1-ot-96", "MSE", etth1_case(data_dir), {"DLinear": 0.056, "PatchTST/42": 0.055}),
    ]
    for name, h in (("airline-passengers", 12), ("daily-total-female-births", 14),
                    ("daily-min-temperatures", 14), ("monthly-sunspots", 12)):
        out.append(Case(f"{name}-h{h}", "MASE", file_case(data_dir / f"{name}.csv", h)))
    for name in ("hourly_load", "monthly_revenue", "store_sales"):
        out.append(Case(f"sample-{name}", "MASE", file_case(REPO / "sample_data" / f"{name}.csv", None)))
    return out


def summarise(results: dict[str, list[dict[str, Any]]], all_cases: list[Case]) -> tuple[str, float]:
    rows, logs = [], []
    for case in all_cases:
        runs = results.get(case.name)
        if not runs:
            continue
        values = [r["value"] for r in runs]
        mean, base = float(np.mean(values)), runs[0]["baseline"]
        logs.append(math.log(mean / base))
        anchors = ", ".join(f"{k} {v:g}" for k, v in case.anchors.items())
        rows.append([case.name, case.metric, f"{mean:.4g}", " / ".join(f"{v:.4g}" for v in values),
                     f"{runs[0]['baseline_name']} {base:.4g}", f"{mean / base:.3f}", anchors,
                     " / ".join(str(r["train_seconds"]) for r in runs)])
    overall = math.exp(float(np.mean(logs))) if logs else float("nan")
    table = markdown_table(["data set", "metric", "lstmcast (mean)", "per seed", "baseline", "ratio", "anchors",
                            "train s"], rows)
    return table + f"\n\noverall (geometric mean of the ratios, {len(logs)} data sets): {overall:.4f}", overall


def main(argv: list[str] | None = None) -> int:
    all_names = [c.name for c in cases(DATA_DIR)]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="all", help=f"comma-separated, or 'all': {', '.join(all_names)}; "
                        "a prefix selects a group (m3, m4, sample)")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--extra", default="", help='extra "lstmcast train" flags, one shell-quoted string')
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--keep", type=Path, help="keep each data set's files (CSV, run, forecasts) under this folder")
    args = parser.parse_args(argv)
    chosen = [c for c in cases(args.data_dir) if args.datasets == "all" or any(
        c.name == d or c.name.startswith(d + "-") for d in args.datasets.split(","))]
    if not chosen:
        parser.error(f"--datasets {args.datasets}: none of {', '.join(all_names)}")
    seeds, extra = [int(s) for s in args.seeds.split(",")], shlex.split(args.extra)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    results: dict[str, list[dict[str, Any]]] = {}
    failed: dict[str, str] = {}
    for case in chosen:
        for seed in seeds:
            with tempfile.TemporaryDirectory(prefix=f"lstmcast-suite-{case.name}-") as tmp:
                work = Path(tmp) if args.keep is None else args.keep / f"{case.name}-seed{seed}"
                work.mkdir(parents=True, exist_ok=True)
                try:
                    r = case.run(work, seed, extra)
                except RuntimeError as exc:  # a refused file is a result too
                    print(f"{case.name} seed {seed}: {exc}", file=sys.stderr, flush=True)
                    failed.setdefault(case.name, str(exc))
                    continue
            r["seed"] = seed
            results.setdefault(case.name, []).append(r)
            print(f"{case.name} seed {seed}: {case.metric} {r['value']:.4f} ({r['baseline_name']} "
                  f"{r['baseline']:.4f}), {r['train_seconds']} s", file=sys.stderr, flush=True)
    table, overall = summarise(results, chosen)
    print(f"lstmcast train flags: {shlex.join(extra) or '(defaults)'}; seeds {args.seeds}")
    print(table)
    for name, why in failed.items():
        print(f"FAILED {name}: {why}")
    if args.json_out:
        args.json_out.write_text(json.dumps({"extra": extra, "seeds": seeds, "overall": overall,
                                             "results": results, "failed": failed}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
