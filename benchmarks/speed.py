"""Speed and memory of lstmcast, measured end to end through its command line.

One run measures, on generated data (noisy daily + weekly sines, hourly, wide CSV):

1. ``train``: training throughput of the reference case, a stacked LSTM of
   2 layers x 128 units, lookback 168, horizon 48, batch 256, in fp32 and bf16,
   from ``lstmcast train ... --max-steps N`` in a subprocess; windows/s and
   ``train_seconds`` come from the run's ``metrics.json``. Beside it the
   arithmetic rate this implies and this machine's float32 / bfloat16
   matrix-multiply rate (``torch.mm`` of n x n, default threads), timed in the
   same run.
2. ``nf``: the same model and data trained by NeuralForecast's ``LSTM``
   (``benchmarks/nf_speed.py``, run with ``--nf-python``, a separate venv), and
   the ratio of the two throughputs.
3. ``latency``: wall time (median of ``--reps``) of ``lstmcast --help`` and of
   ``lstmcast predict --run RUN --output X.csv --quiet``, process start to exit
   (the CSV is written before exit). RUN is ``--predict-run`` or a run trained
   here on 414 generated series (the number of M4 Hourly series).
4. ``memory``: peak resident memory of ``lstmcast train --max-steps 2`` on
   generated wide CSVs of growing size (default up to 10,000 series x 2,000
   points), beside the raw float32 size of the data (series x points x 4 bytes).

Usage (from the repository root, with the venv lstmcast is installed in)::

    python benchmarks/speed.py --quick --out /tmp/speed-quick.json   # tiny sizes, checks that it all runs
    python benchmarks/speed.py --nf-python /work/nfvenv/bin/python \\
        --predict-run RUN_DIR --out benchmarks/work/speed.json     # the real thing
    python benchmarks/speed.py --section 1,4                        # some sections only

Every command is run through a small Python wrapper that forks, execs the
command and waits for it with ``os.wait4``: the wall time is taken from fork to
exit, and ``ru_maxrss`` is the peak RSS of the command's own process. (Linux
carries the RSS high-water mark of the forking process across exec, so the
command is forked from that small wrapper, never from this process.)

Effective arithmetic rate (section 1): the matrix products of one training
sequence, forward and backward counted as 3 x forward. With forking sequences
(``--forking K``) a sequence is lookback + K - 1 steps long and its heads run at
its K forecast origins (K windows)::

    FLOPs/sequence = 3 x (lookback + K - 1) x sum_l 2 x 4H x (in_l + H)
                     + 3 x K x (2 x H x horizon + 2 x lookback x horizon)
                     (in_0 = 1, in_l = H for l > 0; the last terms are the linear
                     head and the skip head, the skip head only where the run has one)

K = 1 is one window per sequence: 198.8 MFLOP for the reference case with the
skip head. The rate is FLOPs/sequence x sequences/s; windows/s is sequences/s x K,
the forecast origins trained per second (what ``metrics.json`` reports as
``windows_per_second``). Element-wise gate arithmetic, window normalisation, the
loss and Adam are not counted. The model's other options are lstmcast's
defaults; each run's ``window_norm`` and ``skip`` are read from its run.json and
reported.

Timings taken while other work runs on the machine are not meaningful: the
load average at start and end is printed and saved with the results.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
NF_SCRIPT = Path(__file__).resolve().parent / "nf_speed.py"

SECTIONS = {"1": "train", "2": "nf", "3": "latency", "4": "memory"}

# The reference case: lstmcast train options and the numbers the FLOP count needs.
HIDDEN, LAYERS, LOOKBACK, HORIZON, BATCH = 128, 2, 168, 48, 256
MODEL_FLAGS = ["--hidden", str(HIDDEN), "--layers", str(LAYERS), "--lookback", str(LOOKBACK),
               "--horizon", str(HORIZON), "--batch-size", str(BATCH)]

M4_HOURLY_SERIES = 414

# Forks the command, waits with os.wait4 and writes wall time, exit code and rusage as JSON.
_WRAPPER = r"""
import json, os, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(cmd[0], cmd)
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t0
with open(out, "w") as f:
    json.dump({"wall_s": wall, "rc": os.waitstatus_to_exitcode(status), "maxrss_kib": ru.ru_maxrss,
               "user_s": ru.ru_utime, "sys_s": ru.ru_stime}, f)
"""

# Times torch.mm in a fresh process (default thread count), one line of JSON per dtype.
_MATMUL = r"""
import json, statistics, sys, time
import torch
n, warmup, reps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "n": n, "reps": reps}
try:
    out["mkldnn_bf16"] = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
except Exception:
    out["mkldnn_bf16"] = None
# Without hardware bf16 torch emulates it at a small fraction of the fp32 rate: not worth timing.
kinds = (("fp32", torch.float32), ("bf16", torch.bfloat16)) if out["mkldnn_bf16"] else (("fp32", torch.float32),)
for name, dtype in kinds:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(dtype)
    b = torch.randn(n, n, generator=g).to(dtype)
    for _ in range(warmup):
        torch.mm(a, b)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    out[name] = {"median_s": med, "min_s": min(times), "gflops": 2 * n**3 / med / 1e9,
                 "gflops_best": 2 * n**3 / min(times) / 1e9}
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Sizes:
    """How big each section's work is."""

    train_series: int
    train_points: int
    steps: int  # optimiser steps per throughput run (lstmcast and NeuralForecast)
    matmul_n: int
    matmul_reps: int
    reps: int  # latency repetitions
    predict_points: int  # points per series of the fallback predict run (414 series)
    memory_sizes: tuple[tuple[int, int], ...]  # (series, points)
    memory_steps: int
    baseline_size: tuple[int, int] = (4, 400)  # a tiny run: what the process costs with almost no data


FULL = Sizes(train_series=200, train_points=2000, steps=50, matmul_n=2048, matmul_reps=10, reps=5,
             predict_points=1000, memory_sizes=((1000, 2000), (3000, 2000), (10000, 2000)), memory_steps=2)
QUICK = Sizes(train_series=16, train_points=600, steps=3, matmul_n=256, matmul_reps=3, reps=2,
              predict_points=300, memory_sizes=((20, 400), (60, 400), (200, 400)), memory_steps=1)


@dataclass
class Measured:
    """One command, run through the wrapper."""

    cmd: list[str]
    wall_s: float
    rc: int
    maxrss_mib: float
    user_s: float
    sys_s: float
    stderr_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.rc == 0


@dataclass
class Context:
    """What every section needs: options, paths, and results so far."""

    args: argparse.Namespace
    sizes: Sizes
    workdir: Path
    lstmcast: str
    results: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def log(message: str) -> None:
    """Progress on stderr; stdout carries the tables."""
    print(f"[speed {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def measure(cmd: Sequence[str], cwd: Path | None = None, timeout: float | None = None) -> Measured:
    """Run `cmd` forked from a small wrapper; its wall time, exit code and peak RSS."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        result_path = Path(f.name)
    try:
        proc = subprocess.run([sys.executable, "-c", _WRAPPER, str(result_path), *map(str, cmd)],
                              cwd=cwd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0 or result_path.stat().st_size == 0:
            raise RuntimeError(f"measuring wrapper failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        r = json.loads(result_path.read_text())
    finally:
        result_path.unlink(missing_ok=True)
    tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
    return Measured(cmd=list(map(str, cmd)), wall_s=r["wall_s"], rc=r["rc"], maxrss_mib=r["maxrss_kib"] / 1024,
                    user_s=r["user_s"], sys_s=r["sys_s"], stderr_tail=tail)


def require_ok(m: Measured, what: str) -> None:
    """Raise with the command's last stderr lines if it failed."""
    if not m.ok:
        raise RuntimeError(f"{what} failed with exit code {m.rc}: {m.stderr_tail or '(no stderr)'}\n"
                           f"command: {' '.join(m.cmd)}")


def flops_per_window(hidden: int = HIDDEN, layers: int = LAYERS, lookback: int = LOOKBACK,
                     horizon: int = HORIZON, input_size: int = 1, skip: bool = False, forking: int = 1) -> float:
    """Matrix-product FLOPs of one training sequence (forward + backward = 3 x forward).

    `skip` adds lstmcast's optional Linear(lookback -> horizon) from the window to the forecast.
    With forking sequences the LSTM runs lookback + K - 1 steps and the heads run at K origins.
    """
    lstm = sum(2 * 4 * hidden * ((input_size if layer == 0 else hidden) + hidden) for layer in range(layers))
    heads = 2 * hidden * horizon + (2 * lookback * horizon if skip else 0)
    return 3.0 * (lookback + forking - 1) * lstm + 3.0 * forking * heads


def generate_wide_csv(path: Path, n_series: int, n_points: int, seed: int = 0) -> float:
    """Write `n_series` noisy daily + weekly seasonal series of `n_points` hourly values.

    Wide layout: a ``timestamp`` column and columns ``s00000``, ``s00001``, ...
    Each series has its own level, amplitudes, phases and noise. Returns seconds taken.
    """
    import pandas as pd

    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    t = np.arange(n_points, dtype=np.float64)[:, None]
    level = rng.uniform(10, 1000, n_series)
    daily = level * rng.uniform(0.05, 0.3, n_series)
    weekly = level * rng.uniform(0.02, 0.15, n_series)
    noise = level * rng.uniform(0.01, 0.05, n_series)
    trend = level * rng.uniform(-1e-4, 1e-4, n_series)
    values = (level + trend * t
              + daily * np.sin(2 * np.pi * t / 24 + rng.uniform(0, 2 * np.pi, n_series))
              + weekly * np.sin(2 * np.pi * t / 168 + rng.uniform(0, 2 * np.pi, n_series))
              + noise * rng.standard_normal((n_points, n_series)))
    frame = pd.DataFrame(values, columns=[f"s{i:05d}" for i in range(n_series)])
    frame.insert(0, "timestamp", pd.date_range("2020-01-01", periods=n_points, freq="h"))
    tmp = path.with_suffix(".tmp")
    frame.to_csv(tmp, index=False, float_format="%.3f", date_format="%Y-%m-%d %H:%M:%S")
    tmp.replace(path)
    return time.perf_counter() - started


def dataset(ctx: Context, n_series: int, n_points: int) -> tuple[Path, float | None]:
    """The generated CSV of that size in the work directory (made once); seconds to make it."""
    path = ctx.workdir / f"wide-{n_series}x{n_points}-seed{ctx.args.seed}.csv"
    if path.exists():
        return path, None
    log(f"generating {n_series} series x {n_points} points -> {path.name}")
    return path, generate_wide_csv(path, n_series, n_points, ctx.args.seed)


def train_cmd(ctx: Context, data: Path, run_dir: Path, steps: int, precision: str,
              forking: int | None = None) -> list[str]:
    """`lstmcast train` of the reference case (forking None: the shipped default)."""
    return [ctx.lstmcast, "train", str(data), *MODEL_FLAGS, "--max-steps", str(steps),
            "--precision", precision, *(["--forking", str(forking)] if forking is not None else []), "--seed", str(ctx.args.seed), "--quiet",
            "--run-dir", str(run_dir), "--overwrite"]


def read_metrics(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "metrics.json").read_text())


def parse_size(text: str) -> tuple[int, int]:
    """'1000x2000' -> (1000, 2000)."""
    try:
        a, b = text.lower().split("x")
        return int(a), int(b)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected SERIESxPOINTS, e.g. 1000x2000") from None


def parse_sections(text: str) -> list[str]:
    """'1,3' or 'train,latency' -> ['train', 'latency'] (in the order 1-4)."""
    names = set()
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        if part in SECTIONS:
            names.add(SECTIONS[part])
        elif part in SECTIONS.values():
            names.add(part)
        else:
            raise argparse.ArgumentTypeError(f"unknown section {part!r}: use 1-4 or {', '.join(SECTIONS.values())}")
    return [s for s in SECTIONS.values() if s in names]


def git_state() -> dict[str, Any]:
    """Commit and whether the work tree differs from it."""
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip()
    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except OSError:
        return {}


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# 1. Training throughput
# --------------------------------------------------------------------------


def matmul_rate(ctx: Context) -> dict[str, Any]:
    """float32 and bfloat16 torch.mm rate, in a fresh process."""
    n, reps = ctx.sizes.matmul_n, ctx.sizes.matmul_reps
    log(f"torch.mm {n}x{n}, fp32 (and bf16 where the CPU has it), median of {reps}")
    proc = subprocess.run([sys.executable, "-c", _MATMUL, str(n), "2", str(reps)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"matmul timing failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def section_train(ctx: Context) -> dict[str, Any]:
    """Reference case through `lstmcast train`, each precision; plus the matmul rate."""
    s = ctx.sizes
    data, gen_s = dataset(ctx, s.train_series, s.train_points)
    mm = matmul_rate(ctx)
    per_window = flops_per_window()  # without lstmcast's skip head; each run's own count is in its entry
    runs: dict[str, Any] = {}
    for precision in ctx.args.precisions:
        for forking in ctx.args.forking:
            key = f"{precision} K={forking}"
            run_dir = ctx.workdir / f"runs/train-{precision}-k{forking}"
            log(f"lstmcast train, {key}, {s.steps} steps on {s.train_series}x{s.train_points}")
            m = measure(train_cmd(ctx, data, run_dir, s.steps, precision, forking), cwd=ctx.workdir)
            entry: dict[str, Any] = {"precision_asked": precision, "forking": forking, "wall_s": round(m.wall_s, 3),
                                     "rc": m.rc, "maxrss_mib": round(m.maxrss_mib, 1),
                                     "user_s": round(m.user_s, 2), "sys_s": round(m.sys_s, 2)}
            if not m.ok:
                entry["error"] = m.stderr_tail
                log(f"  failed (exit {m.rc}): {m.stderr_tail}")
            else:
                met = read_metrics(run_dir)
                model = json.loads((run_dir / "run.json").read_text())["model"]
                wps = met["windows_per_second"]
                entry.update({k: met.get(k) for k in ("steps", "train_windows", "train_seconds", "windows_per_second",
                                                      "device", "precision", "stopped")})
                entry.update({"window_norm": model.get("window_norm"), "skip": bool(model.get("skip"))})
                per_seq = flops_per_window(skip=entry["skip"], forking=forking)
                seqs_per_s = met["steps"] * BATCH / met["train_seconds"]
                entry["flops_per_sequence"] = per_seq
                entry["sequences_per_second"] = round(seqs_per_s, 1)
                entry["effective_gflops"] = round(per_seq * seqs_per_s / 1e9, 2)
                rate = mm.get(precision, {}).get("gflops")
                entry["fraction_of_matmul"] = round(per_seq * seqs_per_s / 1e9 / rate, 4) if rate else None
                log(f"  {wps:.0f} windows/s, {entry['effective_gflops']} GFLOP/s")
            runs[key] = entry
    return {"data": {"series": s.train_series, "points": s.train_points, "csv": data.name,
                     "generate_s": None if gen_s is None else round(gen_s, 2)},
            "model": {"hidden": HIDDEN, "layers": LAYERS, "lookback": LOOKBACK, "horizon": HORIZON, "batch": BATCH},
            "steps": s.steps, "flops_per_window": per_window, "matmul": mm, "runs": runs}


def render_train(r: dict[str, Any]) -> str:
    mm = r["matmul"]
    rows = []
    options = sorted({f"window norm {e['window_norm']}, skip head {'on' if e['skip'] else 'off'}"
                      for e in r["runs"].values() if "window_norm" in e})
    for key, e in r["runs"].items():
        if "error" in e:
            rows.append([key, "failed", "", "", "", "", "", "", e["error"].splitlines()[-1] if e["error"] else ""])
            continue
        rows.append([key, str(e["steps"]), f"{e['train_windows']:,}", fmt(e["train_seconds"], 2),
                     fmt(e["sequences_per_second"]), fmt(e["windows_per_second"]), fmt(e["effective_gflops"]),
                     fmt(mm.get(e["precision_asked"], {}).get("gflops")),
                     fmt(100 * e["fraction_of_matmul"] if e["fraction_of_matmul"] is not None else None) + "%"])
    head = (f"### 1. Training throughput (lstmcast train, {r['data']['series']} series x {r['data']['points']} points, "
            f"LSTM {r['model']['layers']}x{r['model']['hidden']}, lookback {r['model']['lookback']}, "
            f"horizon {r['model']['horizon']}, batch {r['model']['batch']}"
            + (f"; {'; '.join(options)}" if options else "") + ")\n\n"
            "K is --forking: each sequence of lookback + K - 1 steps trains K forecast origins (windows); "
            "K = 1 is one window per sequence. FLOPs are the matrix products of each sequence, forward and "
            f"backward; torch.mm {mm['n']}x{mm['n']}, {mm['threads']} threads, median of {mm['reps']}.\n\n")
    return head + table(["precision, K", "steps", "windows", "train s", "sequences/s", "windows/s",
                         "effective GFLOP/s", "torch.mm GFLOP/s", "of matmul rate"], rows)


# --------------------------------------------------------------------------
# 2. NeuralForecast
# --------------------------------------------------------------------------


def section_nf(ctx: Context) -> dict[str, Any]:
    """NeuralForecast's LSTM on the same data, in its own venv; ratio to lstmcast."""
    s = ctx.sizes
    if not ctx.args.nf_python:
        return {"skipped": "no --nf-python given (a venv with neuralforecast; see benchmarks/nf_speed.py)"}
    data, _ = dataset(ctx, s.train_series, s.train_points)
    ours = ctx.results.get("train", {}).get("runs", {})
    runs: dict[str, Any] = {}
    for precision in ctx.args.precisions:
        out = ctx.workdir / f"nf-{precision}.json"
        log(f"neuralforecast LSTM, {precision}, {s.steps} steps, batch_size {ctx.args.nf_batch_size} series")
        cmd = [ctx.args.nf_python, str(NF_SCRIPT), "--data", str(data), "--steps", str(s.steps),
               "--lookback", str(LOOKBACK), "--horizon", str(HORIZON), "--hidden", str(HIDDEN),
               "--layers", str(LAYERS), "--windows-batch-size", str(BATCH),
               "--batch-size", str(ctx.args.nf_batch_size), "--precision", precision,
               "--warmup", str(min(5, max(0, s.steps - 2))), "--seed", str(ctx.args.seed), "--json-out", str(out)]
        m = measure(cmd, cwd=ctx.workdir)
        entry: dict[str, Any] = {"wall_s": round(m.wall_s, 3), "rc": m.rc, "maxrss_mib": round(m.maxrss_mib, 1)}
        if not m.ok or not out.exists():
            entry["error"] = m.stderr_tail
            log(f"  failed (exit {m.rc}): {m.stderr_tail}")
        else:
            entry.update(json.loads(out.read_text()))
            entry["lstmcast_over_nf"] = {
                key: round(e["windows_per_second"] / entry["windows_per_second"], 3)
                for key, e in ours.items() if e.get("precision_asked") == precision and e.get("windows_per_second")}
            log(f"  {entry['windows_per_second']:.0f} windows/s")
        runs[precision] = entry
    return {"steps": s.steps, "windows_batch_size": BATCH, "batch_size_series": ctx.args.nf_batch_size,
            "runs": runs, "lstmcast_runs": {k: e.get("windows_per_second") for k, e in ours.items()}}


def render_nf(r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"### 2. NeuralForecast comparison\n\nskipped: {r['skipped']}"
    rows = []
    for precision, e in r["runs"].items():
        if "error" in e:
            rows.append([precision, "", "failed", "", "", e["error"].splitlines()[-1] if e["error"] else ""])
            continue
        for key, ratio in e["lstmcast_over_nf"].items():
            rows.append([key, fmt(r["lstmcast_runs"].get(key)), fmt(e["windows_per_second"]),
                         fmt(e.get("steady_windows_per_second")), fmt(e["train_seconds"], 2), fmt(ratio, 2) + "x"])
    versions = next((e["versions"] for e in r["runs"].values() if "versions" in e), {})
    head = ("### 2. NeuralForecast comparison (same data and architecture; "
            f"neuralforecast {versions.get('neuralforecast', '?')}, torch {versions.get('torch', '?')})\n\n"
            f"Each NF step trains windows_batch_size = {r['windows_batch_size']} windows drawn from "
            f"batch_size = {r['batch_size_series']} series; windows/s = steps x {r['windows_batch_size']} / "
            "training time (steady: without the first steps).\n\n")
    return head + table(["lstmcast precision, K", "lstmcast windows/s", "NF windows/s", "NF steady windows/s", "NF train s",
                         "lstmcast / NF"], rows)


# --------------------------------------------------------------------------
# 3. Latency of --help and predict
# --------------------------------------------------------------------------


def timed_reps(cmd: list[str], reps: int, cwd: Path, what: str, before=None) -> dict[str, Any]:
    """Run `cmd` `reps` times; median, min, max wall time."""
    walls = []
    for _ in range(reps):
        if before is not None:
            before()
        m = measure(cmd, cwd=cwd)
        require_ok(m, what)
        walls.append(m.wall_s)
    return {"median_s": round(statistics.median(walls), 4), "min_s": round(min(walls), 4),
            "max_s": round(max(walls), 4), "reps": reps, "walls_s": [round(w, 4) for w in walls],
            "maxrss_mib": round(m.maxrss_mib, 1)}


def section_latency(ctx: Context) -> dict[str, Any]:
    """`lstmcast --help` and `lstmcast predict` wall times."""
    s, reps = ctx.sizes, ctx.sizes.reps
    out: dict[str, Any] = {}
    log(f"lstmcast --help x {reps}")
    out["help"] = timed_reps([ctx.lstmcast, "--help"], reps, ctx.workdir, "lstmcast --help")
    if ctx.args.predict_run is not None:
        run = ctx.args.predict_run.resolve()
        out["predict_run"] = {"path": str(run), "given": True}
    else:
        data, _ = dataset(ctx, M4_HOURLY_SERIES, s.predict_points)
        run = ctx.workdir / "runs/predict-source"
        log(f"training a run to predict from ({M4_HOURLY_SERIES} series x {s.predict_points} points, 2 steps)")
        m = measure(train_cmd(ctx, data, run, 2, "fp32"), cwd=ctx.workdir)
        require_ok(m, "training the run for predict")
        out["predict_run"] = {"path": str(run), "given": False, "series": M4_HOURLY_SERIES, "points": s.predict_points}
    meta = json.loads((run / "run.json").read_text())
    out["predict_run"].update({"series": len(meta["series"]), "lookback": meta["model"]["lookback"],
                               "horizon": meta["model"]["horizon"], "hidden": meta["model"]["hidden"],
                               "layers": meta["model"]["layers"]})
    target = ctx.workdir / "predict-output.csv"
    log(f"lstmcast predict x {reps} ({out['predict_run']['series']} series)")
    out["predict"] = timed_reps([ctx.lstmcast, "predict", "--run", str(run), "--output", str(target), "--quiet"],
                                reps, ctx.workdir, "lstmcast predict", before=lambda: target.unlink(missing_ok=True))
    if not target.exists():
        raise RuntimeError(f"lstmcast predict wrote no {target}")
    out["predict"]["rows"] = sum(1 for _ in target.open()) - 1
    return out


def render_latency(r: dict[str, Any]) -> str:
    pr = r["predict_run"]
    rows = [["lstmcast --help", fmt(r["help"]["median_s"], 3), fmt(r["help"]["min_s"], 3),
             fmt(r["help"]["max_s"], 3), str(r["help"]["reps"]), fmt(r["help"]["maxrss_mib"], 0)],
            [f"lstmcast predict ({pr['series']} series, horizon {pr['horizon']}, {r['predict']['rows']:,} rows)",
             fmt(r["predict"]["median_s"], 3), fmt(r["predict"]["min_s"], 3), fmt(r["predict"]["max_s"], 3),
             str(r["predict"]["reps"]), fmt(r["predict"]["maxrss_mib"], 0)]]
    src = pr["path"] if pr["given"] else f"generated ({pr['series']} series x {pr['points']} points)"
    return (f"### 3. Command latency (process start to exit; predict run: {src})\n\n"
            + table(["command", "median s", "min s", "max s", "reps", "peak RSS MiB"], rows))


# --------------------------------------------------------------------------
# 4. Peak memory
# --------------------------------------------------------------------------


def memory_run(ctx: Context, n_series: int, n_points: int, label: str) -> dict[str, Any]:
    data, gen_s = dataset(ctx, n_series, n_points)
    run = ctx.workdir / f"runs/memory-{n_series}x{n_points}"
    log(f"memory: lstmcast train on {n_series} x {n_points} ({label}), {ctx.sizes.memory_steps} steps")
    m = measure(train_cmd(ctx, data, run, ctx.sizes.memory_steps, "fp32"), cwd=ctx.workdir)
    raw = n_series * n_points * 4 / 2**20
    entry: dict[str, Any] = {"series": n_series, "points": n_points, "raw_float32_mib": round(raw, 2),
                             "csv_mib": round(data.stat().st_size / 2**20, 2),
                             "generate_s": None if gen_s is None else round(gen_s, 2),
                             "peak_rss_mib": round(m.maxrss_mib, 1), "wall_s": round(m.wall_s, 2),
                             "user_s": round(m.user_s, 2), "rc": m.rc}
    if m.ok:
        met = read_metrics(run)
        entry["train_seconds"] = met["train_seconds"]
        entry["train_windows"] = met["train_windows"]
        # Everything but the training loop: imports, reading and checking the CSV, scaling,
        # validation metrics, writing the run.
        entry["outside_training_s"] = round(m.wall_s - met["train_seconds"], 2)
        shutil.rmtree(run, ignore_errors=True)
    else:
        entry["error"] = m.stderr_tail
        log(f"  failed (exit {m.rc}): {m.stderr_tail}")
    if not ctx.args.keep_data and label != "baseline":
        data.unlink(missing_ok=True)
    log(f"  peak RSS {m.maxrss_mib:.0f} MiB, wall {m.wall_s:.1f} s")
    return entry


def section_memory(ctx: Context) -> dict[str, Any]:
    """Peak RSS of `lstmcast train` at growing sizes, and of a tiny baseline run."""
    base = memory_run(ctx, *ctx.sizes.baseline_size, label="baseline")
    runs = []
    for n_series, n_points in ctx.sizes.memory_sizes:
        e = memory_run(ctx, n_series, n_points, label="size")
        raw = n_series * n_points * 4 / 2**20
        e["peak_over_raw"] = round(e["peak_rss_mib"] / raw, 2)
        e["above_baseline_over_raw"] = round((e["peak_rss_mib"] - base["peak_rss_mib"]) / raw, 2)
        runs.append(e)
    return {"steps": ctx.sizes.memory_steps, "baseline": base, "runs": runs}


def render_memory(r: dict[str, Any]) -> str:
    b = r["baseline"]
    rows = []
    for e in r["runs"]:
        rows.append([f"{e['series']:,} x {e['points']:,}", fmt(e["raw_float32_mib"], 2), fmt(e["csv_mib"], 2),
                     fmt(e["peak_rss_mib"], 0) if e["rc"] == 0 else f"failed ({e['rc']})",
                     fmt(e["peak_over_raw"]), fmt(e["above_baseline_over_raw"]), fmt(e["wall_s"]),
                     fmt(e.get("train_seconds")), fmt(e.get("outside_training_s"))])
    return (f"### 4. Peak memory of lstmcast train (--max-steps {r['steps']}, reference model, wide CSV)\n\n"
            f"Baseline (a {b['series']} x {b['points']} run): peak RSS {b['peak_rss_mib']:.0f} MiB.\n\n"
            + table(["series x points", "raw float32 MiB", "CSV MiB", "peak RSS MiB", "peak / raw",
                     "(peak - baseline) / raw", "wall s", "train s", "wall - train s"], rows))


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

RUNNERS = {"train": (section_train, render_train), "nf": (section_nf, render_nf),
           "latency": (section_latency, render_latency), "memory": (section_memory, render_memory)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that everything runs, times nothing useful")
    p.add_argument("--section", type=parse_sections, default=list(SECTIONS.values()),
                   help="sections to run, comma-separated numbers or names: 1=train 2=nf 3=latency 4=memory "
                        "(default all)")
    p.add_argument("--out", type=Path,
                   help="write the results as JSON here (default benchmarks/work/speed.json; with --quick, none)")
    p.add_argument("--lstmcast", help="the lstmcast command (default: the one beside this Python, else on PATH)")
    p.add_argument("--precisions", type=lambda t: [x.strip() for x in t.split(",") if x.strip()],
                   default=["fp32", "bf16"], help="training precisions of sections 1 and 2 (default fp32,bf16)")
    p.add_argument("--forking", type=lambda t: [int(x) for x in t.split(",") if x.strip()], default=[1, 48],
                   help="lstmcast --forking values of section 1 (default 1,48)")
    p.add_argument("--steps", type=int, help="optimiser steps per throughput run (default 50, quick 3)")
    p.add_argument("--train-size", type=parse_size, help="SERIESxPOINTS of sections 1-2 (default 200x2000)")
    p.add_argument("--memory-sizes", type=lambda t: tuple(parse_size(x) for x in t.split(",")),
                   help="SERIESxPOINTS,... of section 4 (default 1000x2000,3000x2000,10000x2000)")
    p.add_argument("--reps", type=int, help="repetitions of each latency measurement (default 5)")
    p.add_argument("--nf-python", help="Python of a venv with neuralforecast, e.g. /work/nfvenv/bin/python")
    p.add_argument("--nf-batch-size", type=int, default=32,
                   help="NF batch_size: series per step that the 256 windows are drawn from (NF default 32)")
    p.add_argument("--predict-run", type=Path, help="trained run directory to time predict on (e.g. M4 Hourly)")
    p.add_argument("--workdir", type=Path, help="where data and runs go (kept; default a temporary directory, removed)")
    p.add_argument("--keep-data", action="store_true", help="keep the generated memory-test CSVs in the workdir")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated data and of training")
    return p.parse_args(argv)


def resolve_sizes(args: argparse.Namespace) -> Sizes:
    sizes = QUICK if args.quick else FULL
    changes: dict[str, Any] = {}
    if args.steps is not None:
        changes["steps"] = args.steps
    if args.train_size is not None:
        changes["train_series"], changes["train_points"] = args.train_size
    if args.memory_sizes is not None:
        changes["memory_sizes"] = args.memory_sizes
    if args.reps is not None:
        changes["reps"] = args.reps
    return Sizes(**{**asdict(sizes), **changes}) if changes else sizes


def find_lstmcast(given: str | None) -> str:
    if given:
        return given
    beside = Path(sys.executable).parent / "lstmcast"
    if beside.exists():
        return str(beside)
    found = shutil.which("lstmcast")
    if found is None:
        raise SystemExit("speed.py: no lstmcast command beside this Python or on PATH; pass --lstmcast")
    return found


def main(argv: list[str] | None = None) -> int:
    """Run the chosen sections, print markdown tables, write JSON."""
    args = parse_args(argv)
    if args.out is None and not args.quick:
        args.out = Path(__file__).resolve().parent / "work" / "speed.json"
    sizes = resolve_sizes(args)
    lstmcast = find_lstmcast(args.lstmcast)
    temporary = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="lstmcast-speed-")) if temporary else args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = Context(args=args, sizes=sizes, workdir=workdir, lstmcast=lstmcast)

    from importlib.metadata import PackageNotFoundError, version
    try:
        lstmcast_version = version("lstmcast")
    except PackageNotFoundError:
        lstmcast_version = None
    load_start = os.getloadavg()
    cpus = os.cpu_count() or 1
    meta: dict[str, Any] = {
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick, "sections": args.section, "sizes": asdict(sizes),
        "lstmcast": lstmcast, "lstmcast_version": lstmcast_version, "git": git_state(),
        "python": platform.python_version(), "platform": platform.platform(), "cpu": cpu_model(),
        "cpu_count": cpus, "loadavg_start": [round(x, 2) for x in load_start],
    }
    log(f"sections {', '.join(args.section)}; workdir {workdir}; load average {load_start[0]:.2f} on {cpus} CPUs")
    if load_start[0] > 0.5:
        log("warning: the machine is busy; throughput and latency figures will be low")
    failures: dict[str, str] = {}
    started = time.perf_counter()
    try:
        for name in args.section:
            run_fn, _ = RUNNERS[name]
            t0 = time.perf_counter()
            try:
                ctx.results[name] = run_fn(ctx)
                ctx.results[name]["section_seconds"] = round(time.perf_counter() - t0, 1)
            except Exception as exc:  # one failing section does not lose the others
                failures[name] = f"{type(exc).__name__}: {exc}"
                log(f"section {name} failed: {failures[name]}")
    finally:
        if temporary:
            shutil.rmtree(workdir, ignore_errors=True)
    meta["total_seconds"] = round(time.perf_counter() - started, 1)
    meta["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]

    print(f"## lstmcast speed ({'quick' if args.quick else 'full'}), {meta['started']}\n")
    print(f"{meta['cpu']}, {cpus} CPUs, Python {meta['python']}, lstmcast {lstmcast_version}, "
          f"commit {meta['git'].get('commit', '?')[:10]}{' (dirty)' if meta['git'].get('dirty') else ''}; "
          f"load average {meta['loadavg_start'][0]} at start, {meta['loadavg_end'][0]} at end; "
          f"{meta['total_seconds']:.0f} s in all.\n")
    for name in args.section:
        if name in ctx.results:
            print(RUNNERS[name][1](ctx.results[name]) + "\n")
        else:
            print(f"### {name}: failed\n\n{failures[name]}\n")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"meta": meta, **ctx.results, "failures": failures}, indent=2) + "\n")
        log(f"wrote {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
