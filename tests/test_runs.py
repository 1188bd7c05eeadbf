"""`lstmcast runs list|latest|prune`: only lstmcast runs are listed, and pruning deletes
nothing lstmcast did not write."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lstmcast.run import locking
from lstmcast.cli.app import app
from lstmcast.errors import EXIT_INPUT, EXIT_RUN


def invoke(*args: object, code: int = 0):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == code, (result.exit_code, result.output)
    return result


def make_run(trained_run, parent: Path, name: str, created: str, stopped: str = "completed") -> Path:
    run = parent / name
    shutil.copytree(trained_run.run_dir, run)
    meta = json.loads((run / "run.json").read_text())
    meta["created"] = created
    (run / "run.json").write_text(json.dumps(meta))
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["stopped"] = stopped
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


@pytest.fixture
def runs_dir(trained_run, tmp_path: Path) -> Path:
    parent = tmp_path / "runs"
    parent.mkdir()
    for day, stopped in ((1, "completed"), (2, "early_stopping"), (3, "max_steps"), (4, "diverged"),
                         (5, "interrupted")):
        make_run(trained_run, parent, f"sales-2026-01-0{day}", f"2026-01-0{day}T01:00:00+00:00", stopped)
    (parent / "sales-2026-01-01" / "notes.txt").write_text("mine")  # a user's file in an old run
    (parent / "photos").mkdir()
    (parent / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    (parent / "broken").mkdir()
    (parent / "broken" / "run.json").write_text("{not json")
    (parent / "README.txt").write_text("not a run")
    return parent


def test_list_shows_only_runs_newest_first(runs_dir):
    listed = json.loads(invoke("runs", "list", runs_dir, "--json").stdout)["runs"]
    assert [Path(r["path"]).name for r in listed] == [f"sales-2026-01-0{d}" for d in (5, 4, 3, 2, 1)]
    assert [r["finished"] for r in listed] == [False, False, True, True, True]
    text = invoke("runs", "list", runs_dir).stdout
    assert "interrupted" in text and "photos" not in text and "broken" not in text


def test_latest_is_the_newest_finished_run(runs_dir):
    assert invoke("runs", "latest", runs_dir).stdout.strip() == str(runs_dir / "sales-2026-01-03")
    empty = runs_dir / "photos"
    result = invoke("runs", "latest", empty, code=EXIT_RUN)
    assert "no finished lstmcast run" in result.stderr


def test_prune_keeps_the_newest_and_deletes_only_lstmcast_files(runs_dir):
    summary = json.loads(invoke("runs", "prune", runs_dir, "--keep", "2", "--json").stdout)
    # The two newest, and the newest finished one (03), stay; 02 goes; 01 keeps the user's file.
    assert sorted(Path(p).name for p in summary["kept"]) == ["sales-2026-01-03", "sales-2026-01-04", "sales-2026-01-05"]
    assert sorted(Path(p).name for p in summary["deleted"]) == ["sales-2026-01-01", "sales-2026-01-02"]
    assert sorted(p.name for p in runs_dir.iterdir()) == [
        "README.txt", "broken", "photos", "sales-2026-01-01", "sales-2026-01-03", "sales-2026-01-04", "sales-2026-01-05"]
    assert [p.name for p in (runs_dir / "sales-2026-01-01").iterdir()] == ["notes.txt"]
    assert (runs_dir / "photos" / "cat.jpg").exists() and (runs_dir / "broken" / "run.json").exists()
    assert any("notes.txt" in note for note in summary["notes"])


def test_prune_leaves_a_run_in_use_alone(runs_dir):
    busy = runs_dir / "sales-2026-01-02"
    with locking.hold(busy):
        result = invoke("runs", "prune", runs_dir, "--keep", "3")
    assert busy.is_dir() and (busy / "run.json").exists()
    assert "in use" in result.stderr and "deleted 1 runs" in result.stdout


def test_runs_errors(tmp_path):
    assert "directory not found" in invoke("runs", "list", tmp_path / "nope", code=EXIT_INPUT).stderr
    invoke("runs", "prune", tmp_path, "--keep", "0", code=EXIT_INPUT)
