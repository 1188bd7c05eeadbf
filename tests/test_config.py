"""--config TOML files, --json summaries, --verbose, and the documented exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO, RUN_FILES
from safetensors.numpy import load_file
from typer.testing import CliRunner

from lstmcast.cli.app import app
from lstmcast.errors import EXIT_BUSY, EXIT_INPUT, EXIT_RUN

TINY_TOML = """
[train]
epochs = 1
max_steps = 3
batch_size = 16
hidden = 8
device = "cpu"
horizon = 6
lookback = 12
"""


def invoke(*args: object, code: int = 0):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == code, (result.exit_code, result.output)
    return result


def one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lstmcast: error: "), result.stderr
    return lines[0]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- --config ------------------------------------------------------------------------------------


def test_config_file_sets_options_and_the_command_line_wins(trained_run, tmp_path):
    config = write(tmp_path / "lstmcast.toml", f'data = "{trained_run.data}"\n' + TINY_TOML + "seed = 4\n")
    run = tmp_path / "run"
    invoke("train", "--config", config, "--run-dir", run, "--hidden", "4", "-q")
    meta = json.loads((run / "run.json").read_text())
    assert meta["model"]["hidden"] == 4  # command line over the file
    assert meta["train"]["seed"] == 4 and meta["train"]["max_steps"] == 3 and meta["model"]["lookback"] == 12
    saved = (run / "config.toml").read_text()
    assert "[train]" in saved and "hidden = 4" in saved and "seed = 4" in saved and "freq = \"h\"" in saved


def test_saved_config_reproduces_the_run(trained_run, tmp_path):
    again = tmp_path / "again"
    invoke("train", "--config", trained_run.run_dir / "config.toml", "--run-dir", again, "-q")
    first = load_file(str(trained_run.run_dir / "weights.safetensors"))
    second = load_file(str(again / "weights.safetensors"))
    assert first.keys() == second.keys() and all((first[k] == second[k]).all() for k in first)


def test_top_level_keys_and_command_tables(trained_run, tmp_path):
    config = write(tmp_path / "c.toml", f'output = "{tmp_path / "top.csv"}"\nquiet = true\n[predict]\nhorizon = 3\n')
    result = invoke("predict", "--run", trained_run.run_dir, "--config", config)
    assert result.stdout == ""  # quiet from the file
    assert len((tmp_path / "top.csv").read_text().splitlines()) == 1 + 2 * 3
    config = write(tmp_path / "e.toml", f'[evaluate]\ntest-size = 4\noutput = "{tmp_path / "m.json"}"\n')
    invoke("evaluate", "--run", trained_run.run_dir, "--data", trained_run.data, "--config", config, "-q")
    assert json.loads((tmp_path / "m.json").read_text())["test_size"] == 4


@pytest.mark.parametrize(("text", "expect"), [
    ("epoch = 3\n", "unknown keys ['epoch']"),
    ("[train]\nhiden = 3\nepochs = 1\n", "unknown keys ['hiden'] in [train]"),
    ("[predict]\nepochs = 3\n", "unknown keys ['epochs'] in [predict]"),
    ("[trian]\nepochs = 3\n", "unknown tables ['trian']"),
    ("[train\nepochs = 3\n", "not valid TOML"),
    ("[train]\nepochs = \"many\"\n", "'many'"),
    ("[train]\nepochs = 0\n", "epochs = 0"),
    ("[train]\ntarget = {a = 1}\n", "must be a string"),
])
def test_bad_config_exits_2_naming_the_problem(trained_run, tmp_path, text, expect):
    config = write(tmp_path / "bad.toml", text)
    result = CliRunner().invoke(app, ["train", str(trained_run.data), "--config", str(config), "--run-dir",
                                      str(tmp_path / "run")])
    assert result.exit_code == EXIT_INPUT, result.output
    assert expect in result.stderr and str(config) in result.stderr, result.stderr
    assert not (tmp_path / "run").exists()


def test_missing_config_file_exits_2(tmp_path):
    result = CliRunner().invoke(app, ["predict", "--run", str(tmp_path), "--config", str(tmp_path / "nope.toml")])
    assert result.exit_code == EXIT_INPUT and "config file not found" in result.stderr


# --- --json ----------------------------------------------------------------------------------------


def test_json_summaries_are_one_object_on_stdout(trained_run, tmp_path):
    run = tmp_path / "run"
    config = write(tmp_path / "c.toml", TINY_TOML)
    train = json.loads(invoke("train", trained_run.data, "--config", config, "--run-dir", run, "--json").stdout)
    assert train["command"] == "train" and train["status"] == "ok" and train["exit_code"] == 0
    assert train["run_dir"] == str(run) and {Path(f).name for f in train["files"]} == set(RUN_FILES)
    assert set(train["metrics"]["validation"]) == {"mae", "rmse", "mape", "smape", "mase"}
    assert train["timings"]["train_seconds"] >= 0 and train["timings"]["total_seconds"] >= 0

    out = tmp_path / "fc.csv"
    predict = json.loads(invoke("predict", "--run", run, "--output", out, "--json").stdout)
    assert predict["status"] == "ok" and predict["files"] == [str(out)] and predict["rows"] == 12
    assert predict["series"] == 2 and predict["horizon"] == 6

    evaluate = json.loads(invoke("evaluate", "--run", run, "--data", trained_run.data, "--json").stdout)
    assert evaluate["status"] == "ok" and evaluate["files"] == [] and evaluate["test_size"] == 6
    assert set(evaluate["metrics"]) == {"overall", "baselines"}
    for summary in (train, predict, evaluate):
        assert "total_seconds" in summary["timings"]


def test_json_errors_are_an_object_too(trained_run, tmp_path):
    result = CliRunner().invoke(app, ["predict", "--run", str(tmp_path / "nope"), "--json"])
    assert result.exit_code == EXIT_RUN
    summary = json.loads(result.stdout)
    assert summary["status"] == "error" and summary["exit_code"] == EXIT_RUN and str(tmp_path / "nope") in summary["error"]
    assert one_line(result).endswith(summary["error"])
    result = CliRunner().invoke(app, ["predict", "--run", str(trained_run.run_dir), "--output", "-", "--json"])
    assert result.exit_code == EXIT_INPUT and "--json" in one_line(result)


def test_json_usage_error_from_the_installed_command(cli):
    result = cli("predict", "--json", "--horizon", "zero")
    assert result.returncode == EXIT_INPUT
    summary = json.loads(result.stdout)
    assert summary["status"] == "error" and summary["exit_code"] == EXIT_INPUT and "--horizon" in summary["error"]


def test_verbose_adds_the_traceback(tmp_path):
    result = CliRunner().invoke(app, ["predict", "--run", str(tmp_path / "nope"), "--verbose"])
    assert result.exit_code == EXIT_RUN
    assert "Traceback" in result.stderr and result.stderr.strip().splitlines()[-1].startswith("lstmcast: error: ")


# --- exit codes documented ---------------------------------------------------------------------------


def test_exit_codes_in_help_and_readme():
    text = " ".join(invoke("--help").stdout.split())
    for piece in ("0 success", "2 usage or input error", "3 run directory unusable", f"{EXIT_BUSY} busy",
                  "130 or 143", "1 anything else"):
        assert piece in text, piece
    readme = (REPO / "README.md").read_text()
    for code in ("0", "1", "2", "3", "4", "130", "143"):
        assert f"\n| {code} |" in readme, f"exit code {code} missing from the README table"
