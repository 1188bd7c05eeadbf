"""Score candidate interval calibrations on the dumps of `calib_dump.py`, without retraining.

    .venv/bin/python benchmarks/calib_compare.py [--workdir benchmarks/work/calib]

Each dump holds one run's raw 80% interval (q0.1, q0.9, scaled units) on its validation
windows and on every rolling test origin. Each candidate computes its correction from the
validation windows only and is scored on the test origins: coverage of the 80% interval,
and its mean width relative to the raw interval's.

Candidates:
    raw             the head's own interval
    add-pooled      additive CQR correction, one for all steps (lstmcast's few-window path before)
    add-step        additive CQR correction per horizon step
    width-pooled    CQR-r: scores divided by the head's width, one factor for all steps
    width-step      CQR-r per horizon step
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def cq(scores: np.ndarray, coverage: float = 0.8) -> np.ndarray:
    n = len(scores)
    k = math.ceil((n + 1) * coverage - 1e-9)
    return np.sort(scores, axis=0)[min(max(k, 1), n) - 1]


def interval(method: str, vq: np.ndarray, vy: np.ndarray, tq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = tq[..., 0], tq[..., -1]
    if method == "raw":
        return lo, hi
    vlo, vhi = vq[..., 0], vq[..., -1]
    pooled = method.endswith("pooled")
    shape = lambda s: s.reshape(-1) if pooled else s  # noqa: E731
    if method.startswith("add"):
        c = cq(shape(np.maximum(vlo - vy, vy - vhi)))
        return lo - c, hi + c
    w = np.maximum(vhi - vlo, 1e-9)
    c = cq(shape(np.maximum(vlo - vy, vy - vhi) / w))
    tw = hi - lo
    return lo - c * tw, hi + c * tw


METHODS = ("raw", "add-pooled", "add-step", "width-pooled", "width-step")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=REPO / "benchmarks" / "work" / "calib")
    args = parser.parse_args(argv)
    rows = []
    for path in sorted(args.workdir.glob("*.npz")):
        m = re.match(r"(\w+)-([vf]\d+)-s(\d+)", path.stem)
        d = np.load(path)
        vq, vy, tq, ty = d["val_q"], d["val_y"], d["test_q"], d["test_y"]
        raw_w = float(np.mean(tq[..., -1] - tq[..., 0]))
        row = {"series": m[1], "k": m[2], "seed": int(m[3]), "windows": len(vq), "origins": len(tq)}
        for method in METHODS:
            lo, hi = interval(method, vq, vy, tq)
            row[method] = (float(np.mean((lo <= ty) & (ty <= hi))), float(np.mean(hi - lo)) / raw_w)
        u = (ty[..., None] - tq) * float(d["scale"])  # the head's own quantiles on the test origins: what less training data costs
        row["raw_pinball"] = float(np.mean(u * (np.array([0.1, 0.5, 0.9]) - (u < 0))))
        rows.append(row)
        print(json.dumps(row))
    print("\n| series | val-size (horizons) | seed | val windows | test origins | "
          + " | ".join(f"{m} cov (width)" for m in METHODS) + " |")
    print("|" + "---|" * (5 + len(METHODS)))
    for r in sorted(rows, key=lambda r: (r["series"], r["k"], r["seed"])):
        print(f"| {r['series']} | {r['k']} | {r['seed']} | {r['windows']} | {r['origins']} | "
              + " | ".join(f"{100 * r[m][0]:.1f} ({r[m][1]:.2f})" for m in METHODS) + " |")
    print("\nMean pinball of the head's own q0.1/q0.5/q0.9 on the test origins (original units), by val-size:")
    for name in sorted({r["series"] for r in rows}):
        print(f"{name}: " + ", ".join(f"{k} {np.mean([r['raw_pinball'] for r in rows if r['series'] == name and r['k'] == k]):.4f}"
                                      for k in sorted({r["k"] for r in rows})))
    print("\nMean |coverage - 80| in points over runs, by val-size (horizons):")
    for k in sorted({r["k"] for r in rows}):
        sel = [r for r in rows if r["k"] == k]
        print(f"k={k} ({len(sel)} runs): " + ", ".join(
            f"{m} {np.mean([abs(100 * r[m][0] - 80) for r in sel]):.1f} "
            f"(max {np.max([abs(100 * r[m][0] - 80) for r in sel]):.1f})" for m in METHODS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
