"""Large generated inputs through `lstmcast train` and `lstmcast predict`: peak memory and time.

For each size (rows = series x points) it writes a long CSV (``id,time,value``; hourly
noisy daily + weekly sines, one level per series) and, with ``--parquet``, the same as
Parquet, then measures with the wrapper of ``speed.py`` (fork, exec, ``os.wait4``: wall
time and the command's own peak RSS):

1. ``lstmcast train DATA --max-steps N`` (default model, lookback 168, horizon 48);
2. ``lstmcast predict --run RUN --output F.csv`` from the history stored in the run;
3. ``lstmcast predict --run RUN --data DATA --output F.csv`` reading the whole file again.

Usage (from the repository root, in the venv lstmcast is installed in)::

    nice -n 19 python benchmarks/scale.py --rows 1000000,10000000 --out /tmp/scale.json

Results go to stdout as a Markdown table (and to ``--out`` as JSON).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from speed import find_lstmcast, measure

POINTS = 2000  # per series


def generate_long(path: Path, rows: int, seed: int = 0, parquet: bool = False) -> float:
    """Write rows // POINTS series of POINTS hourly values as id,time,value (pyarrow: fast)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    started = time.perf_counter()
    n_series = rows // POINTS
    rng = np.random.default_rng(seed)
    writer = None
    base = np.datetime64("2020-01-01T00:00:00", "s") + np.arange(POINTS).astype("timedelta64[h]")
    for lo in range(0, n_series, 500):
        k = min(500, n_series - lo)
        t = np.arange(POINTS)[None, :]
        level = rng.uniform(10, 1000, (k, 1))
        values = (level + level * rng.uniform(0.05, 0.3, (k, 1)) * np.sin(2 * np.pi * t / 24 + rng.uniform(0, 6, (k, 1)))
                  + level * rng.uniform(0.02, 0.15, (k, 1)) * np.sin(2 * np.pi * t / 168)
                  + level * 0.03 * rng.standard_normal((k, POINTS)))
        table = pa.table({
            "id": pa.array(np.repeat([f"s{i:07d}" for i in range(lo, lo + k)], POINTS)),
            "time": pa.array(np.tile(base, k)),
            "value": pa.array(np.round(values, 3).ravel()),
        })
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema) if parquet else pacsv.CSVWriter(path, table.schema)
        writer.write_table(table)
    writer.close()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", default="1000000,10000000", help="comma-separated row counts (multiples of 2000)")
    p.add_argument("--steps", type=int, default=5, help="optimiser steps of each training run")
    p.add_argument("--parquet", action="store_true", help="also run each size from a Parquet file")
    p.add_argument("--workdir", type=Path, help="where data and runs go (default: a temporary directory)")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args(argv)
    exe = find_lstmcast(None)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="lstmcast-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for rows in [int(r) for r in args.rows.split(",")]:
        for fmt in ["csv"] + (["parquet"] if args.parquet else []):
            data = work / f"long-{rows}.{fmt}"
            gen = generate_long(data, rows, parquet=fmt == "parquet") if not data.exists() else None
            run = work / f"run-{rows}-{fmt}"
            entry = {"rows": rows, "series": rows // POINTS, "format": fmt, "file_mib": round(data.stat().st_size / 2**20, 1),
                     "raw_float32_mib": round(rows * 4 / 2**20, 1), "generate_s": gen and round(gen, 1)}
            steps = [("train", [exe, "train", str(data), "--max-steps", str(args.steps), "--run-dir", str(run),
                                "--overwrite", "--quiet"]),
                     ("predict", [exe, "predict", "--run", str(run), "--output", str(work / "fc.csv"), "--quiet"]),
                     ("predict_data", [exe, "predict", "--run", str(run), "--data", str(data),
                                       "--output", str(work / "fc.csv"), "--quiet"])]
            for name, cmd in steps:
                print(f"[scale] {rows:,} rows {fmt}: {name}", file=sys.stderr, flush=True)
                m = measure(cmd, cwd=work)
                entry[name] = {"wall_s": round(m.wall_s, 1), "peak_rss_mib": round(m.maxrss_mib), "rc": m.rc,
                               **({"error": m.stderr_tail} if m.rc else {})}
                if name == "train" and m.rc == 0:
                    met = json.loads((run / "metrics.json").read_text())
                    entry[name]["train_seconds"] = met["train_seconds"]
            shutil.rmtree(run, ignore_errors=True)
            results.append(entry)
            print(json.dumps(entry), file=sys.stderr, flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    print("| rows | series | format | file MiB | raw float32 MiB | train wall s (train s) | train peak RSS MiB "
          "| predict (stored tails) wall s / MiB | predict --data wall s / MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for e in results:
        t, pr, pd_ = e["train"], e["predict"], e["predict_data"]
        print(f"| {e['rows']:,} | {e['series']:,} | {e['format']} | {e['file_mib']} | {e['raw_float32_mib']} "
              f"| {t['wall_s']} ({t.get('train_seconds', 'failed')}) | {t['peak_rss_mib']:,} "
              f"| {pr['wall_s']} / {pr['peak_rss_mib']:,} | {pd_['wall_s']} / {pd_['peak_rss_mib']:,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
