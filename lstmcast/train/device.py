"""Where and in what arithmetic training runs: the one owner of the device choice."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from lstmcast.config import Device, Precision
from lstmcast.errors import InputError


def pick_device(choice: Device, dist: Any = None) -> torch.device:
    """cuda when asked (or when auto finds one), else cpu; under torchrun (`dist`, a
    `train.distributed.Dist`), the rank's own."""
    if dist is not None:
        return dist.device
    if choice is Device.cuda and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available; use --device cpu or auto")
    if choice is Device.cuda or (choice is Device.auto and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def use_bf16(choice: Precision, device: torch.device) -> bool:
    """Whether training's forward pass runs under bfloat16 autocast."""
    if device.type == "cuda":
        supported = torch.cuda.is_bf16_supported()
    else:
        supported = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if choice is Precision.bf16 and not supported:
        raise InputError(f"--precision bf16: not supported on this {device.type}; use fp32 or auto")
    return choice is Precision.bf16 or (choice is Precision.auto and supported)


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup CPU quota (containers)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(cpus, quota)) if quota else max(1, cpus)


def _cgroup_quota() -> int | None:
    """ceil(quota / period) of cgroup v2 `cpu.max` or v1 `cpu.cfs_quota_us`; None without a quota."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return None if quota <= 0 else max(1, math.ceil(quota / period))
    except (OSError, ValueError):
        return None


def choose_threads(requested: int | None = None, on_note: Callable[[str], None] | None = None) -> int:
    """Torch threads for training: `requested` (--threads), else $OMP_NUM_THREADS, else the CPUs
    this process may use less the load other processes put on them (at least one): the lower
    of the one-minute load average and the CPUs busy now (`busy_cpus`).

    A request or $OMP_NUM_THREADS above the CPUs this process may use is cut to them, and
    `on_note` says so: 10,000 spinning threads on two cores only slow every job on the machine.

    Two busy processes on two cores do not share them gracefully: torch's spinning thread
    pools fight: 10 steps took 36.54 s with two threads beside three other jobs against
    4.76 s with one (`benchmarks/threads.py`; benchmarks/RESULTS.md, "Threads").
    """
    env = os.environ.get("OMP_NUM_THREADS", "")
    asked, source = ((requested, "--threads") if requested is not None
                     else (int(env), "OMP_NUM_THREADS") if env.isdigit() and int(env) > 0 else (None, ""))
    if asked is not None:
        cpus = available_cpus()
        if asked > cpus and on_note is not None:
            on_note(f"{source} {asked}: this process may use {cpus} CPU{'s' * (cpus != 1)}; "
                    f"training on {cpus} thread{'s' * (cpus != 1)}")
        return max(1, min(asked, cpus))
    cpus = available_cpus()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    # The one-minute average lingers after a job ends (0.6-3.8 right after the test suite, which
    # made the demo train on one thread: 0.26 s a step against 0.16 s on two); what is busy now
    # says whether the other job is still there.
    now = busy_cpus()
    if now is not None:
        load = min(load, now)
    return max(1, min(cpus, int(cpus - load + 0.5)))


BUSY_SAMPLE_SECONDS = 0.2


def busy_cpus(interval: float = BUSY_SAMPLE_SECONDS) -> float | None:
    """CPUs busy over the next `interval` seconds, in the units of the load average (this process
    sleeps meanwhile, so it is the others' load); None where /proc/stat is not readable."""
    def totals() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = handle.readline().split()
        if not fields or fields[0] != "cpu" or len(fields) < 5:
            raise ValueError("no cpu line")
        ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
        return sum(ticks), ticks[3] + ticks[4]

    try:
        total0, idle0 = totals()
        time.sleep(interval)
        total1, idle1 = totals()
    except (OSError, ValueError):
        return None
    if total1 <= total0:
        return None
    return (1.0 - (idle1 - idle0) / (total1 - total0)) * (os.cpu_count() or 1)
