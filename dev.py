#!/usr/bin/env python3
"""Set up and run lstmcast from a fresh clone with nothing but Python 3.11+ and pip.

    python3 dev.py demo   # create .venv, install, train/predict/evaluate on sample_data
    python3 dev.py test   # create .venv, install, run the test suite
    python3 dev.py test --fast   # the fast tier only (pytest -m fast), under a minute
    python3 dev.py test -n 0     # in one process (the suite runs one pytest-xdist worker per CPU, at most 4)

Setup runs once: it is redone only when pyproject.toml or constraints.txt change.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".lstmcast-setup"


def run(*cmd: str | Path) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], cwd=ROOT, check=True)


def setup() -> None:
    """Create .venv and install lstmcast with pinned versions (torch 2.13.0, CPU) and the test and plot extras."""
    digest = hashlib.sha256(b"".join((ROOT / f).read_bytes() for f in ("pyproject.toml", "constraints.txt"))).hexdigest()
    if STAMP.exists() and STAMP.read_text() == digest:
        return
    if not (BIN / "python").exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    run(BIN / "python", "-m", "pip", "install", "--disable-pip-version-check", "-q",
        "-c", "constraints.txt", "-e", ".[test,plot]")
    STAMP.write_text(digest)


def demo() -> None:
    data = "sample_data/hourly_load.csv"
    run(BIN / "lstmcast", "train", data, "--run-dir", "runs/demo", "--overwrite")
    run(BIN / "lstmcast", "predict", "--run", "runs/demo")
    run(BIN / "lstmcast", "evaluate", "--run", "runs/demo", "--data", data, "--output", "runs/demo/evaluation.json")


def workers() -> int:
    """pytest-xdist workers: one per CPU in this process's affinity mask, at most 4 (each test runs on
    one thread). dev.py runs before lstmcast is installed, so it cannot call
    lstmcast.train.device.available_cpus, which also reads a cgroup quota; the cap bounds the cost."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 4))


def test(args: list[str]) -> None:
    if "--fast" in args:
        args = ["-m", "fast", *(a for a in args if a != "--fast")]
    # Tests run on one thread each (tests/conftest.py), so one worker per CPU; "-n 0" in args runs them in one process.
    run(BIN / "python", "-m", "pytest", "-n", str(workers()), *args)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("setup", "demo", "test"):
        sys.exit(__doc__)
    try:
        setup()
        if sys.argv[1] == "demo":
            demo()
        elif sys.argv[1] == "test":
            test(sys.argv[2:])
    except subprocess.CalledProcessError as exc:
        sys.exit(exc.returncode)


if __name__ == "__main__":
    main()
