"""Output paths never destroy what is not ours: real `lstmcast` processes, real devices, FIFOs,
symbolic links and modes.

A device or FIFO is written to, never replaced; a file keeps its mode and owner; a path
inside a run naming one of its own files is refused; a lock file is never opened through a
link; a run directory given as a link is replaced where the link points."""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import threading
from pathlib import Path

import pytest
from conftest import FAST_CLI, RUN_FILES

from lstmcast.errors import EXIT_INPUT, EXIT_RUN
from lstmcast.run import rundir

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="devices, FIFOs and symbolic links")


def one_error(returncode: int, stderr: str, code: int) -> str:
    """The one `lstmcast: error:` line of a finished process that had to exit with `code`."""
    assert returncode == code, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lstmcast: error: "), stderr
    return lines[0]


class FifoReader:
    """Reads everything written into a FIFO, in a thread (a writer blocks until a reader opens it)."""

    def __init__(self, path: Path) -> None:
        self.path, self.data = path, b""
        os.mkfifo(path)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        with open(self.path, "rb") as handle:
            self.data = handle.read()

    def text(self, timeout: float = 60) -> str:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "nothing closed the FIFO"
        return self.data.decode("utf-8")


def null_device(tmp_path: Path) -> Path:
    """A character device to write to that a regression could replace without harm.

    Where this process may create device nodes (root) it is a private twin of /dev/null in
    tmp_path: a broken lstmcast that replaced it must not replace the machine's /dev/null
    (root can write /dev). Elsewhere /dev/null itself, which a user cannot replace.
    """
    twin = tmp_path / "devices" / "null"
    twin.parent.mkdir()
    try:
        os.mknod(twin, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        return twin
    except OSError:
        if os.access("/dev", os.W_OK):
            pytest.skip("cannot create a device node, and /dev is writable: no device safe to test with")
        return Path("/dev/null")


@pytest.mark.slow
def test_devices_and_fifos_are_streamed_to_never_replaced(cli, trained_run, run_copy, tmp_path):
    device = null_device(tmp_path)
    beside = set(os.listdir(device.parent))
    fifo, metrics_fifo = FifoReader(tmp_path / "fc.fifo"), FifoReader(tmp_path / "metrics.fifo")
    procs = {
        "device": cli.start("predict", "--run", run_copy, "--output", device),
        "fifo": cli.start("predict", "--run", run_copy, "--output", fifo.path),
        "evaluate": cli.start("evaluate", "--run", run_copy, "--data", trained_run.data, "--output", metrics_fifo.path),
    }
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, (name, err)
        assert f"wrote {2 * trained_run.horizon} rows" in out or name == "evaluate", out
    assert stat.S_ISCHR(os.stat(device).st_mode), f"{device} must stay the device"
    assert set(os.listdir(device.parent)) == beside, "no lock or temporary file beside a device"
    lines = fifo.text().splitlines()
    assert lines[0] == "series,timestamp,forecast" and len(lines) == 1 + 2 * trained_run.horizon
    assert set(json.loads(metrics_fifo.text())) >= {"overall", "baselines", "series"}
    assert stat.S_ISFIFO(os.stat(fifo.path).st_mode) and stat.S_ISFIFO(os.stat(metrics_fifo.path).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["devices", "fc.fifo", "metrics.fifo", "run_copy"]  # no lock, no temporary


@pytest.mark.slow
def test_outputs_naming_the_runs_own_files_are_refused(cli, trained_run, run_copy, tmp_path):
    link = tmp_path / "innocent.csv"
    link.symlink_to(run_copy / "run.json")
    before = {name: (run_copy / name).read_bytes() for name in os.listdir(run_copy)}
    cases = [(["predict", "--run", run_copy, "--output", run_copy / "run.json"], run_copy / "run.json"),
             (["predict", "--run", run_copy, "--output", run_copy / "weights.safetensors"], "weights.safetensors"),
             (["predict", "--run", run_copy, "--output", link], link),
             (["predict", "--run", run_copy, "--output", run_copy / ".." / run_copy.name / "metrics.json"], "metrics.json"),
             (["evaluate", "--run", run_copy, "--data", trained_run.data, "--output", run_copy / "metrics.json"],
              "metrics.json")]
    procs = [(cli.start(*args), culprit) for args, culprit in cases]
    for proc, culprit in procs:
        _, err = proc.communicate(timeout=120)
        line = one_error(proc.returncode, err, EXIT_INPUT)
        assert str(culprit) in line and "destroy the run" in line, line
    assert {name: (run_copy / name).read_bytes() for name in os.listdir(run_copy)} == before
    assert link.is_symlink()
    # forecast.csv is the run's default output, and stays allowed.
    done = cli("predict", "--run", run_copy, "--output", run_copy / "forecast.csv", "-q")
    assert done.returncode == 0 and (run_copy / "forecast.csv").is_file(), done.stderr


@pytest.mark.slow
def test_a_planted_lock_link_is_never_followed(cli, trained_run, run_copy, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "fc.csv"
    (tmp_path / ".fc.csv.lock").symlink_to(elsewhere / "created-through-the-link")
    run_link_target = elsewhere / "run-lock-target"
    (tmp_path / ".newrun.lock").symlink_to(run_link_target)
    predicted = cli.start("predict", "--run", run_copy, "--output", out)
    trained = cli("train", trained_run.data, "--run-dir", tmp_path / "newrun", *FAST_CLI, "--epochs", "1")
    _, err = predicted.communicate(timeout=120)
    line = one_error(predicted.returncode, err, EXIT_INPUT)
    assert f"lock file {tmp_path / '.fc.csv.lock'} is a symbolic link" in line, line
    line = one_error(trained.returncode, trained.stderr, EXIT_RUN)
    assert f"lock file {tmp_path / '.newrun.lock'} is a symbolic link" in line, line
    assert list(elsewhere.iterdir()) == [], "nothing may be created where a planted link points"
    assert not out.exists() and not (tmp_path / "newrun").exists()
    assert (tmp_path / ".fc.csv.lock").is_symlink()  # and nothing of the user's is removed


@pytest.mark.slow
def test_a_replaced_file_keeps_its_mode_and_owner(cli, run_copy, tmp_path):
    out, metrics = tmp_path / "private.csv", tmp_path / "private.json"
    for path in (out, metrics):
        path.write_text("old\n")
        os.chmod(path, 0o600)
    owner = None
    if os.geteuid() == 0:  # root may give the file away: the replacement must keep that owner
        owner = (4321, 4322)
        os.chown(out, *owner)
    done = cli("predict", "--run", run_copy, "--output", out, "-q")
    assert done.returncode == 0, done.stderr
    info = os.stat(out)
    assert out.read_text().startswith("series,") and stat.S_IMODE(info.st_mode) == 0o600
    if owner is not None:
        assert (info.st_uid, info.st_gid) == owner
    # Through a symbolic link: the file it points to is replaced, the link stays a link.
    link = tmp_path / "link.csv"
    link.symlink_to(out)
    os.chmod(out, 0o640)
    done = cli("predict", "--run", run_copy, "--output", link, "--horizon", "2", "-q")
    assert done.returncode == 0, done.stderr
    assert link.is_symlink() and stat.S_IMODE(os.stat(out).st_mode) == 0o640
    assert len(out.read_text().splitlines()) == 1 + 2 * 2


@pytest.mark.slow
def test_train_overwrite_through_a_link_replaces_the_run_where_it_points(cli, trained_run, tmp_path):
    target = tmp_path / "runs" / "real"
    shutil.copytree(trained_run.run_dir, target)
    (target / "notes.txt").write_text("mine\n")
    old_created = json.loads((target / "run.json").read_text())["created"]
    link = tmp_path / "current"
    link.symlink_to(target)
    done = cli("train", trained_run.data, "--run-dir", link, "--overwrite", *FAST_CLI, "--epochs", "1", "--seed", "3")
    assert done.returncode == 0, done.stderr
    assert link.is_symlink() and os.readlink(link) == str(target), "the link stays a link to the same place"
    assert sorted(p.name for p in target.iterdir() if not p.name.startswith(".")) == sorted(RUN_FILES + ["notes.txt"])
    assert (target / "notes.txt").read_text() == "mine\n"
    record = rundir.load_meta(target)
    assert record.created >= old_created and record.train.seed == 3
    rundir.load_run(link)  # a complete, loadable run at the link
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current", "runs"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["real"]  # no temporary, no lock left


@pytest.mark.slow
def test_evaluate_output_dash_is_stdout(cli, trained_run, tmp_path):
    done = cli("evaluate", "--run", trained_run.run_dir, "--data", trained_run.data, "--output", "-", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)) >= {"overall", "baselines", "series", "test_size", "season"}
    assert list(tmp_path.iterdir()) == []  # no file named '-', no lock


@pytest.mark.slow
def test_a_link_planted_as_the_default_output_is_refused(cli, trained_run, tmp_path):
    """predict without --output writes RUN/forecast.csv: in an untrusted run it is never followed."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    device = null_device(tmp_path)
    runs = {}
    for name, plant in (("file", lambda p: p.symlink_to(victim)), ("device", lambda p: p.symlink_to(device)),
                        ("fifo", os.mkfifo)):
        run = tmp_path / name
        shutil.copytree(trained_run.run_dir, run)
        plant(run / "forecast.csv")
        runs[name] = (run, cli.start("predict", "--run", run))
    for name, (run, proc) in runs.items():
        _, err = proc.communicate(timeout=120)
        line = one_error(proc.returncode, err, EXIT_RUN)
        assert str(run / "forecast.csv") in line and "--output" in line, line
    assert victim.read_text() == "precious\n" and stat.S_ISCHR(os.stat(device).st_mode)
