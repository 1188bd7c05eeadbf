"""Run directories are untrusted input, checked with real `lstmcast` processes: a pickle that
would run code, truncated or corrupt files, a newer format, shapes that do not fit, every field
of run.json spoilt, weights and resume state that are devices or FIFOs: exit 3, one line naming
the file (and the field), never NaN, never a hang. Config files and horizons are bounded too."""

from __future__ import annotations

import pytest

import json
import os
import pickle
import shutil
import subprocess
from pathlib import Path

import numpy as np

from lstmcast.errors import EXIT_INPUT, EXIT_RUN


class _CreatesFile:
    """Unpickling this calls open(path, 'w'): code execution on load."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    for key, value in changes.items():
        target = data
        *parents, last = key.split("__")
        for parent in parents:
            target = target[parent]
        target[last] = value
    path.write_text(json.dumps(data))


@pytest.mark.slow
def test_hostile_run_directories_exit_3_naming_the_file(cli, trained_run, tmp_path):
    marker = tmp_path / "pwned"
    cases = {
        "pickle": ("weights.safetensors", lambda run: (run / "weights.safetensors").write_bytes(
            pickle.dumps({"lstm.weight_ih_l0": _CreatesFile(marker)}))),
        "truncated weights": ("weights.safetensors", lambda run: (run / "weights.safetensors").write_bytes(
            (run / "weights.safetensors").read_bytes()[:100])),
        "corrupt json": ("run.json", lambda run: (run / "run.json").write_text('{"format_version": 1, "mod')),
        "newer format": ("run.json", lambda run: edit_json(run / "run.json", format_version=99)),
        "shapes": ("weights.safetensors", lambda run: edit_json(run / "run.json", model__hidden=16)),
    }
    running = []
    for name, (culprit, spoil) in cases.items():
        run = tmp_path / name.replace(" ", "-")
        shutil.copytree(trained_run.run_dir, run)
        spoil(run)
        out = tmp_path / f"{run.name}.csv"
        commands = [["predict", "--run", run, "--output", out]]
        if name == "pickle":
            commands.append(["evaluate", "--run", run, "--data", trained_run.data])
        running += [(name, run / culprit, out, cli.start(*args)) for args in commands]  # all at once
    for name, culprit, out, proc in running:
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == EXIT_RUN, (name, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("lstmcast: error: "), (name, stderr)
        assert str(culprit) in lines[0], (name, lines[0])
        assert "Traceback" not in stderr and not out.exists()
    assert not marker.exists(), "loading a run must never unpickle"
    # The payload is real: unpickling it does create the file.
    pickle.loads(pickle.dumps(_CreatesFile(marker))).close()
    assert marker.exists()


# --- every field of run.json, and the files beside it ------------------------------------------------


def _series(**changes):
    """A spoiler for run.json's first series: its fields changed, or removed where the value is DROP."""
    def spoil(run: Path) -> None:
        data = json.loads((run / "run.json").read_text())
        for key, value in changes.items():
            if value is DROP:
                del data["series"][0][key]
            else:
                data["series"][0][key] = value(data["series"][0][key]) if callable(value) else value
        (run / "run.json").write_text(json.dumps(data))  # NaN and Infinity as JSON's extension spells them
    return spoil


DROP = object()


def _weights(name: str, value: float):
    def spoil(run: Path) -> None:
        from safetensors.numpy import load_file, save_file

        tensors = load_file(str(run / "weights.safetensors"))
        tensors[name] = np.full_like(tensors[name], value)
        save_file(tensors, str(run / "weights.safetensors"))
    return spoil


def _nested(run: Path) -> None:
    (run / "run.json").write_text("[" * 100_000 + "]" * 100_000)


def _replace_weights(make):
    def spoil(run: Path) -> None:
        (run / "weights.safetensors").unlink()
        make(run / "weights.safetensors")
    return spoil


# name: (spoil the copy, the file the message names, what else it must name)
RUN_CASES = {
    "scale NaN": (_series(scale=float("nan")), "run.json", "scale"),
    "center Infinity": (_series(center=float("inf")), "run.json", "center"),
    "NaN in a tail": (_series(tail=lambda t: t[:3] + [float("nan")] + t[4:]), "run.json", "tail"),
    "no tail": (_series(tail=DROP), "run.json", "tail"),
    "short tail": (_series(tail=lambda t: t[:5]), "run.json", "tail"),
    "last_time garbage": (_series(last_time="garbage"), "run.json", "last_time"),
    "freq zz": (lambda run: edit_json(run / "run.json", data__freq="zz"), "run.json", "freq"),
    "no series": (lambda run: edit_json(run / "run.json", series=[]), "run.json", "series"),
    "layers 1e9": (lambda run: edit_json(run / "run.json", model__layers=1e9), "run.json", "layers"),
    "hidden 1e9": (lambda run: edit_json(run / "run.json", model__hidden=10**9), "run.json", "hidden"),
    "lookback 1e9": (lambda run: edit_json(run / "run.json", model__lookback=10**9), "run.json", "lookback"),
    "horizon 1e9": (lambda run: edit_json(run / "run.json", model__horizon=10**9), "run.json", "horizon"),
    "nested arrays": (_nested, "run.json", "nested"),
    "head.bias NaN": (_weights("head.bias", float("nan")), "weights.safetensors", "head.bias"),
    "weights -> /dev/zero": (_replace_weights(lambda p: p.symlink_to("/dev/zero")), "weights.safetensors",
                             "not a regular file"),
    "weights -> /dev/urandom": (_replace_weights(lambda p: p.symlink_to("/dev/urandom")), "weights.safetensors",
                                "not a regular file"),
    "weights FIFO": (_replace_weights(os.mkfifo), "weights.safetensors", "not a regular file"),
}


@pytest.mark.slow
def test_every_spoilt_field_of_a_run_exits_3_naming_file_and_field(cli, trained_run, tmp_path):
    running = []
    for name, (spoil, culprit, field) in RUN_CASES.items():
        run = tmp_path / name.replace(" ", "_").replace("/", "_").replace(">", "")
        shutil.copytree(trained_run.run_dir, run)
        spoil(run)
        out = tmp_path / f"{run.name}.csv"
        running.append((name, run / culprit, field, out, cli.start("predict", "--run", run, "--output", out)))
    for name, culprit, field, out, proc in running:
        try:
            _, stderr = proc.communicate(timeout=90)  # a FIFO nobody writes must not hang predict
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"{name}: predict hung")
        assert proc.returncode == EXIT_RUN, (name, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("lstmcast: error: "), (name, stderr)
        assert str(culprit) in lines[0] and field in lines[0], (name, lines[0])
        assert "Traceback" not in stderr and not out.exists(), name


@pytest.mark.slow
def test_a_forecast_that_is_not_finite_is_an_error_never_a_csv(cli, trained_run, tmp_path):
    """Finite weights that overflow float32 on the way: exit 3 naming the run and the series."""
    run = tmp_path / "overflow"
    shutil.copytree(trained_run.run_dir, run)
    _weights("skip.weight", 3e38)(run)
    out = tmp_path / "fc.csv"
    procs = [cli.start("predict", "--run", run, "--output", out),
             cli.start("evaluate", "--run", run, "--data", trained_run.data)]
    for proc in procs:
        _, stderr = proc.communicate(timeout=90)
        assert proc.returncode == EXIT_RUN, stderr
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"lstmcast: error: {run}: the forecast of series 'a' "), stderr
    assert not out.exists()


@pytest.mark.slow
def test_resume_state_is_read_only_from_regular_files(cli, trained_run, tmp_path):
    cases = {
        "json FIFO": (lambda run: os.mkfifo(run / "resume.json"), "resume.json"),
        "json -> /dev/zero": (lambda run: (run / "resume.json").symlink_to("/dev/zero"), "resume.json"),
        "nested json": (lambda run: (run / "resume.json").write_text("[" * 100_000 + "]" * 100_000), "resume.json"),
        "tensors -> /dev/urandom": (lambda run: ((run / "resume.json").write_text('{"state_version": 1}'),
                                                 (run / "resume.safetensors").symlink_to("/dev/urandom")),
                                    "resume.safetensors"),
        "tensors FIFO": (lambda run: ((run / "resume.json").write_text('{"state_version": 1}'),
                                      os.mkfifo(run / "resume.safetensors")), "resume.safetensors"),
    }
    running = []
    for name, (spoil, culprit) in cases.items():
        run = tmp_path / name.replace(" ", "_").replace("/", "_").replace(">", "")
        shutil.copytree(trained_run.run_dir, run)
        spoil(run)
        running.append((name, run / culprit, cli.start("train", "--resume", run)))
    for name, culprit, proc in running:
        try:
            _, stderr = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"{name}: train --resume hung")
        assert proc.returncode == EXIT_RUN, (name, stderr)
        lines = [line for line in stderr.strip().splitlines() if line.startswith("lstmcast: error: ")]
        assert len(lines) == 1 and str(culprit) in lines[0], (name, stderr)
        assert "Traceback" not in stderr, name


@pytest.mark.slow
def test_config_files_nested_or_with_booleans_for_numbers_exit_2(cli, trained_run, tmp_path):
    nested = tmp_path / "nested.toml"
    nested.write_text("horizon = " + "[" * 5000 + "]" * 5000 + "\n")
    flag = tmp_path / "flag.toml"
    flag.write_text("[predict]\nhorizon = true\n")
    fraction = tmp_path / "fraction.toml"
    fraction.write_text("[predict]\nhorizon = 2.5\n")
    out = tmp_path / "fc.csv"
    for path, what in ((nested, "nested too deeply"), (flag, "horizon = true: true/false is not an integer"),
                       (fraction, "horizon = 2.5: not an integer")):
        result = cli("predict", "--run", trained_run.run_dir, "--config", path, "--output", out)
        assert result.returncode == EXIT_INPUT, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("lstmcast: error: ") and str(path) in lines[0], result.stderr
        assert what in lines[0], lines[0]
    assert not out.exists()


@pytest.mark.slow
def test_a_horizon_beyond_any_use_is_refused_up_front(cli, trained_run, tmp_path):
    out = tmp_path / "fc.csv"
    result = cli("predict", "--run", trained_run.run_dir, "--horizon", "1000000000", "--output", out, timeout=60)
    assert result.returncode == EXIT_INPUT, result.stderr
    limit = 100 * trained_run.horizon
    assert result.stderr.strip() == (
        f"lstmcast: error: --horizon 1000000000: beyond the limit of {limit} steps (100 x the trained horizon "
        f"{trained_run.horizon}, at most 1,000,000); forecast fewer steps, or train a run with a longer --horizon")
    assert not out.exists()
    at_limit = cli("predict", "--run", trained_run.run_dir, "--horizon", str(limit), "--output", out, "-q")
    assert at_limit.returncode == 0 and len(out.read_text().splitlines()) == 1 + 2 * limit, at_limit.stderr


@pytest.mark.slow
def test_runs_list_and_latest_never_hang_on_fifos(cli, trained_run, tmp_path):
    runs = tmp_path / "runs"
    good, fifo_metrics, fifo_record = runs / "good", runs / "fifo-metrics", runs / "fifo-record"
    for run in (good, fifo_metrics, fifo_record):
        shutil.copytree(trained_run.run_dir, run)
    (fifo_metrics / "metrics.json").unlink()
    os.mkfifo(fifo_metrics / "metrics.json")
    (fifo_record / "run.json").unlink()
    os.mkfifo(fifo_record / "run.json")
    listed = cli("runs", "list", runs, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert sorted(line.split("\t")[0] for line in listed.stdout.splitlines()) == [str(fifo_metrics), str(good)]
    latest = cli("runs", "latest", runs, timeout=60)
    assert latest.returncode == 0 and latest.stdout.strip() == str(good), latest.stderr
