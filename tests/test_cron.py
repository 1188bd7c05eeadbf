"""Cron-grade behaviour with real `lstmcast` processes and real files: signals, resume,
divergence, locks, and SIGKILL at random moments."""

from __future__ import annotations

import re

import json
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import FAST_CLI, RUN_FILES, wide_frame, write_frame
from safetensors.numpy import load_file

from lstmcast import api
from lstmcast.run import locking
from lstmcast.run.rundir import load_run
from lstmcast.errors import EXIT_BUSY, EXIT_FAILURE, EXIT_SIGINT, EXIT_SIGTERM

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and flock")


@pytest.fixture
def daily(tmp_path: Path) -> Path:
    return write_frame(tmp_path / "daily.csv", wide_frame(n=80))


def one_error_line(stderr: str) -> str:
    """The one error line among the messages (progress lines may precede it)."""
    notes = ("epoch ", "lookback", "recipe: ", "frequency", "wide", "inputs besides", "short series")
    lines = [line for line in stderr.splitlines() if not line.startswith(notes) and not re.match(r"\d+ series ", line)]
    assert len(lines) == 1 and lines[0].startswith("lstmcast: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def wait_for_line(proc, prefix: str) -> list[str]:
    """Read the process's stderr until a line starts with `prefix`; return the lines read."""
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith(prefix):
            return seen
    raise AssertionError(f"process ended before printing {prefix!r}: {''.join(seen)}")


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = load_file(str(a / "weights.safetensors")), load_file(str(b / "weights.safetensors"))
    return wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)


def visible(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if not p.name.startswith("."))


# --- Ctrl-C, SIGTERM and --resume ---------------------------------------------------------------------


@pytest.mark.slow
def test_sigterm_leaves_a_resumable_run_that_finishes_bit_identical(cli, daily, tmp_path):
    from conftest import TINY

    from lstmcast.config import Schedule

    # The cosine schedule and forking sequences must survive the interruption too.
    options = ["--epochs", "10", "--seed", "5", "--schedule", "cosine", "--forking", "3", *FAST_CLI]
    run = tmp_path / "run"
    proc = cli.start("train", daily, "--run-dir", run, *options)
    # Meanwhile the same training, never interrupted (in this process: same code, one thread, CPU).
    whole = api.train(daily, horizon=6, lookback=12, hidden=8, run_dir=tmp_path / "whole",
                      train_config=replace(TINY, epochs=10, max_steps=None, batch_size=32, seed=5,
                                           schedule=Schedule.cosine, forking=3))
    wait_for_line(proc, "epoch 2/")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_SIGTERM, err
    assert f"stopped by SIGTERM: {run} holds the best weights so far" in err and "Traceback" not in err
    assert f"continue with: lstmcast train --resume {run}" in err
    assert f"run: {run}" in out  # the summary of what was written
    assert {"resume.json", "resume.safetensors", "weights.safetensors", "run.json"} <= set(visible(run))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["stopped"] == "interrupted" and 2 <= len(metrics["history"]) < 10
    assert np.isfinite(api.predict(run).forecast["forecast"]).all()  # usable as it is

    done = cli("train", "--resume", run, "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "ok" and summary["run_dir"] == str(run) and summary["metrics"]["epochs"] == len(whole.metrics["history"])
    assert not (run / "resume.json").exists() and not (run / "resume.safetensors").exists()
    assert same_weights(run, whole.run_dir), "resumed training must end where uninterrupted training ends"
    history = json.loads((run / "metrics.json").read_text())["history"]
    assert history == whole.metrics["history"]


# Runs the real CLI with a first epoch that cannot end before the test signals it: every training
# batch sleeps, and the first one says so on stderr.
SLOW_DRIVER = """
import sys, time
from lstmcast.model import network as model
forward, calls = model.LSTMForecaster.forward_origins, [0]
def slow(self, x, *cov):
    if self.training:
        calls[0] += 1
        if calls[0] == 1:
            print("training batch 1", file=sys.stderr, flush=True)
        time.sleep(0.2)
    return forward(self, x, *cov)
model.LSTMForecaster.forward_origins = slow
from lstmcast.cli import main
main()
"""


@pytest.mark.slow
def test_sigterm_in_the_first_epoch_exits_143_and_keeps_what_was_there(cli, daily, trained_run, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(trained_run.run_dir, old)
    before = {p.name: p.read_bytes() for p in old.iterdir()}
    fresh = tmp_path / "fresh"
    procs = {run: subprocess.Popen([sys.executable, "-c", SLOW_DRIVER, "train", str(daily), "--run-dir", str(run),
                                    "--overwrite", "--json", "--epochs", "3", "--epoch-steps", "40", *FAST_CLI], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=cli.env) for run in (old, fresh)}
    for run, proc in procs.items():
        seen = wait_for_line(proc, "training batch 1")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
        err = "".join(seen) + err
        assert proc.returncode == EXIT_SIGTERM, err
        line = one_error_line(err.replace("training batch 1\n", ""))
        assert line.startswith("lstmcast: error: stopped by SIGTERM before the first epoch finished: nothing to keep "
                               "yet, no run written"), line
        assert ("the run already at" in line) == (run == old), line
        summary = json.loads(out)
        assert summary["status"] == "interrupted" and summary["exit_code"] == EXIT_SIGTERM
        assert "inf" not in out.lower() and "nan" not in out.lower()
    assert {p.name: p.read_bytes() for p in old.iterdir()} == before, "the old run must stay as it was"
    assert not fresh.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["daily.csv", "old"]  # no temporary, no lock left


def test_resume_refuses_other_options_and_runs_without_state(trained_run):
    from typer.testing import CliRunner

    from lstmcast.cli.app import app

    result = CliRunner().invoke(app, ["train", "--resume", str(trained_run.run_dir), "--epochs", "3"])
    assert result.exit_code == 2 and "--resume" in one_error_line(result.stderr)
    result = CliRunner().invoke(app, ["train", "--resume", str(trained_run.run_dir)])
    assert result.exit_code == 3 and "no resume state" in one_error_line(result.stderr)


def test_resume_refuses_changed_data_and_api_resume_works(tmp_path):
    from conftest import TINY
    from typer.testing import CliRunner

    from lstmcast.cli.app import app

    data = write_frame(tmp_path / "d.csv", wide_frame(n=80))

    def stop(info):
        raise KeyboardInterrupt

    report = api.train(data, horizon=6, lookback=12, hidden=8, run_dir=tmp_path / "run", progress=stop,
                       train_config=replace(TINY, epochs=3, max_steps=None))
    assert report.metrics["stopped"] == "interrupted" and (report.run_dir / "resume.json").is_file()
    original = data.read_bytes()
    data.write_bytes(original.replace(b"2024-01-01", b"2023-12-31", 1))
    result = CliRunner().invoke(app, ["train", "--resume", str(report.run_dir), "--json"])
    assert result.exit_code == 2 and "changed since" in one_error_line(result.stderr)
    assert json.loads(result.stdout)["status"] == "error"
    data.write_bytes(original)
    done = api.resume(report.run_dir)
    assert done.metrics["stopped"] == "completed" and len(done.metrics["history"]) == 3


# --- NaN or infinite loss ----------------------------------------------------------------------------

# Runs the real CLI in a process whose model returns NaN from its n-th training batch on.
NAN_DRIVER = """
import sys
from lstmcast.model import network as model
forward, calls, n = model.LSTMForecaster.forward_origins, [0], int(sys.argv.pop(1))
def poisoned(self, x, *cov):  # cov: calendar features (daily data)
    y = forward(self, x, *cov)
    if self.training:
        calls[0] += 1
        if calls[0] >= n:
            return y * float("nan")
    return y
model.LSTMForecaster.forward_origins = poisoned
from lstmcast.cli import main
main()
"""


@pytest.mark.slow
def test_nan_loss_stops_with_a_clear_error_and_keeps_the_best_weights(cli, daily, tmp_path):
    run = tmp_path / "run"
    result = subprocess.run([sys.executable, "-c", NAN_DRIVER, "26", "train", str(daily), "--run-dir", str(run),
                             "--epochs", "4", "--epoch-steps", "20", *FAST_CLI], capture_output=True, text=True, env=cli.env, timeout=120,
                            check=False)
    assert result.returncode == EXIT_FAILURE, result.stderr
    line = one_error_line(result.stderr)
    assert "training diverged at epoch 2 (loss is nan)" in line and f"(epoch 1) in {run}" in line
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["stopped"] == "diverged" and metrics["best_epoch"] == 1 and len(metrics["history"]) == 1
    weights = load_run(run).model.w
    assert all(np.isfinite(w).all() for w in weights.values())
    assert np.isfinite(api.predict(run).forecast["forecast"]).all()


def test_nan_loss_in_the_first_epoch_writes_nothing_and_keeps_the_old_run(run_copy, trained_run, monkeypatch):
    from typer.testing import CliRunner

    from lstmcast.model import network as model
    from lstmcast.cli.app import app

    before = (run_copy / "run.json").read_bytes()
    def infinite(self, x, *cov):  # [B, K, H] forecasts, all infinite (cov: calendar features)
        return x.new_full((len(x), x.shape[1] - self.config.lookback + 1, self.config.horizon), float("inf"))

    monkeypatch.setattr(model.LSTMForecaster, "forward_origins", infinite)
    result = CliRunner().invoke(app, ["train", str(trained_run.data), "--run-dir", str(run_copy), "--overwrite",
                                      "--epochs", "1", "--hidden", "8", "--device", "cpu"])
    assert result.exit_code == EXIT_FAILURE
    assert "before any epoch finished; no run written" in one_error_line(result.stderr)
    assert (run_copy / "run.json").read_bytes() == before


# --- locks: one writer per run directory or output ----------------------------------------------------


@pytest.mark.slow
def test_second_writer_waits_or_exits_4(cli, daily, trained_run, tmp_path):
    run = tmp_path / "run"
    output = tmp_path / "out" / "fc.csv"
    with locking.hold(run):  # as another lstmcast writing this run directory would
        busy = cli("train", daily, "--run-dir", run, "--epochs", "1", *FAST_CLI)
        assert busy.returncode == EXIT_BUSY
        line = one_error_line(busy.stderr)
        assert f"run directory {run} is in use by another lstmcast process" in line and "--wait" in line
        assert not run.exists()
    with locking.hold(output):
        busy = cli("predict", "--run", trained_run.run_dir, "--output", output, "--json")
        assert busy.returncode == EXIT_BUSY and "in use" in one_error_line(busy.stderr)
        summary = json.loads(busy.stdout)  # --json: the error as one object on stdout too
        assert (summary["command"], summary["status"], summary["exit_code"]) == ("predict", "error", EXIT_BUSY)
        assert summary["error"] == busy.stderr.strip().removeprefix("lstmcast: error: ")
        waiting = cli.start("predict", "--run", trained_run.run_dir, "--output", output, "--wait", "60", "-q")
        time.sleep(0.5)  # not an assertion: the waiter succeeds whenever the lock is released
    assert waiting.wait(timeout=120) == 0, waiting.stderr.read()
    assert len(pd.read_csv(output)) == 2 * trained_run.horizon
    assert visible(output.parent) == ["fc.csv"] and not locking.lock_path(output).exists()


@pytest.mark.slow
def test_same_target_exits_4_other_targets_run_in_parallel_and_ctrl_c_stops_cleanly(cli, daily, tmp_path):
    import os

    first = cli.start("train", daily, "--run-dir", tmp_path / "a", "--epochs", "8", *FAST_CLI)
    other = cli.start("train", daily, "--run-dir", tmp_path / "b", "--epochs", "1", *FAST_CLI, "-q")
    wait_for_line(first, "epoch 1/")
    os.kill(first.pid, signal.SIGSTOP)  # frozen while it holds the lock of run directory a
    try:
        same = cli("train", daily, "--run-dir", tmp_path / "a", "--overwrite", "--epochs", "1", *FAST_CLI, "-q")
        assert same.returncode == EXIT_BUSY
        assert f"run directory {tmp_path / 'a'} is in use by another lstmcast process" in one_error_line(same.stderr)
        assert other.wait(timeout=120) == 0, other.stderr.read()  # a different run directory does not wait
        load_run(tmp_path / "b")
    finally:
        first.send_signal(signal.SIGINT)  # Ctrl-C, delivered when it runs again
        os.kill(first.pid, signal.SIGCONT)
    _, err = first.communicate(timeout=120)
    assert first.returncode == EXIT_SIGINT, err
    assert "stopped by Ctrl-C" in err and f"continue with: lstmcast train --resume {tmp_path / 'a'}" in err
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["stopped"] == "interrupted"
    assert (tmp_path / "a" / "resume.json").is_file()
    load_run(tmp_path / "a")


# --- SIGKILL at random moments: the previous complete file or the new complete one ---------------------


@pytest.mark.slow
def test_sigkill_during_train_leaves_old_or_new_complete_run(cli, daily, tmp_path):
    from conftest import TINY

    run = tmp_path / "runs" / "r"
    tiny = replace(TINY, batch_size=32, max_steps=None)
    api.train(daily, horizon=6, lookback=12, hidden=8, run_dir=run, train_config=tiny)  # the previous run
    rng = random.Random(7)
    for seed in range(2):
        proc = cli.start("train", daily, "--run-dir", run, "--overwrite", "--epochs", "1", "--seed", seed, *FAST_CLI)
        if seed == 0:
            time.sleep(rng.uniform(0.0, 1.5))  # anywhere in start-up
        else:
            wait_for_line(proc, "epoch 1/1")  # training done: validation metrics and the writes follow
            time.sleep(rng.uniform(0.0, 0.15))
        proc.kill()
        proc.wait()
        assert visible(run.parent) == ["r"]
        load_run(run)  # complete: metadata and weights agree
        assert visible(run) == RUN_FILES
        json.loads((run / "metrics.json").read_text())
    api.train(daily, horizon=6, lookback=12, hidden=8, run_dir=run, train_config=tiny, overwrite=True)
    assert sorted(p.name for p in run.parent.iterdir()) == ["r"], "temporary files of killed runs are cleaned up"


@pytest.mark.slow
def test_sigkill_during_predict_leaves_old_or_new_complete_file(cli, trained_run, tmp_path):
    output = tmp_path / "forecasts" / "today.csv"
    started = time.monotonic()
    first = cli("predict", "--run", trained_run.run_dir, "--output", output, "-q")
    duration = time.monotonic() - started
    assert first.returncode == 0, first.stderr
    rng = random.Random(11)
    for _ in range(4):
        proc = cli.start("predict", "--run", trained_run.run_dir, "--output", output, "--horizon", "400", "-q")
        time.sleep(rng.uniform(0.3, 1.3) * duration)
        proc.kill()
        proc.wait()
        assert visible(output.parent) == ["today.csv"]
        frame = pd.read_csv(output)
        assert len(frame) in (2 * trained_run.horizon, 2 * 400), len(frame)  # old or new, never a part
        assert list(frame.columns) == ["series", "timestamp", "forecast"] and frame["forecast"].notna().all()
    final = cli("predict", "--run", trained_run.run_dir, "--output", output, "-q")
    assert final.returncode == 0
    assert sorted(p.name for p in output.parent.iterdir()) == ["today.csv"]
