"""The LSTM family on M4 Hourly and ETTh1: each cell and encoder option, accuracy and training time.

Every variant trains through the command line with the same flags (`--max-steps` by
default 800, everything else the shipped defaults) plus its own: `--cell gru`,
`--cell peephole`, `--bidirectional`, `--attention`. M4 Hourly is scored by
`benchmarks/m4.py` (sMAPE, MASE, OWA against Naive2, all 414 series, horizon 48),
ETTh1 `OT` by `benchmarks/etth1.py` (MSE and MAE on the training z-score, horizon 96).
Results are written after each run (`--json-out`), so an interrupted sweep keeps what
it measured; `--skip-done` continues it.

    python benchmarks/family.py [--variants lstm,gru,...] [--datasets etth1,m4] [--max-steps 800]
        [--json-out benchmarks/work/family.json] [--skip-done]
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

VARIANTS = {
    "lstm": [],
    "gru": ["--cell", "gru"],
    "peephole": ["--cell", "peephole"],
    "lstm-bidirectional": ["--bidirectional"],
    "lstm-attention": ["--attention"],
    "gru-attention": ["--cell", "gru", "--attention"],
    "peephole-bidirectional-attention": ["--cell", "peephole", "--bidirectional", "--attention"],
}


def run_m4(flags: list[str], work: Path) -> dict:
    import m4

    out = work / "m4.json"
    code = m4.main(["--dataset", "hourly", "--method", "lstmcast", "--extra", shlex.join(flags), "--json-out", str(out)])
    if code != 0:
        raise RuntimeError(f"m4.py failed with exit {code}")
    r = json.loads(out.read_text())
    return {"smape": r["smape"], "mase": r["mase"], "owa": r["owa"], "train_seconds": r["train_seconds"]}


def run_etth1(flags: list[str], work: Path) -> dict:
    import etth1

    out = work / "etth1.json"
    etth1.main(["--horizons", "96", "--extra", shlex.join(flags), "--json-out", str(out)])
    r = json.loads(out.read_text())[0]
    return {"mse": r["mse"], "mae": r["mae"], "train_seconds": r["train_seconds"], "steps": r["steps"]}


def table(results: dict) -> str:
    lines = ["| variant | flags | M4 Hourly sMAPE | MASE | OWA | train s | ETTh1-96 MSE | MAE | train s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        m, e = r.get("m4", {}), r.get("etth1", {})
        cell = lambda d, k, f: format(d[k], f) if k in d else "not run"  # noqa: E731
        lines.append(f"| {name} | `{shlex.join(r['flags'])}` | {cell(m, 'smape', '.3f')} | {cell(m, 'mase', '.3f')} "
                     f"| {cell(m, 'owa', '.3f')} | {cell(m, 'train_seconds', '.0f')} | {cell(e, 'mse', '.4f')} "
                     f"| {cell(e, 'mae', '.4f')} | {cell(e, 'train_seconds', '.0f')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="lstm,gru,lstm-attention,lstm-bidirectional,peephole")
    parser.add_argument("--datasets", default="etth1,m4")
    parser.add_argument("--max-steps", type=int, default=800)
    parser.add_argument("--extra", default="", help="flags added to every variant's, one shell-quoted string")
    parser.add_argument("--json-out", type=Path, default=HERE / "work" / "family.json")
    parser.add_argument("--skip-done", action="store_true", help="keep the results already in --json-out")
    args = parser.parse_args(argv)
    results = json.loads(args.json_out.read_text()) if args.skip_done and args.json_out.exists() else {}
    common = ["--max-steps", str(args.max_steps), *shlex.split(args.extra)]
    for dataset in args.datasets.split(","):  # ETTh1 (one series) is the cheaper one: first
        for name in args.variants.split(","):
            entry = results.setdefault(name, {"flags": [*VARIANTS[name], *common]})
            if dataset in entry:
                continue
            started = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="lstmcast-family-") as tmp:
                runner = run_m4 if dataset == "m4" else run_etth1
                entry[dataset] = runner(entry["flags"], Path(tmp))
            print(f"{name} on {dataset}: {entry[dataset]} ({time.perf_counter() - started:.0f} s wall)",
                  file=sys.stderr, flush=True)
            args.json_out.parent.mkdir(parents=True, exist_ok=True)
            args.json_out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
