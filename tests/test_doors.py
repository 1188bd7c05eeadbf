"""One door out (issue 29), with real `lstmcast` processes and real files: every command that writes
goes through `run.output.Door`, and what it refuses, it refuses the same way for each of them.

One test per class: the run's own files as an output; links planted at names lstmcast or the data
chose; `runs prune` whole or gone; one line instead of a traceback (an output under a regular file,
malformed metrics, non-finite or absurd sizes, tampered run.json sizes); a reader that closes
stdout; `--data` that is a pipe."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
from conftest import FAST_CLI, HAS_MATPLOTLIB, wide_frame, write_frame

from lstmcast.errors import EXIT_INPUT, EXIT_PIPE, EXIT_RUN
from lstmcast.run import rundir

pytestmark = [pytest.mark.skipif(sys.platform == "win32", reason="symbolic links, FIFOs, pipes"), pytest.mark.slow]
needs_matplotlib = pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib is not installed")


def one_error(proc_or_result, code: int, stderr: str | None = None) -> str:
    """The one `lstmcast: error:` line of a finished process that had to exit with `code`."""
    returncode = proc_or_result.returncode
    err = proc_or_result.stderr if stderr is None else stderr
    assert returncode == code, err
    lines = [line for line in err.strip().splitlines() if line.startswith("lstmcast: error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def finish(procs: dict, timeout: float = 120) -> dict:
    """name -> (returncode, stdout, stderr) of processes started together."""
    done = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=timeout)
        done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return done


def snapshot(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and not p.is_symlink()}


def test_no_command_writes_over_a_runs_own_files(cli, trained_run, run_copy, tmp_path):
    """detect, predict, evaluate and a backtest refuse run.json, weights, config.toml, metrics.json and
    loss.png with exit 2, named plainly, through a link, `..`, a relative path inside the run or a hard link."""
    link = tmp_path / "innocent.csv"
    link.symlink_to(run_copy / "weights.safetensors")
    hard = tmp_path / "hard.csv"
    os.link(run_copy / "config.toml", hard)
    other = tmp_path / "other-run"  # any lstmcast run's files, not only --run's
    shutil.copytree(trained_run.run_dir, other)
    before, other_before = snapshot(run_copy), snapshot(other)
    data = trained_run.data
    cases = {
        "detect run.json": (["detect", "--run", run_copy, "--data", data, "--output", run_copy / "run.json"], None),
        "detect link": (["detect", "--run", run_copy, "--data", data, "--output", link], None),
        "detect relative": (["detect", "--run", ".", "--data", data, "--output", "./weights.safetensors"], run_copy),
        "detect metrics via ..": (["detect", "--run", run_copy, "--data", data, "--output",
                                   run_copy / ".." / run_copy.name / "metrics.json"], None),
        "detect hard link": (["detect", "--run", run_copy, "--data", data, "--output", hard], None),
        "detect other run": (["detect", "--run", run_copy, "--data", data, "--output", other / "run.json"], None),
        "predict config": (["predict", "--run", ".", "--output", "config.toml"], run_copy),
        "predict hard link": (["predict", "--run", run_copy, "--output", hard], None),
        "evaluate loss.png": (["evaluate", "--run", run_copy, "--data", data, "--output", run_copy / "loss.png"], None),
        "backtest metrics": (["evaluate", "--run", run_copy, "--data", data, "--backtest", "--folds", "1",
                              "--output", run_copy / "metrics.json"], None),
    }
    procs = {name: cli.start(*args, cwd=cwd) for name, (args, cwd) in cases.items()}
    for name, result in finish(procs).items():
        line = one_error(result, EXIT_INPUT)
        assert "destroy the run" in line, (name, line)
    assert snapshot(run_copy) == before and snapshot(other) == other_before
    assert link.is_symlink() and hard.read_bytes() == before["config.toml"]
    # Each command's own default stays allowed.
    for args in (["predict", "--run", run_copy, "--output", run_copy / "forecast.csv", "-q"],
                 ["detect", "--run", run_copy, "--data", data, "--output", run_copy / "anomalies.csv", "-q"]):
        done = cli(*args)
        assert done.returncode == 0, done.stderr


@needs_matplotlib
def test_names_lstmcast_or_the_data_chose_are_never_followed(cli, trained_run, tmp_path):
    """A link planted at a default output or at a plot named after a series is refused, never followed;
    a series named `loss` plotted into the run never replaces the run's loss.png."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    run = tmp_path / "run"
    shutil.copytree(trained_run.run_dir, run)
    (run / "anomalies.csv").symlink_to(victim)
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "a.png").symlink_to(victim)  # series 'a' of the data
    loss = tmp_path / "loss.csv"  # the series are called loss and b
    write_frame(loss, pd.read_csv(trained_run.data).rename(columns={"a": "loss"}))
    loss_png = (run / "loss.png").read_bytes()
    data, out = trained_run.data, tmp_path / "out"
    procs = {
        "detect default": cli.start("detect", "--run", run, "--data", data),
        "detect plot": cli.start("detect", "--run", run, "--data", data, "--output", out / "d.csv", "--plot", plots),
        "predict plot": cli.start("predict", "--run", run, "--output", out / "p.csv", "--plot", plots),
        "evaluate plot": cli.start("evaluate", "--run", run, "--data", data, "--plot", plots),
        "backtest plot": cli.start("evaluate", "--run", run, "--data", data, "--backtest", "--folds", "1",
                                   "--plot", plots),
    }
    done = finish(procs)
    line = one_error(done.pop("detect default"), EXIT_RUN)
    assert str(run / "anomalies.csv") in line and "symbolic link" in line and "--output" in line, line
    for name, result in done.items():
        line = one_error(result, EXIT_INPUT)
        assert str(plots / "a.png") in line and "symbolic link" in line and "--plot" in line, (name, line)
    assert victim.read_text() == "precious\n" and (plots / "a.png").is_symlink()
    (run / "anomalies.csv").unlink()
    # Series `loss` plotted into the run directory: a file of its own, never the run's loss.png.
    procs = {"predict": cli.start("predict", "--run", run, "--data", loss, "--output", out / "l.csv", "--plot", run),
             "detect": cli.start("detect", "--run", run, "--data", loss, "--output", out / "ld.csv", "--plot", run)}
    for name, result in finish(procs).items():
        assert result.returncode == 0, (name, result.stderr)
    assert (run / "loss.png").read_bytes() == loss_png
    assert len([p for p in run.iterdir() if p.name.startswith("loss-") and p.suffix == ".png"]) == 1
    rundir.load_run(run)


def test_prune_leaves_each_run_whole_or_gone(cli, trained_run, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    for k in range(1, 5):
        shutil.copytree(trained_run.run_dir, runs / f"r{k}")
        meta = json.loads((runs / f"r{k}" / "run.json").read_text())
        meta["created"] = f"2026-01-0{k}T00:00:00+00:00"
        (runs / f"r{k}" / "run.json").write_text(json.dumps(meta))
    blocked = runs / "r1"
    (blocked / "loss.png").unlink(missing_ok=True)
    (blocked / "loss.png").mkdir()  # a directory named like lstmcast's file: not lstmcast's to delete
    (blocked / "loss.png" / "keep.txt").write_text("mine")
    before = snapshot(blocked)
    (runs / "r2" / "notes.txt").write_text("mine")
    (runs / "broken").mkdir()
    (runs / "broken" / "run.json").write_text("{not json")
    done = cli("runs", "prune", runs, "--keep", "1")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert done.stdout.strip() == f"deleted 2 runs, kept 1 in {runs}"
    lines = done.stderr.strip().splitlines()
    assert any(str(blocked) in line and "left whole" in line and "loss.png" in line for line in lines), lines
    assert any(str(runs / "broken") in line and "skipped" in line for line in lines), lines
    assert snapshot(blocked) == before and rundir.load_run(blocked)  # whole: every file in place, loadable
    assert sorted(p.name for p in (runs / "r2").iterdir()) == ["notes.txt"]  # gone: only the user's file stays
    assert sorted(p.name for p in runs.iterdir()) == ["broken", "r1", "r2", "r4"]  # no temporary left


def test_one_line_instead_of_a_traceback(cli, trained_run, run_copy, tmp_path):
    """An output under a regular file, for every command that writes; malformed metrics in `runs list`;
    non-finite or absurd training sizes; tampered run.json sizes: one line, the documented code."""
    afile = tmp_path / "afile"
    afile.write_text("x\n")
    data = trained_run.data
    runs = tmp_path / "runs"
    runs.mkdir()
    listed = runs / "listed"
    shutil.copytree(trained_run.run_dir, listed)
    metrics = json.loads((listed / "metrics.json").read_text())
    metrics["validation"]["mae"] = "not a number"
    (listed / "metrics.json").write_text(json.dumps(metrics))
    tampered = tmp_path / "tampered"
    shutil.copytree(trained_run.run_dir, tampered)
    meta = json.loads((tampered / "run.json").read_text())
    meta["train"]["ensemble"] = 1_000_000
    (tampered / "run.json").write_text(json.dumps(meta))
    procs = {
        "predict": cli.start("predict", "--run", run_copy, "--output", afile / "fc.csv"),
        "detect": cli.start("detect", "--run", run_copy, "--data", data, "--output", afile / "a" / "d.csv"),
        "evaluate": cli.start("evaluate", "--run", run_copy, "--data", data, "--output", afile / "m.json"),
        "backtest": cli.start("evaluate", "--run", run_copy, "--data", data, "--backtest", "--output", afile / "b.json"),
        "plot": cli.start("predict", "--run", run_copy, "--output", tmp_path / "p.csv", "--plot", afile / "plots"),
        "time limit": cli.start("train", data, "--run-dir", tmp_path / "t1", "--time-limit", "inf", *FAST_CLI),
        "wait": cli.start("predict", "--run", run_copy, "--wait", "inf"),
        "refit": cli.start("evaluate", "--run", tampered, "--data", data, "--backtest", "--refit", "--folds", "1"),
        "refit-every": cli.start("detect", "--run", tampered, "--data", data, "--refit-every", "60"),
        "predict tampered": cli.start("predict", "--run", tampered, "--output", tmp_path / "t.csv"),
    }
    done = finish(procs, timeout=60)  # a refit of a million members would run until killed
    for name in ("predict", "detect", "evaluate", "backtest", "plot"):
        line = one_error(done[name], EXIT_INPUT)
        assert f"{afile} is a file, not a directory" in line, (name, line)
    assert afile.read_text() == "x\n" and not (tmp_path / "p.csv").exists()  # --plot is checked before any work
    assert "--time-limit inf: not a finite number" in one_error(done["time limit"], EXIT_INPUT)
    assert not (tmp_path / "t1").exists()
    assert "--wait inf" in one_error(done["wait"], EXIT_INPUT)
    for name in ("refit", "refit-every", "predict tampered"):
        line = one_error(done[name], EXIT_RUN)
        assert str(tampered / "run.json") in line and "'train.ensemble'" in line, (name, line)
    listed_out = cli("runs", "list", runs)
    assert listed_out.returncode == 0 and "Traceback" not in listed_out.stderr, listed_out.stderr
    assert listed_out.stdout.startswith(f"{listed}\t") and "val MAE n/a" in listed_out.stdout
    assert f"{listed / 'metrics.json'}: field 'validation' is malformed" in listed_out.stderr


def test_threads_are_bounded_by_the_cpus_and_a_note_says_so(cli, trained_run, tmp_path, subprocess_env):
    cli.env = {k: v for k, v in subprocess_env.items() if k != "OMP_NUM_THREADS"}
    done = cli("train", trained_run.data, "--run-dir", tmp_path / "run", "--threads", "10000", "--epochs", "1",
               "--max-steps", "2", *FAST_CLI)
    assert done.returncode == 0, done.stderr
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = json.loads((tmp_path / "run" / "metrics.json").read_text())["threads"]
    assert 1 <= threads <= cpus
    assert f"--threads 10000: this process may use {threads} CPU" in done.stderr, done.stderr


def test_a_reader_that_closes_stdout_ends_it_quietly(cli, trained_run, tmp_path):
    """`lstmcast ... --output - | head -1`, the reader gone before the first write: exit 141, as cat, no text."""
    runs = tmp_path / "runs"
    runs.mkdir()
    shutil.copytree(trained_run.run_dir, runs / "r")
    data, run = trained_run.data, trained_run.run_dir
    commands = {
        "predict": ["predict", "--run", run, "--output", "-"],
        "detect": ["detect", "--run", run, "--data", data, "--output", "-"],
        "evaluate": ["evaluate", "--run", run, "--data", data, "--output", "-"],
        "backtest": ["evaluate", "--run", run, "--data", data, "--backtest", "--folds", "1", "--output", "-"],
        "runs list": ["runs", "list", runs],
        "summary": ["predict", "--run", run, "--output", tmp_path / "fc.csv", "--json"],
    }
    procs = {}
    for name, args in commands.items():
        read_end, write_end = os.pipe()
        os.close(read_end)
        procs[name] = subprocess.Popen(cli.args(*args), stdout=write_end, stderr=subprocess.PIPE, text=True,
                                       env=cli.env)
        os.close(write_end)
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == EXIT_PIPE, (name, err)
        assert "error" not in err and "Traceback" not in err and "Broken pipe" not in err, (name, err)
    # Through a real `head -1`: the first line arrives, and lstmcast ends quietly.
    shell = subprocess.run(["bash", "-c", 'set -o pipefail; "$0" predict --run "$1" --output - --horizon 600 '
                            '| head -1', cli.exe, str(run)], capture_output=True, text=True, env=cli.env, timeout=120)
    assert shell.stdout == "series,timestamp,forecast\n" and shell.stderr == "", shell.stderr
    assert shell.returncode in (0, EXIT_PIPE)


def test_data_from_a_pipe_is_read_once(cli, trained_run, tmp_path):
    """`--data <(cat file.csv)` for every command that reads data: the same result as the file."""
    data, run = trained_run.data, trained_run.run_dir
    out = tmp_path / "out"
    script = " & ".join([
        f'"$L" predict --run "$R" --data <(cat "$D") --output {out}/p-pipe.csv -q',
        f'"$L" predict --run "$R" --data "$D" --output {out}/p-file.csv -q',
        f'"$L" detect --run "$R" --data <(cat "$D") --output {out}/d-pipe.csv -q',
        f'"$L" detect --run "$R" --data "$D" --output {out}/d-file.csv -q',
        f'"$L" evaluate --run "$R" --data <(cat "$D") --output {out}/e-pipe.json -q',
        f'"$L" evaluate --run "$R" --data "$D" --output {out}/e-file.json -q',
    ]) + f' & cat "$D" | "$L" train /dev/stdin --run-dir {out}/run {" ".join(FAST_CLI)} --epochs 1 --max-steps 2 -q'
    done = subprocess.run(["bash", "-c", script + "; wait"], capture_output=True, text=True, timeout=180,
                          env={**cli.env, "L": cli.exe, "R": str(run), "D": str(data)})
    assert done.returncode == 0 and done.stderr == "", done.stderr
    for name in ("p", "d", "e"):
        suffix = "json" if name == "e" else "csv"
        assert (out / f"{name}-pipe.{suffix}").read_text() == (out / f"{name}-file.{suffix}").read_text(), name
    rundir.load_run(out / "run")
    # A named FIFO nobody writes to any more reads as empty: one line, never a hang.
    fifo = tmp_path / "data.fifo"
    os.mkfifo(fifo)
    proc = cli.start("predict", "--run", run, "--data", fifo, "--output", tmp_path / "x.csv")
    threading.Thread(target=lambda: open(fifo, "w").close(), daemon=True).start()  # a writer that writes nothing
    _, err = proc.communicate(timeout=60)
    assert "the file is empty" in one_error(proc, EXIT_INPUT, err)
