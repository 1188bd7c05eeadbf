"""Score each member of an lstmcast ensemble run on M4, and the combinations of the first n.

An ensemble run (``--ensemble N``, or what ``--time-limit`` filled) forecasts the median of
its members. This script answers how much of its accuracy the members bring on their own
and how much the combining adds::

    python benchmarks/m4.py --dataset hourly --method lstmcast --workdir W --extra "--time-limit 3600"
    python benchmarks/m4_members.py --dataset hourly --run W/lstmcast-hourly-*/run

Each member k is copied into a run of one network (its ``memberK.`` tensors without the
prefix, ``model.members = 1`` in run.json) under ``--workdir``, forecast with
``lstmcast predict`` and scored with the M4 measures; then the median and the mean of
members 1..n for every n. Only point forecasts are scored, so the copied runs' interval
calibration (made on the combined forecast) does not matter. The run must come from
``m4.py`` without ``--log-values`` (its forecasts are scored as written).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

import m4
import m4_scoring as scoring
from lstmcast.model.shapes import member_prefix
from lstmcast.run.rundir import RUN_JSON, WEIGHTS


def member_run(run: Path, k: int, out: Path) -> Path:
    """A copy of `run` holding member `k` alone, as a run of one network."""
    from safetensors.numpy import load_file, save_file

    target = out / f"member{k}"
    shutil.copytree(run, target)
    prefix = member_prefix(k)
    weights = load_file(target / WEIGHTS)
    mine = {n[len(prefix):]: v for n, v in weights.items() if n.startswith(prefix)}
    if not mine:
        raise SystemExit(f"{run}: no tensors named {prefix}*; is it an ensemble run?")
    save_file(mine, target / WEIGHTS)
    record = json.loads((target / RUN_JSON).read_text(encoding="utf-8"))
    record["model"]["members"] = 1
    (target / RUN_JSON).write_text(json.dumps(record, indent=1), encoding="utf-8")
    return target


def members_of(run: Path) -> int:
    record = json.loads((run / RUN_JSON).read_text(encoding="utf-8"))
    return int(record["model"].get("members", 1))


def score(data: m4.M4Data, spec: m4.DatasetSpec, forecast: np.ndarray, naive2: np.ndarray) -> dict[str, float]:
    s = scoring.evaluate(data.train, data.test, forecast, spec.season, naive2=naive2).as_dict()
    return {k: round(float(s[k]), 4) for k in ("smape", "mase", "owa")}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=sorted(m4.DATASETS), required=True)
    ap.add_argument("--run", type=Path, required=True, help="an ensemble run directory written by m4.py")
    ap.add_argument("--data-dir", type=Path, default=m4.DEFAULT_DATA_DIR)
    ap.add_argument("--workdir", type=Path, help="where the member runs go (default: a temporary folder)")
    ap.add_argument("--json-out", type=Path, help="also write the rows as JSON here")
    args = ap.parse_args(argv)

    spec = m4.DATASETS[args.dataset]
    data = m4.load_m4(spec, args.data_dir)
    naive2 = m4.run_benchmark(data, spec, "naive2").forecast
    count = members_of(args.run)
    if count < 2:
        raise SystemExit(f"{args.run}: a run of one network; nothing to split")
    with contextlib.ExitStack() as stack:
        out = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="m4-members-")))
        out.mkdir(parents=True, exist_ok=True)
        forecasts = []
        for k in range(count):
            run = member_run(args.run, k, out)
            fc = out / f"member{k}.csv"
            subprocess.run([sys.executable, "-m", "lstmcast", "predict", "--run", str(run), "--output", str(fc),
                            "--quiet"], cwd=m4.REPO_ROOT, check=True)
            forecasts.append(m4.read_forecast_csv(fc, data, spec.horizon))
    rows: list[dict[str, Any]] = [{"forecast": f"member {k} alone", **score(data, spec, f, naive2)}
                                  for k, f in enumerate(forecasts)]
    stack = np.stack(forecasts)
    for n in range(2, count + 1):
        rows.append({"forecast": f"median of members 0-{n - 1}", **score(data, spec, np.median(stack[:n], 0), naive2)})
        rows.append({"forecast": f"mean of members 0-{n - 1}", **score(data, spec, stack[:n].mean(0), naive2)})
    print(f"{spec.name}: {len(data.ids)} series, horizon {spec.horizon}; run {args.run}")
    print(f"{'forecast':<24} {'sMAPE':>8} {'MASE':>8} {'OWA':>7}")
    for r in rows:
        print(f"{r['forecast']:<24} {r['smape']:>8.3f} {r['mase']:>8.3f} {r['owa']:>7.3f}")
    if args.json_out:
        args.json_out.write_text(json.dumps({"dataset": spec.name, "run": str(args.run), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
