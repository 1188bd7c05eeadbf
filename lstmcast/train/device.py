"""Where and in what arithmetic training runs: the one owner of the device choice."""

from __future__ import annotations

import math
import os
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


def choose_threads(requested: int | None = None) -> int:
    """Torch threads for training: `requested` (--threads), else $OMP_NUM_THREADS, else the CPUs
    this process may use less the load other processes put on them (at least one).

    Two busy processes on two cores do not share them gracefully: torch's spinning thread
    pools fight: 10 steps took 36.54 s with two threads beside three other jobs against
    4.76 s with one (`benchmarks/threads.py`; benchmarks/RESULTS.md, "Threads").
    """
    if requested is not None:
        return max(1, requested)
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    cpus = available_cpus()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    return max(1, min(cpus, int(cpus - load + 0.5)))
