"""NAB (Numenta Anomaly Benchmark) harness: score a detector's per-row anomaly scores.

Scores with the NAB definition in ``nab_scoring.py`` and prints a markdown table
of the three cost profiles beside NAB's published scoreboard::

    python benchmarks/nab.py score --detector numenta
    python benchmarks/nab.py score --detector numenta windowedGaussian random null
    python benchmarks/nab.py score --scores my_scores.csv.gz --name mine
    python benchmarks/nab.py score --detector numenta --optimiser twiddle

``run`` runs lstmcast itself under NAB's rules and scores it beside them::

    python benchmarks/nab.py run                      # the recommended settings (RESULTS.md)
    python benchmarks/nab.py run --stride 24 --save-scores lstmcast_scores.csv.gz

Each file is a stream: ``lstmcast train`` (through ``lstmcast.api``) on its
probationary rows only, then ``lstmcast detect`` on every row; detect's ``score``
column is the anomaly score (NaN, before the first scored row, lies in the
probationary period). See :func:`lstmcast_scores`.

``--detector`` reads NAB's published per-row scores
(``results/DETECTOR_scores.csv.gz``); ``--scores`` reads any CSV (optionally
gzipped) with columns ``file,timestamp,anomaly_score``, ``file`` being
``CATEGORY/NAME.csv`` and the rows of each file in the data file's order.

Columns: ``published`` (``final_results.json``), ``this scorer`` (threshold
optimised here, ``--optimiser sweep`` by default, or NAB's older ``twiddle``),
and ``at NAB threshold``: the same scorer at the threshold NAB's
``config/thresholds.json`` records for that detector, which is how NAB's
scoring step produced the board.

The NAB folder is ``--nab-dir``, else ``$NAB_DATA_DIR``, else
``../shared/data/nab`` next to the repository.

Detectors come from :func:`run_detector`; a detector that computes its scores
(lstmcast's ``detect``) is added there and given a subcommand beside ``score``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
from nab_scoring import (
    Corpus,
    load_corpus,
    load_scores_csv,
    normalised_scores,
    published_board,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_NAB_DIR = REPO_ROOT.parent / "shared" / "data" / "nab"
#: Detectors whose published per-row scores are in ``results/``.
PUBLISHED_DETECTORS = ("numenta", "windowedGaussian", "random", "null")
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def run_detector(name: str, corpus: Corpus, nab_dir: Path) -> dict[str, np.ndarray]:
    """Anomaly scores ``{file: scores per row}`` of detector ``name`` on the whole corpus.

    The published detectors are read from ``results/NAME_scores.csv.gz``. This
    is the hook for a detector that runs here: it must return one score in
    ``[0, 1]`` per row of every file of ``corpus`` (NaN allowed in the
    probationary period), each row's score using only that row and the ones
    before it.
    """
    if name in PUBLISHED_DETECTORS:
        return load_scores_csv(nab_dir / "results" / f"{name}_scores.csv.gz", corpus)
    if name == "lstmcast":
        return lstmcast_scores(corpus, nab_dir, LstmcastOptions())
    raise ValueError(f"unknown detector {name!r} (known: {', '.join(PUBLISHED_DETECTORS)}, lstmcast)")


@dataclass(frozen=True)
class LstmcastOptions:
    """How lstmcast trains and detects on each NAB file (the defaults: the recommended settings)."""

    lookback: str = "day"  # "day": one day of rows (median timestamp step), at most (probation - 2 H) / 2
    horizon: int = 24
    hidden: int = 16
    layers: int = 1
    max_steps: int = 300
    batch_size: int = 64
    loss: str = "mae"
    transform: str = "none"  # train --transform: logs (the forecasting default) scored 53.6 against 57.4 here
    seed: int = 0
    stride: int | None = None  # None: detect's default, a third of the horizon
    window: int = 5000
    refit_every: int | None = None
    flatline: bool | None = None  # detect --flatline / --no-flatline (None: detect's default, off for one series)
    score: str | None = None  # detect --score: rank, likelihood (of the residuals) or multiscale (None: detect's default)
    level: float | None = None  # detect --level (None: detect's default); multiscale's hold-off and range check read it


def lookback_for(timestamps: pd.Series, probation: int, opts: LstmcastOptions) -> int:
    """The lookback of one file: a number, or one day of rows capped so that training has windows."""
    if opts.lookback != "day":
        return int(opts.lookback)
    step = pd.to_datetime(timestamps).diff().median()
    day = int(pd.Timedelta("1D") / step) if step > pd.Timedelta(0) else 48
    return max(24, min(day, (probation - 2 * opts.horizon) // 2))


def lstmcast_scores(corpus: Corpus, nab_dir: Path, opts: LstmcastOptions, work: Path | None = None,
                    on_file=None, frames: Path | None = None) -> dict[str, np.ndarray]:
    """lstmcast's score of every row of every file, under NAB's rules.

    Per file: the value column alone, in row order (NAB's timestamps have irregular gaps
    in some files; a row is a step), ``api.train`` on the probationary rows only (the
    first min(floor(0.15 n), 750)), then ``api.detect`` on all rows: the score of a row
    reads that row and the ones before it (refits, with ``refit_every``, only rows
    before their origins). Runs are written under ``work`` (default: a temporary
    directory, removed after). ``frames``: each detection's rows (row, value, expected,
    lower, upper, score, anomaly) are kept there, one CSV per file (``a__b.csv`` for ``a/b.csv``).
    """
    import tempfile

    from lstmcast import api
    from lstmcast.config import DetectScore, Device, Loss, Precision, TrainConfig, Transform

    out: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix="lstmcast-nab-") as tmp:
        root = Path(work) if work is not None else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        for name, f in corpus.files.items():
            t0 = time.perf_counter()
            frame = pd.read_csv(nab_dir / "data" / name)
            stem = name.replace("/", "__").removesuffix(".csv")
            train_csv, all_csv = root / f"{stem}.train.csv", root / f"{stem}.csv"
            frame[["value"]].iloc[:f.probation].to_csv(train_csv, index=False)
            frame[["value"]].to_csv(all_csv, index=False)
            train_config = TrainConfig(epochs=50, max_steps=opts.max_steps, batch_size=opts.batch_size,
                                       loss=Loss(opts.loss), transform=Transform(opts.transform), seed=opts.seed,
                                       device=Device.cpu,
                                       precision=Precision.fp32)
            lookback = lookback_for(frame["timestamp"], f.probation, opts)
            report = api.train(train_csv, horizon=opts.horizon, lookback=lookback, hidden=opts.hidden,
                               layers=opts.layers, train_config=train_config, run_dir=root / stem, overwrite=True)
            found = api.detect(report.run_dir, all_csv, stride=opts.stride, window=opts.window,
                               refit_every=opts.refit_every, flatline=opts.flatline, level=opts.level,
                               score=None if opts.score is None else DetectScore(opts.score))
            if frames is not None:
                frames.mkdir(parents=True, exist_ok=True)
                kept = found.frame.iloc[:, 1:].rename(columns={found.frame.columns[1]: "row"})
                kept.to_csv(frames / f"{stem}.csv", index=False)
            scores = np.full(f.n_rows, np.nan)
            scores[found.frame.iloc[:, 1].to_numpy()] = found.frame["score"].to_numpy()  # row-order steps
            # Rows after probation without a score (none with these settings) count as 0.
            scores[f.probation:] = np.nan_to_num(scores[f.probation:], nan=0.0)
            out[name] = scores
            if on_file is not None:
                on_file(name, f.n_rows, lookback, time.perf_counter() - t0)
    return out


def score_detector(name: str, scores_by_file: Mapping[str, np.ndarray], corpus: Corpus,
                   board: Mapping[str, Mapping[str, Mapping[str, float]]], optimiser: str) -> list[dict]:
    """One row per profile: published, optimised here, and at NAB's threshold."""
    ours = normalised_scores(scores_by_file, corpus, method=optimiser)
    published = board.get(name, {})
    nab_thresholds = {p: v["threshold"] for p, v in published.items() if not math.isnan(v["threshold"])}
    at_nab = (normalised_scores(scores_by_file, corpus, method=optimiser, thresholds=nab_thresholds)
              if set(PROFILES) <= set(nab_thresholds) else {})
    rows = []
    for profile in PROFILES:
        pub = published.get(profile, {})
        rows.append({
            "detector": name, "profile": profile,
            "published": pub.get("score", math.nan),
            "score": ours[profile]["score"], "threshold": ours[profile]["threshold"], "raw": ours[profile]["raw"],
            "at_nab_threshold": at_nab[profile]["score"] if at_nab else math.nan,
            "nab_threshold": pub.get("threshold", math.nan),
        })
    return rows


def markdown_table(rows: Sequence[dict]) -> str:
    """The rows of :func:`score_detector` as a markdown table."""
    def num(x: float, fmt: str) -> str:
        return "—" if math.isnan(x) else format(round(x, 9) + 0.0, fmt)  # no "-0.000"

    lines = ["| detector | profile | published | this scorer | Δ | threshold | at NAB threshold | NAB threshold |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['detector']} | {r['profile']} | {num(r['published'], '.3f')} | {r['score']:.3f} "
            f"| {num(r['score'] - r['published'], '+.3f')} | {r['threshold']:.8g} "
            f"| {num(r['at_nab_threshold'], '.3f')} | {num(r['nab_threshold'], '.8g')} |")
    return "\n".join(lines)


def cmd_score(args: argparse.Namespace) -> int:
    nab_dir = Path(args.nab_dir)
    if not (nab_dir / "labels" / "combined_windows.json").is_file():
        print(f"error: no NAB corpus at {nab_dir} (use --nab-dir or $NAB_DATA_DIR)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    corpus = load_corpus(nab_dir)
    board = published_board(nab_dir)
    t_corpus = time.perf_counter() - t0

    if args.scores is not None:
        name = args.name or Path(args.scores).name.split(".")[0].removesuffix("_scores")
        sources = [(name, lambda: load_scores_csv(args.scores, corpus))]
    else:
        sources = [(d, lambda d=d: run_detector(d, corpus, nab_dir)) for d in args.detector]

    rows, t_load, t_score = [], 0.0, 0.0
    for name, get in sources:
        t1 = time.perf_counter()
        scores_by_file = get()
        t2 = time.perf_counter()
        rows += score_detector(name, scores_by_file, corpus, board, args.optimiser)
        t_load += t2 - t1
        t_score += time.perf_counter() - t2

    print(markdown_table(rows))
    print()
    print(f"optimiser: {args.optimiser}; {len(corpus.files)} files, {corpus.n_windows} windows; "
          f"time: corpus {t_corpus:.1f} s, scores read {t_load:.1f} s, scoring {t_score:.1f} s, "
          f"total {time.perf_counter() - t0:.1f} s")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    nab_dir = Path(args.nab_dir)
    if not (nab_dir / "labels" / "combined_windows.json").is_file():
        print(f"error: no NAB corpus at {nab_dir} (use --nab-dir or $NAB_DATA_DIR)", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(1)
    opts = LstmcastOptions(**{f.name: getattr(args, f.name) for f in fields(LstmcastOptions)})
    corpus = load_corpus(nab_dir)
    board = published_board(nab_dir)
    t0 = time.perf_counter()

    def progress(name: str, rows: int, lookback: int, seconds: float) -> None:
        print(f"{name}: {rows} rows, lookback {lookback}, {seconds:.1f} s", file=sys.stderr, flush=True)

    scores = lstmcast_scores(corpus, nab_dir, opts, args.work_dir, progress)
    t_run = time.perf_counter() - t0
    if args.save_scores:
        rows = [pd.DataFrame({"file": name, "timestamp": corpus.files[name].timestamps.strftime("%Y-%m-%d %H:%M:%S"),
                              "anomaly_score": s}) for name, s in scores.items()]
        pd.concat(rows).to_csv(args.save_scores, index=False)
    rows = score_detector("lstmcast", scores, corpus, board, args.optimiser)
    for name in args.beside:
        rows += score_detector(name, run_detector(name, corpus, nab_dir), corpus, board, args.optimiser)
    print(markdown_table(rows))
    print()
    print(f"options: {opts}")
    print(f"{len(corpus.files)} files; lstmcast train + detect {t_run:.1f} s, total {time.perf_counter() - t0:.1f} s")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"options": opts.__dict__, "seconds": t_run, "rows": rows},
                                                  indent=2) + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    score = sub.add_parser("score", help="score published or given per-row anomaly scores")
    src = score.add_mutually_exclusive_group(required=True)
    src.add_argument("--detector", nargs="+", choices=PUBLISHED_DETECTORS, metavar="NAME",
                     help=f"NAB's published scores of these detectors ({', '.join(PUBLISHED_DETECTORS)})")
    src.add_argument("--scores", type=Path, metavar="FILE.csv[.gz]",
                     help="CSV with columns file,timestamp,anomaly_score")
    score.add_argument("--name", help="name of the --scores detector (compared with the board if it is there)")
    score.add_argument("--optimiser", choices=("sweep", "twiddle"), default="sweep",
                       help="threshold search: every distinct score (NAB since 2019, default) or "
                            "NAB's older hill climb from 0.5")
    score.add_argument("--nab-dir", default=os.environ.get("NAB_DATA_DIR", str(DEFAULT_NAB_DIR)),
                       help="NAB folder (default: $NAB_DATA_DIR or %(default)s)")
    score.add_argument("--json-out", metavar="FILE", help="also write the rows as JSON")
    score.set_defaults(func=cmd_score)

    run = sub.add_parser("run", help="train and detect with lstmcast on every file, then score")
    defaults = LstmcastOptions()
    run.add_argument("--lookback", default=defaults.lookback, help="steps, or 'day' (default %(default)s)")
    for name in ("horizon", "hidden", "layers", "max_steps", "batch_size", "seed", "window"):
        run.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name),
                         help="default %(default)s")
    run.add_argument("--loss", choices=("mae", "mse", "huber"), default=defaults.loss)
    run.add_argument("--transform", choices=("auto", "log", "none"), default=defaults.transform,
                     help="train --transform (default %(default)s)")
    run.add_argument("--stride", type=int, default=None, help="detect --stride (default: a third of the horizon)")
    run.add_argument("--refit-every", type=int, default=None, help="detect --refit-every (default: no refits)")
    run.add_argument("--flatline", dest="flatline", action="store_const", const=True, default=None,
                     help="detect --flatline (default: detect's, off for a file of one series)")
    run.add_argument("--no-flatline", dest="flatline", action="store_const", const=False)
    run.add_argument("--score", choices=("rank", "likelihood", "multiscale"), default=defaults.score,
                     help="detect --score (default %(default)s)")
    run.add_argument("--level", type=float, default=None,
                     help="detect --level (default: detect's; multiscale's hold-off and range check depend on it)")
    run.add_argument("--beside", nargs="*", default=["numenta", "windowedGaussian"], choices=PUBLISHED_DETECTORS,
                     help="published detectors in the same table (default: %(default)s)")
    run.add_argument("--optimiser", choices=("sweep", "twiddle"), default="sweep")
    run.add_argument("--nab-dir", default=os.environ.get("NAB_DATA_DIR", str(DEFAULT_NAB_DIR)))
    run.add_argument("--work-dir", type=Path, help="keep the runs and CSVs here (default: a temporary directory)")
    run.add_argument("--save-scores", metavar="FILE.csv[.gz]", help="write file,timestamp,anomaly_score")
    run.add_argument("--json-out", metavar="FILE", help="also write options, time and rows as JSON")
    run.set_defaults(func=cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
