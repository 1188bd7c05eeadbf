"""Run directories are untrusted input, checked with real `lstmcast` processes: a pickle that
would run code, truncated or corrupt files, a newer format, shapes that do not fit: exit 3,
one line naming the file, and the code never runs."""

from __future__ import annotations

import pytest

import json
import pickle
import shutil
from pathlib import Path

from lstmcast.errors import EXIT_RUN


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
