"""False flags of `lstmcast detect` on normal data: the share of points flagged at each level, against 1 - level.

    python benchmarks/detect_calibration.py                         # every data set, levels 0.95 0.99 0.999
    python benchmarks/detect_calibration.py --datasets m3-monthly airline --series 40
    python benchmarks/detect_calibration.py --workdir /tmp/cal --reuse-runs   # detect again with the kept runs

Nothing is planted: every flag is a false flag. Per data set (../shared/data) a sample
of series (`--series`, seeded, among those whose first 70% holds 4 horizons) is written as a long CSV with the train and test parts of
M3/M4 joined; a run is trained with train's defaults (`--max-steps` caps the steps, one
thread, CPU) on the first 70% of every series, then `api.detect` with its defaults scores
every point of every whole series. The `score` column does not depend on the level (the
level only sets the flag threshold and the band), so one detection gives every level's
flags: score > level. Reported per data set and level: the share of scored points flagged
inside the training span (the first 70%) and after it, and the target (1 - level) + 0.005.

Normal points are all scored points but the data's own stuck stretches: runs of equal values
as long as the stuck sensor `detect_planted.py` plants (a season, at least 6 points). ETTh1
holds 14-16 per column (a whole day repeated on the 31st of every 31-day month, in all seven
columns at once, and two outages); they are anomalies, not normal points, and are counted
apart (`--count-stuck`: as normal points, the table before 2026-12-07's third session).

The classic series (airline passengers, monthly sunspots, daily minimum temperatures,
daily female births) are one run each, reported together as `classic`.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from common import data_file, markdown_table

TRAIN_SHARE = 0.7
LEVELS = (0.95, 0.99, 0.999)
SLACK = 0.005  # the target: at most (1 - level) + half a percentage point
MIN_TRAIN_HORIZONS = 4  # series sampled: the first 70% holds at least this many horizons
SEASON = {"MS": 12, "QS": 4, "YS": 1, "h": 24, "W": 52, "D": 7, None: 1}
MIN_STUCK = 6  # a stuck stretch (planted, or the data's own) is a season of equal values, at least this many


@dataclass(frozen=True)
class Source:
    files: tuple[str, ...]  # wide M-competition files (train, test) or one CSV per series
    freq: str | None  # timestamps made on this grid (None: integer steps)
    horizon: int
    wide: bool = True
    sample: int = 60  # series sampled by default (wide files)


SOURCES = {
    "m3-monthly": Source(("m3/M3-Monthly-train.csv", "m3/M3-Monthly-test.csv"), "MS", 18, sample=200),
    "m3-quarterly": Source(("m3/M3-Quarterly-train.csv", "m3/M3-Quarterly-test.csv"), "QS", 8, sample=200),
    "m3-yearly": Source(("m3/M3-Yearly-train.csv", "m3/M3-Yearly-test.csv"), "YS", 6, sample=200),
    "m3-other": Source(("m3/M3-Other-train.csv", "m3/M3-Other-test.csv"), None, 8, sample=200),
    "m4-hourly": Source(("M4-Hourly-train.csv", "M4-Hourly-test.csv"), "h", 48),
    "m4-weekly": Source(("M4-Weekly-train.csv", "M4-Weekly-test.csv"), "W", 13),
    "etth1": Source(("ETTh1.csv",), "h", 24, wide=False),
    "airline": Source(("airline-passengers.csv",), "MS", 12, wide=False),
    "sunspots": Source(("monthly-sunspots.csv",), "MS", 12, wide=False),
    "temperatures": Source(("daily-min-temperatures.csv",), "D", 14, wide=False),
    "births": Source(("daily-total-female-births.csv",), "D", 14, wide=False),
}
CLASSIC = ("airline", "sunspots", "temperatures", "births")
GROUPS = {"m3-monthly": "M3 monthly", "m3-quarterly": "M3 quarterly", "m3-yearly": "M3 yearly",
          "m3-other": "M3 other", "m4-hourly": "M4 Hourly", "m4-weekly": "M4 Weekly", "etth1": "ETTh1",
          **{name: "classic" for name in CLASSIC}}


def add_detect_options(parser: argparse.ArgumentParser) -> None:
    """detect's --flatline/--no-flatline, --fallback/--no-fallback and --score; each left out: detect's default."""
    for name, default in (("flatline", "on for several series, off for one"),
                          ("fallback", "on for several series scored rank")):
        parser.add_argument(f"--{name}", dest=name, action="store_const", const=True, default=None,
                            help=f"detect --{name} (default: detect's: {default})")
        parser.add_argument(f"--no-{name}", dest=name, action="store_const", const=False)
    parser.add_argument("--score", choices=("rank", "likelihood", "multiscale"), default=None,
                        help="detect --score (default: detect's: rank for several series, multiscale for one)")


def detect_options(args: argparse.Namespace) -> dict:
    """The api.detect keywords of `add_detect_options` given on the command line."""
    return {k: getattr(args, k) for k in ("flatline", "fallback", "score") if getattr(args, k) is not None}


def load_series(name: str, n_series: int, seed: int, data_dir: Path | None) -> dict[str, np.ndarray]:
    """{id: values} of a data set: a seeded sample of `n_series` wide rows (train and test joined), or its columns."""
    src = SOURCES[name]
    if not src.wide:
        frame = pd.read_csv(data_file(src.files[0], data_dir))
        return {str(c): frame[c].to_numpy(float) for c in frame.columns[1:]}
    train, test = (pd.read_csv(data_file(f, data_dir)) for f in src.files)
    lengths = train.iloc[:, 1:].notna().sum(axis=1).to_numpy() + test.iloc[:, 1:].notna().sum(axis=1).to_numpy()
    # Long enough that the training part holds a lookback, a horizon and a validation window.
    rows = np.flatnonzero(TRAIN_SHARE * lengths >= MIN_TRAIN_HORIZONS * src.horizon)
    rows = np.random.default_rng(seed).choice(rows, min(n_series, len(rows)), replace=False)
    out = {}
    for r in sorted(rows):
        values = np.concatenate([train.iloc[r, 1:].dropna().to_numpy(float), test.iloc[r, 1:].dropna().to_numpy(float)])
        out[str(train.iloc[r, 0])] = values
    return out


def long_csv(path: Path, series: dict[str, np.ndarray], freq: str | None, share: float = 1.0) -> Path:
    parts = []
    for sid, values in series.items():
        n = int(round(share * len(values)))
        times = pd.date_range("1900-01-01", periods=n, freq=freq) if freq else np.arange(n)
        parts.append(pd.DataFrame({"id": sid, "time": times, "value": values[:n]}))
    pd.concat(parts).to_csv(path, index=False)
    return path


def detect_scores(name: str, series: dict[str, np.ndarray], work: Path, max_steps: int, seed: int,
                  reuse_run: bool = False, options: dict | None = None) -> pd.DataFrame:
    """Rows id, position, score, train (inside the first 70%) of `api.detect` on the whole series."""
    import torch

    from lstmcast import api
    from lstmcast.config import DataConfig, Device, Precision, TrainConfig

    torch.set_num_threads(1)
    src = SOURCES[name]
    work.mkdir(parents=True, exist_ok=True)
    data = DataConfig(id_col="id", time_col="time", target=("value",))
    train_csv = long_csv(work / "train.csv", series, src.freq, TRAIN_SHARE)
    full_csv = long_csv(work / "full.csv", series, src.freq)
    run_dir = work / "run"
    if not (reuse_run and (run_dir / "run.json").is_file()):
        config = TrainConfig(max_steps=max_steps or None, device=Device.cpu, precision=Precision.fp32, seed=seed)
        api.train(train_csv, data, horizon=src.horizon, train_config=config, run_dir=run_dir, overwrite=True,
                  threads=1)
    frame = api.detect(run_dir, full_csv, **(options or {})).frame
    lengths = {sid: len(v) for sid, v in series.items()}
    frame["position"] = frame.groupby("id").cumcount()
    frame["position"] += frame["id"].astype(str).map(lengths) - frame["id"].map(frame["id"].value_counts())
    cuts = {sid: int(round(TRAIN_SHARE * len(v))) for sid, v in series.items()}
    frame["train"] = frame["position"] < frame["id"].astype(str).map(cuts)
    return frame[["id", "position", "value", "expected", "score", "train"]]


def stuck_span(season: int) -> int:
    """How many equal values in a row make a stuck stretch: a season, at least MIN_STUCK."""
    return max(season, MIN_STUCK)


def own_stuck(frame: pd.DataFrame, span: int) -> pd.Series:
    """Per row of `frame` (id, position, value; each series' rows in order): inside a run of at least `span`
    equal values, the data's own stuck stretch."""
    values = frame["value"].to_numpy(float)
    ids = frame["id"].astype(str).to_numpy()
    change = np.ones(len(values), dtype=bool)
    change[1:] = (values[1:] != values[:-1]) | (ids[1:] != ids[:-1])
    run = np.cumsum(change)  # a number per run of equal values of one series
    length = np.bincount(run)[run]
    return pd.Series(length >= span, index=frame.index)


PER_YEAR = {"m3-yearly": 1, "m3-quarterly": 4, "m3-monthly": 12}  # periods a year of M3's dated files
MIN_YEAR_POINTS = 100  # --by-year: years with fewer normal points are left out


def by_year(name: str, frame: pd.DataFrame, levels: tuple[float, ...], data_dir: Path | None) -> str:
    """A table of the flag rates of `frame`'s normal points per calendar year, from M3-info.csv's start dates."""
    info = pd.read_csv(data_file("m3/M3-info.csv", data_dir), dtype={"series": str})
    start = info.set_index("series")
    ids = frame["id"].astype(str)
    first_year, first_period = ids.map(start["start_year"]), ids.map(start["start_period"]).fillna(1)
    per = PER_YEAR[name]
    year = (first_year + (first_period - 1 + frame["position"]) // per).rename("year")
    normal = frame["score"].notna() & ~frame["stuck"]
    rows = []
    for when, part in frame[normal].groupby(year[normal]):
        if len(part) >= MIN_YEAR_POINTS:
            rows.append([f"{int(when)}", f"{len(part):,}", f"{100 * part['train'].mean():.0f}%",
                         *(f"{100 * (part['score'] > level).mean():.2f}%" for level in levels)])
    return markdown_table(["year", "normal points", "in the training span", *(f"flagged at {level}" for level in levels)],
                          rows)


def rates(frame: pd.DataFrame, levels: tuple[float, ...]) -> list[list[str]]:
    """Per level: the flag rate of the normal points (scored, not `stuck`) inside the training span and after it,
    the target, and the flagged share of the data's own stuck stretches."""
    scored = frame[frame["score"].notna()]
    normal, stuck = scored[~scored["stuck"]], scored[scored["stuck"]]
    rows = []
    for level in levels:
        cells = []
        for part in (normal[normal["train"]], normal[~normal["train"]]):
            rate = float((part["score"] > level).mean()) if len(part) else float("nan")
            cells.append(f"{100 * rate:.2f}%" + ("" if rate <= 1 - level + SLACK else " ✗"))
        found = f"{int((stuck['score'] > level).sum()):,} of {len(stuck):,}" if len(stuck) else "—"
        rows.append([f"{level}", *cells, f"{100 * (1 - level + SLACK):.1f}%", found])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(SOURCES), choices=list(SOURCES))
    parser.add_argument("--series", type=int, default=None, help="series sampled from each M3/M4 file "
                        "(default 200 from M3's, 60 from M4's)")
    parser.add_argument("--levels", nargs="+", type=float, default=list(LEVELS))
    parser.add_argument("--max-steps", type=int, default=300, help="optimiser steps per run (0: train's own budget)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/lstmcast-detect-calibration"))
    parser.add_argument("--reuse", action="store_true", help="re-score the detections kept in --workdir")
    parser.add_argument("--reuse-runs", action="store_true", help="detect again with the runs kept in --workdir")
    parser.add_argument("--by-year", action="store_true", help="M3's dated files: flag rates per calendar year too")
    parser.add_argument("--count-stuck", action="store_true",
                        help="count the data's own stuck stretches as normal points (by default they are apart)")
    add_detect_options(parser)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    started, frames, years = time.perf_counter(), {}, []
    options = detect_options(args)
    for name in args.datasets:
        kept = args.workdir / name / "scores.csv"
        if args.reuse and kept.is_file():
            frame = pd.read_csv(kept)
        else:
            series = load_series(name, args.series or SOURCES[name].sample, args.seed, args.data_dir)
            frame = detect_scores(name, series, args.workdir / name, args.max_steps, args.seed, args.reuse_runs, options)
            frame.to_csv(kept, index=False)
        frame["stuck"] = False if args.count_stuck else own_stuck(frame, stuck_span(SEASON[SOURCES[name].freq]))
        frames.setdefault(GROUPS[name], []).append(frame)
        if args.by_year and name in PER_YEAR:
            years.append(f"\n{GROUPS[name]}, per calendar year:\n\n" + by_year(name, frame, tuple(args.levels), args.data_dir))
        print(f"{name}: {frame['id'].nunique()} series, {frame['score'].notna().sum()} scored points, "
              f"{time.perf_counter() - started:.0f} s so far", flush=True)
    rows = []
    for group, parts in frames.items():
        frame = pd.concat(parts)
        normal = frame["score"].notna() & ~frame["stuck"]
        n_in, n_out = int((normal & frame["train"]).sum()), int((normal & ~frame["train"]).sum())
        for k, row in enumerate(rates(frame, tuple(args.levels))):
            rows.append([group if k == 0 else "", f"{n_in:,} / {n_out:,}" if k == 0 else "", *row])
    print()
    print(markdown_table(["data set", "normal points (train / after)", "level", "flagged in training span",
                          "flagged after it", "at most", "own stuck stretches flagged"], rows))
    for table in years:
        print(table)
    stuck = "counted as normal" if args.count_stuck else "apart"
    print(f"\ndetect options {options or 'default'}, {args.series or '200 / 60'} series per M3/M4 file, "
          f"{args.max_steps} steps, seed {args.seed}, the data's own stuck stretches {stuck}; "
          f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
