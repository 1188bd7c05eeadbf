"""ETTh1 `OT`, horizon 96: the effect of calendar features and of the load columns as past covariates.

Four runs through `benchmarks/etth1.py` (the standard split, MSE/MAE on the training
z-score over every test window), the same small step budget each:

    no-calendar            --no-calendar
    calendar               --calendar (hour of day, day of week)
    loads                  --no-calendar --past-covariates HUFL,HULL,MUFL,MULL,LUFL,LULL
    loads+calendar         --calendar --past-covariates HUFL,HULL,MUFL,MULL,LUFL,LULL

    nice -n 19 python benchmarks/covariates.py [--max-steps 300] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

LOADS = "HUFL,HULL,MUFL,MULL,LUFL,LULL"
VARIANTS = {
    "no-calendar": ["--no-calendar"],
    "calendar": ["--calendar"],
    "loads": ["--no-calendar", "--past-covariates", LOADS],
    "loads+calendar": ["--calendar", "--past-covariates", LOADS],
}


def main(argv: list[str] | None = None) -> int:
    import shlex

    import etth1

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    results = {}
    for name in args.variants.split(","):
        flags = ["--max-steps", str(args.max_steps), "--device", "cpu", *VARIANTS[name]]
        with tempfile.TemporaryDirectory(prefix="lstmcast-cov-") as tmp:
            out = Path(tmp) / "r.json"
            etth1.main(["--horizons", "96", "--extra", shlex.join(flags), "--json-out", str(out)])
            results[name] = json.loads(out.read_text())[0]
        r = results[name]
        print(f"{name}: MSE {r['mse']:.4f} MAE {r['mae']:.4f} train {r['train_seconds']:.0f} s", flush=True)
        if args.json_out:
            args.json_out.write_text(json.dumps(results, indent=2) + "\n")
    print("| variant | MSE | MAE | train s | steps |\n|---|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['mse']:.4f} | {r['mae']:.4f} | {r['train_seconds']:.0f} | {r['steps']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
