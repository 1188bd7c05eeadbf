"""Score candidate interval calibrations on the dumps of `calib_dump.py`, without retraining.

    .venv/bin/python benchmarks/calib_compare.py --workdir benchmarks/work/calib [--seeds 0 1 2 3 4] [--methods ...]

Each dump holds one run's raw 80% interval (q0.1, q0.9, scaled units) on its validation
windows and on every test origin. Each candidate computes its correction from the
validation windows only and is scored on the test origins: coverage of the 80% interval,
its mean width relative to the raw interval's, and its interval (Winkler) score
width + 10 x the distance of a miss (lower is better; scaled units).

Candidates (each pooled over the horizon steps below 50 validation windows and per step
from 50, as lstmcast does):
    raw      the head's own interval
    add      CQR: one additive correction of both ends (lstmcast's "additive" form)
    width    CQR-r: scores divided by the head's own width (Kivaranovic et al. 2020)
    std      scores divided by the spread (std) of each window's inputs
    asym     CQR with each end corrected on its own at 90%
    abs      split conformal on absolute residuals around the median q0.5: constant width
    half     CQR on the band halfway between the head's interval and its middle
    blend    the mean of the add and the abs (around the middle) intervals: what `train`
             writes (computed by lstmcast.model.intervals itself)
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np


from lstmcast.model import intervals
REPO = Path(__file__).resolve().parent.parent

LEVELS = (0.1, 0.5, 0.9)
METHODS = ("raw", "add", "width", "std", "asym", "abs", "half", "blend")
DEFAULT = ("raw", "add", "width", "abs", "blend")


def cq(scores: np.ndarray, coverage: float = 0.8) -> np.ndarray:
    """The conformal quantile lstmcast uses: the ceil((n + 1) coverage)-th smallest along axis 0."""
    return intervals.conformal_quantile(scores, coverage)[0]


def interval(method: str, d) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) of the 80% interval on the test origins [N, H], scaled units."""
    vq, vy, tq = d["val_q"], d["val_y"], d["test_q"]
    lo, hi = tq[..., 0], tq[..., -1]
    if method == "raw":
        return lo, hi
    if method == "blend":  # lstmcast's own code path
        correction, _ = intervals.corrections(vq, vy, LEVELS)
        q = intervals.apply(tq, intervals.Calibration(correction, "blend", LEVELS))
        return q[..., 0], q[..., -1]
    pooled = len(vq) < intervals.MIN_PER_STEP
    shape = lambda s: s.reshape(-1) if pooled else s  # noqa: E731
    score = np.maximum(vq[..., 0] - vy, vy - vq[..., -1])  # CQR conformity score
    if method == "add":
        c = cq(shape(score))
        return lo - c, hi + c
    if method in ("width", "std"):
        if method == "width":
            vs, ts = vq[..., -1] - vq[..., 0], hi - lo
        else:
            vs, ts = d["val_x"].std(axis=1)[:, None], d["test_x"].std(axis=1)[:, None]
        vs, ts = np.maximum(vs, 1e-6), np.maximum(ts, 1e-6)
        c = cq(shape(score / vs))
        return lo - c * ts, hi + c * ts
    if method == "asym":
        return lo - cq(shape(vq[..., 0] - vy), 0.9), hi + cq(shape(vy - vq[..., -1]), 0.9)
    if method == "abs":
        c = cq(shape(np.abs(vy - vq[..., 1])))
        return tq[..., 1] - c, tq[..., 1] + c
    if method == "half":
        vm, m = (vq[..., 0] + vq[..., -1]) / 2, (lo + hi) / 2
        c = cq(shape(np.maximum((vq[..., 0] + vm) / 2 - vy, vy - (vq[..., -1] + vm) / 2)))
        return (lo + m) / 2 - c, (hi + m) / 2 + c
    raise ValueError(method)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=REPO / "benchmarks" / "work" / "calib")
    parser.add_argument("--seeds", type=int, nargs="+", help="only these seeds")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(DEFAULT))
    args = parser.parse_args(argv)
    rows = []
    for path in sorted(args.workdir.glob("*.npz")):
        m = re.match(r"([\w-]+?)-(h\d+-[vfd]\d+)-s(\d+)-m(\d+)", path.stem)
        if args.seeds is not None and int(m[3]) not in args.seeds:
            continue
        d = dict(np.load(path))
        tq, ty = d["test_q"], d["test_y"]
        raw_w = float(np.mean(tq[..., -1] - tq[..., 0]))
        row = {"series": m[1], "run": f"{m[2]}-m{m[4]}", "seed": int(m[3]), "windows": len(d["val_q"]),
               "origins": len(tq)}
        for method in args.methods:
            lo, hi = interval(method, d)
            miss = np.maximum(lo - ty, 0) + np.maximum(ty - hi, 0)
            row[method] = (float(np.mean((lo <= ty) & (ty <= hi))), float(np.mean(hi - lo)) / raw_w,
                           float(np.mean(hi - lo + 10 * miss)))
        rows.append(row)
        print(json.dumps(row))
    rows.sort(key=lambda r: (r["series"], r["run"], r["seed"]))
    print("\nCoverage of the 80% interval on the test origins, % (mean width relative to raw):\n")
    print("| series | run | seed | val windows | test origins | " + " | ".join(args.methods) + " |")
    print("|" + "---|" * (5 + len(args.methods)))
    for r in rows:
        print(f"| {r['series']} | {r['run']} | {r['seed']} | {r['windows']} | {r['origins']} | "
              + " | ".join(f"{100 * r[m][0]:.1f} ({r[m][1]:.2f})" for m in args.methods) + " |")
    print("\nBy series and run: mean |coverage - 80| in points (max), runs within 5 points, mean interval score:\n")
    print("| series | run | runs | " + " | ".join(args.methods) + " |")
    print("|" + "---|" * (3 + len(args.methods)))
    for key in sorted({(r["series"], r["run"]) for r in rows}):
        sel = [r for r in rows if (r["series"], r["run"]) == key]
        cells = []
        for m in args.methods:
            dev = np.array([abs(100 * r[m][0] - 80) for r in sel])
            cells.append(f"{dev.mean():.1f} ({dev.max():.1f}), {int((dev <= 5).sum())}/{len(sel)}, "
                         f"{np.mean([r[m][2] for r in sel]):.3f}")
        print(f"| {key[0]} | {key[1]} | {len(sel)} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
