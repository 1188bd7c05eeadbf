"""M4 accuracy harness for lstmcast and the M4 statistical benchmarks.

Scores one method on the M4 Hourly or Weekly set with the official M4
measures (sMAPE, MASE, OWA relative to Naive2; see ``m4_scoring.py``)::

    python benchmarks/m4.py --dataset hourly --method naive2
    python benchmarks/m4.py --dataset weekly --method snaive --json-out w.json
    python benchmarks/m4.py --dataset hourly --method lstmcast \\
        --extra "--epochs 5" --workdir /tmp/m4-hourly

For ``--method lstmcast`` the training set is written as a long CSV
(``unique_id,ds,y``, with ``ds`` the integer step ``0..n-1``, since M4 gives
no timestamps) and the CLI is run in subprocesses from the repository root::

    python -m lstmcast train LONG.csv --id-col unique_id --time-col ds \\
        --target y --horizon H --run-dir RUN --quiet [EXTRA...]
    python -m lstmcast predict --run RUN --output FC.csv --quiet

``FC.csv`` must be a long CSV with columns ``unique_id, ds, forecast``, where
``ds`` continues each series' steps (``n..n+H-1``). Training time is the wall
time of the ``train`` subprocess.

The data files are the original M4 wide CSVs (``V1`` = id, ``V2..`` =
values, rows padded with empty fields), looked up in ``--data-dir`` (default:
``$M4_DATA_DIR`` or ``../shared/data`` next to the repository).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from common import DATA_DIR

try:  # imported as part of the ``benchmarks`` package
    from . import m4_scoring as scoring
except ImportError:  # run as a script: ``python benchmarks/m4.py``
    import m4_scoring as scoring  # type: ignore[no-redef]

FloatArray = NDArray[np.float64]

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = DATA_DIR

METHODS = ("naive2", "snaive", "naive", "lstmcast")


@dataclass(frozen=True)
class DatasetSpec:
    """One M4 frequency: file names, horizon, seasonal period, published Naive2."""

    name: str
    train_file: str
    test_file: str
    horizon: int
    season: int  # m of MASE and of the Naive2 seasonality test
    naive2_smape: float  # published M4 Naive2 scores, for reference
    naive2_mase: float


DATASETS: dict[str, DatasetSpec] = {
    "hourly": DatasetSpec(
        "Hourly", "M4-Hourly-train.csv", "M4-Hourly-test.csv", 48, 24, 18.383, 2.395
    ),
    "weekly": DatasetSpec(
        "Weekly", "M4-Weekly-train.csv", "M4-Weekly-test.csv", 13, 1, 9.161, 2.777
    ),
}


@dataclass
class M4Data:
    """Train and test series of one M4 frequency, aligned by id."""

    ids: list[str]
    train: list[FloatArray]
    test: FloatArray  # (n_series, horizon)


@dataclass
class MethodRun:
    """Forecasts of one method plus how long it took."""

    forecast: FloatArray
    train_seconds: float
    predict_seconds: float | None = None
    commands: list[list[str]] | None = None


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


def read_wide(path: Path) -> tuple[list[str], list[FloatArray]]:
    """Read an M4 wide CSV into ids and variable-length value arrays.

    Raises:
        ValueError: if a row has an empty field before its last value.
    """
    df = pd.read_csv(path, dtype={"V1": str})
    ids = df["V1"].tolist()
    values = df.drop(columns="V1").to_numpy(dtype=np.float64)
    series: list[FloatArray] = []
    for sid, row in zip(ids, values):
        k = int(np.count_nonzero(~np.isnan(row)))
        if k == 0 or np.isnan(row[:k]).any():
            raise ValueError(f"{path}: series {sid} is empty or has gaps")
        series.append(row[:k].copy())
    return ids, series


def load_m4(spec: DatasetSpec, data_dir: Path, max_series: int | None = None) -> M4Data:
    """Load and check train/test of one M4 frequency.

    Args:
        spec: which frequency.
        data_dir: folder holding the M4 CSVs.
        max_series: keep only the first N series (for quick runs).
    """
    train_ids, train = read_wide(data_dir / spec.train_file)
    test_ids, test = read_wide(data_dir / spec.test_file)
    if train_ids != test_ids:
        raise ValueError("train and test ids differ or are not in the same order")
    bad = [sid for sid, y in zip(test_ids, test) if y.size != spec.horizon]
    if bad:
        raise ValueError(f"test series without {spec.horizon} values: {bad[:5]}")
    if max_series is not None:
        train_ids, train, test = train_ids[:max_series], train[:max_series], test[:max_series]
    return M4Data(ids=train_ids, train=train, test=np.stack(test))


def write_long_csv(data: M4Data, path: Path) -> None:
    """Write the training series as a long CSV ``unique_id,ds,y``.

    ``ds`` is the integer step ``0..n-1`` of each series.
    """
    lengths = np.array([x.size for x in data.train])
    frame = pd.DataFrame(
        {
            "unique_id": np.repeat(np.array(data.ids, dtype=object), lengths),
            "ds": np.concatenate([np.arange(n) for n in lengths]),
            "y": np.concatenate(data.train),
        }
    )
    frame.to_csv(path, index=False)


def read_forecast_csv(path: Path, data: M4Data, horizon: int) -> FloatArray:
    """Read lstmcast's long forecast CSV into an ``(n_series, horizon)`` array.

    Rows are matched to series by ``unique_id`` and placed by ``ds``, which
    must run over ``n..n+horizon-1`` for a series of ``n`` training points.

    Raises:
        ValueError: on missing columns, unknown or missing ids, steps outside
            the horizon, duplicates, gaps or non-finite forecasts.
    """
    fc = pd.read_csv(path, dtype={"unique_id": str})
    missing_cols = {"unique_id", "ds", "forecast"} - set(fc.columns)
    if missing_cols:
        raise ValueError(f"{path}: missing columns {sorted(missing_cols)}")

    index = {sid: i for i, sid in enumerate(data.ids)}
    row = fc["unique_id"].map(index)
    unknown = fc.loc[row.isna(), "unique_id"].unique()
    if unknown.size:
        raise ValueError(f"{path}: unknown series ids, e.g. {list(unknown[:5])}")
    row_i = row.to_numpy(dtype=np.int64)

    ds = pd.to_numeric(fc["ds"], errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(ds).any() or (ds != np.round(ds)).any():
        raise ValueError(f"{path}: ds must hold integer steps")
    lengths = np.array([x.size for x in data.train])
    step = ds.astype(np.int64) - lengths[row_i]
    outside = (step < 0) | (step >= horizon)
    if outside.any():
        first = fc.loc[outside].iloc[0]
        raise ValueError(
            f"{path}: ds outside n..n+{horizon - 1}, e.g. id {first['unique_id']} "
            f"ds {first['ds']} (n = {lengths[index[first['unique_id']]]})"
        )
    if pd.Series(row_i * horizon + step).duplicated().any():
        raise ValueError(f"{path}: duplicate (unique_id, ds) rows")

    out = np.full((len(data.ids), horizon), np.nan)
    out[row_i, step] = pd.to_numeric(fc["forecast"], errors="coerce").to_numpy(np.float64)
    incomplete = ~np.isfinite(out).all(axis=1)
    if incomplete.any():
        ids = [data.ids[i] for i in np.flatnonzero(incomplete)[:5]]
        raise ValueError(
            f"{path}: {int(incomplete.sum())} series lack finite forecasts for all "
            f"{horizon} steps, e.g. {ids}"
        )
    return out


# --------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------


def run_benchmark(data: M4Data, spec: DatasetSpec, method: str) -> MethodRun:
    """Forecast with one of the statistical benchmarks (naive, snaive, naive2)."""
    t0 = time.perf_counter()
    fc = scoring.forecast_all(data.train, spec.horizon, spec.season, method)
    return MethodRun(forecast=fc, train_seconds=time.perf_counter() - t0)


def _run_checked(cmd: list[str], env: dict[str, str]) -> float:
    """Run ``cmd`` from the repository root; return its wall time in seconds."""
    print("+ " + shlex.join(cmd), file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"command failed with exit status {proc.returncode}: {shlex.join(cmd)}")
    return seconds


def run_lstmcast(
    data: M4Data,
    spec: DatasetSpec,
    workdir: Path,
    extra: Sequence[str],
    python: str,
) -> MethodRun:
    """Train and predict with the lstmcast CLI; read its forecasts back.

    Files go into a fresh ``lstmcast-<timestamp>`` folder under ``workdir``:
    ``train_long.csv``, the run directory ``run/`` and ``forecast.csv``.
    """
    out_dir = workdir / f"lstmcast-{spec.name.lower()}-{dt.datetime.now():%Y%m%d-%H%M%S-%f}"
    out_dir.mkdir(parents=True)
    long_csv = out_dir / "train_long.csv"
    run_dir = out_dir / "run"
    fc_csv = out_dir / "forecast.csv"
    write_long_csv(data, long_csv)

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
    )
    train_cmd = [
        python, "-m", "lstmcast", "train", str(long_csv),
        "--id-col", "unique_id", "--time-col", "ds", "--target", "y",
        "--horizon", str(spec.horizon), "--run-dir", str(run_dir), "--quiet",
        *extra,
    ]  # fmt: skip
    predict_cmd = [
        python, "-m", "lstmcast", "predict", "--run", str(run_dir),
        "--output", str(fc_csv), "--quiet",
    ]  # fmt: skip
    train_seconds = _run_checked(train_cmd, env)
    predict_seconds = _run_checked(predict_cmd, env)
    forecast = read_forecast_csv(fc_csv, data, spec.horizon)
    return MethodRun(forecast, train_seconds, predict_seconds, [train_cmd, predict_cmd])


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Plain-text table of method, sMAPE, MASE, OWA and train seconds."""
    header = f"{'method':<10} {'sMAPE':>8} {'MASE':>8} {'OWA':>7} {'train_s':>9}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['method']:<10} {r['smape']:>8.3f} {r['mase']:>8.3f} "
            f"{r['owa']:>7.3f} {r['train_seconds']:>9.2f}"
        )
    return "\n".join(lines)


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(
        description="Score a forecasting method on M4 Hourly/Weekly (sMAPE, MASE, OWA).",
    )
    p.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    p.add_argument("--method", required=True, choices=METHODS)
    p.add_argument(
        "--extra",
        default="",
        help='extra arguments for "lstmcast train", one shell-quoted string '
        '(write --extra="--flag" when it holds a single option)',
    )
    p.add_argument(
        "--workdir",
        type=Path,
        help="keep the long CSV, run directory and forecasts here "
        "(default: a temporary folder, removed afterwards)",
    )
    p.add_argument("--json-out", type=Path, help="write the result as JSON here")
    p.add_argument(
        "--log-values",
        action="store_true",
        help="lstmcast trains on the logs of the series (M4 values are positive) and its forecasts are "
        "exponentiated before scoring; pass --transform none in --extra so that lstmcast adds no log of its own",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("M4_DATA_DIR", DEFAULT_DATA_DIR)),
        help="folder with the M4 CSVs (default: $M4_DATA_DIR or %(default)s)",
    )
    p.add_argument(
        "--max-series",
        type=_positive_int,
        help="score only the first N series (quick checks; not comparable to M4)",
    )
    p.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter that runs lstmcast (default: this one)",
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the harness; return the process exit status (1 on a data/run error)."""
    args = parse_args(argv)
    try:
        return _run(args)
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    """Load the data, forecast with the chosen method, score and report."""
    spec = DATASETS[args.dataset]
    data = load_m4(spec, args.data_dir, args.max_series)
    extra = shlex.split(args.extra)
    if extra and args.method != "lstmcast":
        print("note: --extra is only used with --method lstmcast", file=sys.stderr)

    naive2 = run_benchmark(data, spec, "naive2")
    if args.method == "naive2":
        result = naive2
    elif args.method == "lstmcast":
        # --log-values: lstmcast sees the logs of the series and its forecasts are exponentiated here,
        # so that logs can be measured with any --scaler (the product's --transform does not scale logs).
        fed = M4Data(data.ids, [np.log(x) for x in data.train], data.test) if args.log_values else data
        if args.workdir is not None:
            result = run_lstmcast(fed, spec, args.workdir, extra, args.python)
        else:
            with tempfile.TemporaryDirectory(prefix="m4-lstmcast-") as tmp:
                result = run_lstmcast(fed, spec, Path(tmp), extra, args.python)
        if args.log_values:
            result.forecast = np.exp(result.forecast)
    else:
        result = run_benchmark(data, spec, args.method)

    scores = scoring.evaluate(
        data.train, data.test, result.forecast, spec.season, naive2=naive2.forecast
    )
    rows = [
        {"method": args.method, **scores.as_dict(), "train_seconds": result.train_seconds}
    ]
    if args.method != "naive2":
        rows.append(
            {
                "method": "naive2",
                "smape": scores.smape_naive2,
                "mase": scores.mase_naive2,
                "owa": 1.0,
                "train_seconds": naive2.train_seconds,
            }
        )

    print(
        f"M4 {spec.name}: {len(data.ids)} series, horizon {spec.horizon}, "
        f"m = {spec.season}"
    )
    print(format_table(rows))
    print(
        f"published Naive2 (all {spec.name} series): sMAPE {spec.naive2_smape:.3f}, "
        f"MASE {spec.naive2_mase:.3f}"
    )
    if result.predict_seconds is not None:
        print(f"predict seconds: {result.predict_seconds:.2f}")

    if args.json_out is not None:
        payload = {
            "dataset": args.dataset,
            "method": args.method,
            "n_series": len(data.ids),
            "horizon": spec.horizon,
            "season": spec.season,
            **scores.as_dict(),
            "train_seconds": result.train_seconds,
            "predict_seconds": result.predict_seconds,
            "extra": extra,
            "commands": result.commands,
            "max_series": args.max_series,
            "log_values": args.log_values,
            "published_naive2": {"smape": spec.naive2_smape, "mase": spec.naive2_mase},
            "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "python": platform.python_version(),
        }
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
