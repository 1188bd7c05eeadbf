"""Atomic outputs, proven by killing a forked writer at every step of a write (os._exit: no
cleanup runs, as with SIGKILL), and the path rules: what is refused, created and never deleted."""

from __future__ import annotations

import json
import os
from dataclasses import replace
import stat
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import RUN_FILES

from lstmcast.run import rundir
from lstmcast.run import atomic
from lstmcast.run.rundir import load_run
from lstmcast.cli.app import app
from lstmcast.errors import EXIT_INPUT, EXIT_RUN

pytestmark = pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "win32", reason="needs fork")

SAVED_FILES = ["config.toml", "metrics.json", "run.json", "weights.safetensors"]  # what the test's save_run writes


def die_at(k: int, write, patch: list[tuple[object, str]]) -> bool:
    """Run `write()` in a forked child that dies at the k-th call of the patched functions.

    Returns True when the write finished before reaching the k-th call.
    """
    pid = os.fork()
    if pid == 0:  # the child: no pytest machinery, no cleanup on death
        calls = [0]
        for owner, name in patch:
            original = getattr(owner, name)

            def wrapped(*args, _original=original, **kwargs):
                calls[0] += 1
                if calls[0] == k:
                    os._exit(9)
                return _original(*args, **kwargs)

            setattr(owner, name, wrapped)
        try:
            write()
        except BaseException:  # noqa: BLE001 -- any failure but the planned death fails the test
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, 9), f"the writer failed instead of dying: {code}"
    return code == 0


def visible(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if not p.name.startswith("."))


@pytest.mark.parametrize("can_exchange", [True, False])
@pytest.mark.slow
def test_run_directory_is_old_or_new_whenever_the_writer_dies(run_copy, tmp_path, monkeypatch, can_exchange):
    if not can_exchange:  # a filesystem without renameat2: the two-rename fallback
        monkeypatch.setattr(rundir, "exchange", lambda a, b: False)
    target = tmp_path / "runs" / "r"
    os.renames(run_copy, target)
    (target / "notes.txt").write_text("the user's own file")
    old = load_run(target)
    state = {k: __import__("torch").from_numpy(v.copy()) for k, v in old.model.w.items()}
    new_record = replace(old.record, created="new")
    write = lambda: rundir.save_run(target, state, new_record, {"stopped": "completed"}, overwrite=True,
                                        extra={"config.toml": b"[train]\n"})
    patch = [(rundir, "_write_file"), (rundir, "exchange"), (rundir.os, "replace"),
             (rundir, "fsync_dir"), (rundir, "_link_user_files"), (rundir, "_retire"),
             (rundir.os, "link"), (rundir.os, "unlink"), (rundir.Path, "unlink")]
    seen = set()
    for k in range(1, 60):
        finished = die_at(k, write, patch)
        if can_exchange:
            load_run(target)  # not even a moment without a complete run
        rundir.check_target(target, overwrite=True)  # what the next train does first, under the lock
        run = load_run(target)  # complete at every moment: metadata and weights agree
        seen.add(run.record.created)
        assert run.record.created in (old.record.created, "new")
        assert visible(target.parent) == ["r"]
        assert "notes.txt" in visible(target) and (target / "notes.txt").read_text() == "the user's own file"
        if finished:
            break
    else:
        pytest.fail("the write never finished")
    assert seen == {old.record.created, "new"}
    write()  # the next write under the lock removes what the dead ones left behind
    assert sorted(p.name for p in target.parent.iterdir()) == ["r"]
    assert visible(target) == sorted([*SAVED_FILES, "notes.txt"])


def test_output_file_is_old_or_new_whenever_the_writer_dies(tmp_path):
    target = tmp_path / "out" / "forecast.csv"
    atomic.write_text(target, "old\n")
    patch = [(atomic.os, "fdopen"), (atomic.os, "fsync"), (atomic.os, "replace"), (atomic, "public_mode"), (atomic, "fsync_dir")]
    for k in range(1, 20):
        finished = die_at(k, lambda: atomic.write_text(target, "new\n" * 1000), patch)
        assert target.read_text() in ("old\n", "new\n" * 1000)
        assert visible(target.parent) == ["forecast.csv"]
        if finished:
            break
    assert target.read_text() == "new\n" * 1000
    atomic.clean_stale(target)
    assert [p.name for p in target.parent.iterdir()] == ["forecast.csv"]


def test_outputs_are_readable_by_others_like_a_plain_file(trained_run, run_copy, tmp_path):
    mask = os.umask(0o022)
    try:
        out = tmp_path / "fc.csv"
        assert CliRunner().invoke(app, ["predict", "--run", str(run_copy), "--output", str(out), "-q"]).exit_code == 0
        assert stat.S_IMODE(out.stat().st_mode) == 0o644
        assert stat.S_IMODE(trained_run.run_dir.stat().st_mode) == 0o755
        assert stat.S_IMODE((trained_run.run_dir / "run.json").stat().st_mode) == 0o644
    finally:
        os.umask(mask)


# --- paths -------------------------------------------------------------------------------------------


def train_args(data: Path, run: Path, *extra: str) -> list[str]:
    return ["train", str(data), "--run-dir", str(run), "--epochs", "1", "--max-steps", "2", "--hidden", "8",
            "--device", "cpu", "--horizon", "6", "--lookback", "12", "-q", *extra]


def test_output_directories_are_created(trained_run, tmp_path):
    out = tmp_path / "a" / "b" / "fc.csv"
    assert CliRunner().invoke(app, ["predict", "--run", str(trained_run.run_dir), "--output", str(out)]).exit_code == 0
    assert out.is_file()
    metrics = tmp_path / "c" / "d" / "m.json"
    result = CliRunner().invoke(app, ["evaluate", "--run", str(trained_run.run_dir), "--data", str(trained_run.data),
                                      "--output", str(metrics), "-q"])
    assert result.exit_code == 0 and json.loads(metrics.read_text())["test_size"] == trained_run.horizon
    run = tmp_path / "e" / "f" / "run"
    assert CliRunner().invoke(app, train_args(trained_run.data, run)).exit_code == 0
    load_run(run)


def test_missing_run_gains_no_directory(tmp_path):
    result = CliRunner().invoke(app, ["predict", "--run", str(tmp_path / "typo")])
    assert result.exit_code == EXIT_RUN and not (tmp_path / "typo").exists()


def test_output_that_is_a_directory_is_an_input_error(trained_run, tmp_path):
    result = CliRunner().invoke(app, ["predict", "--run", str(trained_run.run_dir), "--output", str(tmp_path)])
    assert result.exit_code == EXIT_INPUT and "is a directory" in result.stderr


def test_foreign_directory_is_refused_then_joined_never_emptied(trained_run, tmp_path):
    run = tmp_path / "mine"
    run.mkdir()
    (run / "thesis.tex").write_text("precious")
    result = CliRunner().invoke(app, train_args(trained_run.data, run))
    assert result.exit_code == EXIT_INPUT and "not an lstmcast run" in result.stderr and "--overwrite" in result.stderr
    assert visible(run) == ["thesis.tex"]
    assert CliRunner().invoke(app, train_args(trained_run.data, run, "--overwrite")).exit_code == 0
    assert visible(run) == sorted([*RUN_FILES, "thesis.tex"]) and (run / "thesis.tex").read_text() == "precious"
    load_run(run)
    # Replacing that run again keeps the user's file, and drops the old run's forecast (lstmcast wrote it).
    (run / "forecast.csv").write_text("stale")
    assert CliRunner().invoke(app, train_args(trained_run.data, run, "--overwrite")).exit_code == 0
    assert visible(run) == sorted([*RUN_FILES, "thesis.tex"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_empty_directory_becomes_the_run(trained_run, tmp_path):
    run = tmp_path / "empty"
    run.mkdir()
    assert CliRunner().invoke(app, train_args(trained_run.data, run)).exit_code == 0
    assert visible(run) == RUN_FILES


def test_file_in_the_way_of_run_dir_is_refused(trained_run, tmp_path):
    run = tmp_path / "file"
    run.write_text("x")
    result = CliRunner().invoke(app, train_args(trained_run.data, run, "--overwrite"))
    assert result.exit_code == EXIT_RUN and "not a directory" in result.stderr and run.read_text() == "x"
