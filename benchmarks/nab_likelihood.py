"""Which parts of the anomaly likelihood move lstmcast's NAB score: one run of train + detect, re-scored many ways.

    python benchmarks/nab_likelihood.py --frames /tmp/nab-frames          # train + detect (nab.py's defaults), score
    python benchmarks/nab_likelihood.py --frames /tmp/nab-frames --reuse  # score the kept detections (seconds)

Each NAB file is trained and detected as `nab.py run` does (its defaults: `detect --score rank`), and
detect's rows (value, expected, score) are kept in --frames, one CSV per file. Every variant then
turns them into one score per row with lstmcast's own functions (`detect.calibration`), causally, and
the NAB scorer optimises one threshold per profile over the corpus, as `nab.py run` does:

- rank: detect's `score` column as it is (today's default);
- likelihood of the rank scores, or of the residuals |value - expected|, unfiltered;
- + filter: HTM's filter (a likelihood at or above 0.99999 right after one becomes 0.999);
- + range: a value beyond the range of all values before it (5% of the range) scores 1;
- the filter and the range applied to the rank scores alone, to tell their share from the likelihood's.

`detect --score likelihood` is "likelihood of the residuals + filter + range" (its residuals are
divided by the run's scale, which the likelihood's z does not see).

- multiscale (`detect --score multiscale --level L`, `calibration.multiscale`): the conformal ranks of the
  means of the last 1, 10 and 100 residuals joined by Bonferroni, a hold-off of 100 points after a point
  above L, and the range check on the far side of the forecast; its parts at each of --levels.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import nab
from nab_scoring import load_corpus, normalised_scores

Variant = Callable[[dict[str, np.ndarray]], np.ndarray]


def detect_frames(corpus, nab_dir: Path, frames: Path, window: int) -> None:
    """nab.py's train + detect of every file, each detection's rows kept as FRAMES/<file>.csv."""
    import torch

    torch.set_num_threads(1)
    nab.lstmcast_scores(corpus, nab_dir, nab.LstmcastOptions(window=window, score="rank", flatline=False),
                        frames=frames)


def columns(corpus, nab_dir: Path, frames: Path) -> dict[str, dict[str, np.ndarray]]:
    """Per file: every row's value (all rows), expected and rank score (NaN before the first scored row)."""
    out = {}
    for name, f in corpus.files.items():
        kept = pd.read_csv(frames / (name.replace("/", "__")))
        rows = kept["row"].to_numpy()
        cols = {k: np.full(f.n_rows, np.nan) for k in ("expected", "score")}
        for k in cols:
            cols[k][rows] = kept[k].to_numpy()
        cols["value"] = pd.read_csv(nab_dir / "data" / name)["value"].to_numpy(np.float64)
        out[name] = cols
    return out


def variants(window: int, levels: tuple[float, ...] = ()) -> dict[str, Variant]:
    from lstmcast.detect import calibration as c
    from lstmcast.detect.workflow import REFRESH

    def lik(raw: np.ndarray) -> np.ndarray:
        return c.likelihood(raw[None, :], np.zeros(1, int), window)[0]

    def res(k: dict[str, np.ndarray]) -> np.ndarray:
        return np.abs(k["value"] - k["expected"])

    def filt(s: np.ndarray, red: float = c.RED) -> np.ndarray:
        return c.filtered(s[None, :], red=red)[0]

    def ranged(s: np.ndarray, k: dict[str, np.ndarray]) -> np.ndarray:
        out = s.copy()
        out[c.beyond_range(k["value"][None, :])[0] & np.isfinite(s)] = 1.0
        return out

    def multi(k: dict[str, np.ndarray], level: float, **options) -> np.ndarray:
        return c.multiscale(res(k)[None, :], k["value"][None, :], k["expected"][None, :], np.zeros(1, int), level,
                            window, REFRESH, **options)[0]

    no_hold = {"hold": 0}
    no_range = {"tolerance": np.inf}
    multiscale: dict[str, Variant] = {}
    for level in levels:
        multiscale |= {
            f"multiscale ranks (1, 10, 100), level {level}": lambda k, v=level: multi(k, v, **no_hold, **no_range),
            f"multiscale ranks + hold-off, level {level}": lambda k, v=level: multi(k, v, **no_range),
            f"multiscale ranks + range, level {level}": lambda k, v=level: multi(k, v, **no_hold),
            f"multiscale ranks + hold-off + range (--score multiscale), level {level}": lambda k, v=level: multi(k, v),
            f"rank + hold-off + range (scales (1,)), level {level}": lambda k, v=level: multi(k, v, scales=(1,)),
            f"ranks of the means of 10 + hold-off + range, level {level}": lambda k, v=level: multi(k, v, scales=(10,)),
        }
    return multiscale | {
        "rank (today's default)": lambda k: k["score"],
        "likelihood of rank scores": lambda k: lik(k["score"]),
        "likelihood of residuals": lambda k: lik(res(k)),
        "likelihood of rank scores + filter": lambda k: filt(lik(k["score"])),
        "likelihood of residuals + filter": lambda k: filt(lik(res(k))),
        "likelihood of residuals + range": lambda k: ranged(lik(res(k)), k),
        "likelihood of residuals + filter + range (--score likelihood)": lambda k: ranged(filt(lik(res(k))), k),
        "rank + filter (red 0.999)": lambda k: filt(k["score"], 0.999),
        "rank + range": lambda k: ranged(k["score"], k),
        "rank + filter (red 0.999) + range": lambda k: ranged(filt(k["score"], 0.999), k),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=Path, required=True, help="folder of the kept detections")
    parser.add_argument("--reuse", action="store_true", help="score the detections kept in --frames")
    parser.add_argument("--window", type=int, default=5000, help="detect --window, and the likelihood's window")
    parser.add_argument("--likelihood-windows", type=int, nargs="*", default=None,
                        help="score the variants at each of these likelihood windows (default: --window)")
    parser.add_argument("--levels", type=float, nargs="*", default=[0.999, 0.9995],
                        help="detect --level of the multiscale variants (their hold-off and range check read it)")
    parser.add_argument("--nab-dir", type=Path, default=nab.DEFAULT_NAB_DIR)
    args = parser.parse_args()
    corpus = load_corpus(args.nab_dir)
    started = time.perf_counter()
    if not args.reuse:
        detect_frames(corpus, args.nab_dir, args.frames, args.window)
        print(f"train + detect: {time.perf_counter() - started:.0f} s", flush=True)
    cols = columns(corpus, args.nab_dir, args.frames)
    print("| variant | likelihood window | standard | low FP | low FN | thresholds |")
    print("|---|---:|---:|---:|---:|---|")
    for window in args.likelihood_windows or [args.window]:
        for name, make in variants(window, tuple(args.levels)).items():
            scores = {}
            for file, f in corpus.files.items():
                s = np.asarray(make(cols[file]), dtype=np.float64).copy()
                s[f.probation:] = np.nan_to_num(s[f.probation:], nan=0.0)  # as nab.py: unscored rows count 0
                scores[file] = s
            got = normalised_scores(scores, corpus, method="sweep")
            print(f"| {name} | {window} | " + " | ".join(f"{got[p]['score']:.1f}" for p in nab.PROFILES)
                  + " | " + " / ".join(f"{got[p]['threshold']:.8g}" for p in nab.PROFILES) + " |", flush=True)


if __name__ == "__main__":
    main()
