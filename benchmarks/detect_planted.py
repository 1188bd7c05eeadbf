"""Event recall and point precision of `lstmcast detect` on many real series with planted anomalies of five kinds.

    python benchmarks/detect_planted.py                                  # M3 monthly, M4 Hourly/Weekly, classic
    python benchmarks/detect_planted.py --datasets m3-monthly --rounds 3 --level 0.999
    python benchmarks/detect_planted.py --workdir /tmp/cal --reuse-runs  # the runs of detect_calibration.py

The series, the runs and their training are those of `detect_calibration.py` (a seeded
sample per data set, one run trained with train's defaults on the first 70% of every
series, nothing planted there). Per round, the last 30% of every series is cut into
slots of at least 100 points and 8 seasons (one slot where it is shorter), each slot gets
one anomaly at a random place (kinds taken in turn), and `api.detect` with its defaults
scores all series of the data set at once. With sigma the local standard deviation before
t0 (`--sigma values`: of the values over two seasons, at least 12 points; `noise`: of the
season-on-season differences over 4 seasons, / sqrt 2), K uniform in 3..6:

    spike      one point + K sigma
    dip        one point - K sigma
    level      every point from t0 to the end of its slot + or - K sigma
    flat       one season of points (at least 6) repeat the value before t0: a stuck sensor
    burst      one season of points (at least 6) get Gaussian noise of 3 sigma added

An event is found when a point of its span is flagged (spike, dip: t0; level: one season
from t0, at least 6 points; flat, burst: the changed points). Point precision = flagged
points inside spans / all flagged points of the slots with that kind.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from common import markdown_table
from detect_calibration import (GROUPS, SEASON, SOURCES, TRAIN_SHARE, add_detect_options, detect_options, load_series,
                                long_csv, stuck_span)

KINDS = ("spike", "dip", "level", "flat", "burst")
SLOT = 100  # at most one anomaly per this many points (and per 8 seasons) of a series' last 30%
DATASETS = ("m3-yearly", "m3-quarterly", "m3-monthly", "m3-other", "m4-hourly", "m4-weekly", "etth1", "airline",
            "sunspots", "temperatures", "births")  # the development data of detect_calibration.py
LEVELS = (0.99, 0.995, 0.999)


def local_sigma(values: np.ndarray, t0: int, season: int, kind: str) -> float:
    """The local standard deviation before t0: of the values over two seasons (at least 12 points), or the noise's."""
    if kind == "values":
        return float(np.std(values[max(0, t0 - max(2 * season, 12)):t0])) or 1e-9
    past = values[max(0, t0 - 5 * season):t0]
    diff = past[season:] - past[:-season] if len(past) > 2 * season else np.diff(past)
    return float(np.std(diff) / np.sqrt(2.0)) or 1e-9


def plant(values: np.ndarray, kind: str, t0: int, end: int, sigma: float, season: int,
          rng: np.random.Generator) -> int:
    """Plant one anomaly in `values` (in place) from t0 on, before `end`; returns the length of its span."""
    k = rng.uniform(3.0, 6.0)
    span = 1 if kind in ("spike", "dip") else stuck_span(season)
    if kind == "spike":
        values[t0] += k * sigma
    elif kind == "dip":
        values[t0] -= k * sigma
    elif kind == "level":
        values[t0:end] += rng.choice([-1.0, 1.0]) * k * sigma  # until the end of its slot
    elif kind == "flat":
        values[t0:t0 + span] = values[t0 - 1]
    else:
        values[t0:t0 + span] += rng.normal(0.0, 3.0 * sigma, span)
    return span


def clean_layout(name: str, series: dict[str, np.ndarray], run_dir: Path, work: Path,
                 options: dict | None = None) -> dict[str, int]:
    """Per series, the first position where an anomaly may go: after the training part, the lookback,
    the spreads and the first block of residuals (where detect scores on the clean data)."""
    from lstmcast import api

    src = SOURCES[name]
    clean = api.detect(run_dir, long_csv(work / "clean.csv", series, src.freq), **(options or {})).frame
    unscored = clean["score"].isna().groupby(clean["id"].astype(str), sort=False).sum()
    rows = clean["id"].astype(str).value_counts()
    return {sid: max(int(round(TRAIN_SHARE * len(v))), len(v) - int(rows.get(sid, 0)) + int(unscored.get(sid, 0)))
            for sid, v in series.items()}


def one_round(name: str, series: dict[str, np.ndarray], run_dir: Path, work: Path, seed: int, levels: list[float],
              sigma_kind: str, cuts: dict[str, int], options: dict | None = None
              ) -> dict[float, list[tuple[str, int, int, bool]]]:
    """Per level, per event: (kind, flags inside its span, flags of its slot outside the span, found).

    One detection gives every level: a point is flagged at a level when its score exceeds it."""
    from lstmcast import api

    src = SOURCES[name]
    season = SEASON[src.freq]
    rng = np.random.default_rng(seed)
    planted, events, turn = {}, {}, seed
    for sid, values in series.items():
        n = len(values)
        cut = cuts[sid]
        if n - cut < stuck_span(season) + 1:
            continue
        gap = max(SLOT, 8 * season)
        slots = max(1, (n - cut) // gap)
        edges = np.linspace(cut, n, slots + 1).astype(int)
        out, events[sid] = values.copy(), []
        for lo, hi in zip(edges[:-1], edges[1:]):
            kind = KINDS[turn % len(KINDS)]
            turn += 1
            longest = stuck_span(season)
            t0 = int(rng.integers(lo, max(hi - longest, lo + 1)))
            sigma = local_sigma(values, t0, season, sigma_kind)
            span = plant(out, kind, t0, hi, sigma, season, rng)
            events[sid].append((kind, lo, hi, t0, span))
        planted[sid] = out
    frame = api.detect(run_dir, long_csv(work / "planted.csv", {s: planted.get(s, v) for s, v in series.items()},
                                         src.freq), **(options or {})).frame
    got: dict[float, list[tuple[str, int, int, bool]]] = {level: [] for level in levels}
    for sid, rows in frame.groupby(frame["id"].astype(str), sort=False):
        if sid not in events:
            continue
        pos = np.arange(len(rows)) + len(series[sid]) - len(rows)
        scores = rows["score"].to_numpy(float)
        for level in levels:
            flags = np.nan_to_num(scores, nan=0.0) > level
            for kind, lo, hi, t0, span in events[sid]:
                slot = flags & (pos >= lo) & (pos < hi)
                inside = (pos >= t0) & (pos < t0 + span)
                got[level].append((kind, int((slot & inside).sum()), int((slot & ~inside).sum()),
                                   bool((slot & inside).any())))
    return got


def main() -> None:
    from detect_calibration import detect_scores

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(SOURCES))
    parser.add_argument("--series", type=int, default=None, help="series sampled from each M3/M4 file "
                        "(default 200 from M3's, 60 from M4's)")
    parser.add_argument("--rounds", type=int, default=2, help="anomalies planted per series (one per round)")
    parser.add_argument("--levels", nargs="+", type=float, default=list(LEVELS),
                        help="levels reported (one detection gives every level)")
    parser.add_argument("--sigma", choices=("values", "noise"), default="values",
                        help="the local standard deviation: of the values (default) or of the noise")
    add_detect_options(parser)
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/lstmcast-detect-calibration"))
    parser.add_argument("--reuse-runs", action="store_true", help="use the runs kept in --workdir")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    started, results = time.perf_counter(), {}
    options = detect_options(args)
    for name in args.datasets:
        series = load_series(name, args.series or SOURCES[name].sample, args.seed, args.data_dir)
        work = args.workdir / name
        if not (args.reuse_runs and (work / "run" / "run.json").is_file()):
            detect_scores(name, series, work, args.max_steps, args.seed)  # trains the run on the first 70%
        cuts = clean_layout(name, series, work / "run", work, options)
        for r in range(args.rounds):
            got = one_round(name, series, work / "run", work, args.seed + 1 + r, args.levels, args.sigma, cuts, options)
            for level, events in got.items():
                results.setdefault(GROUPS[name], {}).setdefault(level, []).extend(events)
        print(f"{name}: {len(series)} series, {time.perf_counter() - started:.0f} s so far", flush=True)
    every: dict[float, list] = {}
    for per_level in results.values():
        for level, events in per_level.items():
            every.setdefault(level, []).extend(events)
    rows = []
    for group, per_level in [*results.items(), ("all", every)]:
        for kind in KINDS:
            cells = []
            for level in args.levels:
                mine = [e for e in per_level.get(level, []) if e[0] == kind]
                inside, outside = sum(e[1] for e in mine), sum(e[2] for e in mine)
                found = sum(e[3] for e in mine)
                cells.append((f"{found / len(mine):.2f}" if mine else "—") + " / "
                             + (f"{inside / (inside + outside):.2f}" if inside + outside else "—"))
            rows.append([group, kind, len(mine), *cells])
    print()
    print(markdown_table(["data set", "kind", "events", *(f"recall / precision at {level}" for level in args.levels)],
                         rows))
    print(f"\ndetect options {options or 'default'}, sigma of the {args.sigma}, {args.rounds} rounds, "
          f"{args.series or '200 / 60'} series per M3/M4 file, seed {args.seed}; total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
