"""The command line: help, train/predict/evaluate through CliRunner, errors, and real subprocess runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import typer
from conftest import REPO, RUN_FILES, SAMPLE_DATA, TINY_CLI, long_frame, wide_frame, write_frame
from typer.testing import CliRunner

from lstmcast.cli.app import app
from lstmcast.errors import EXIT_INPUT, EXIT_RUN

COMMANDS = ("train", "predict", "evaluate")
METRIC_KEYS = {"mae", "rmse", "mape", "smape", "mase"}


def invoke(*args: object, code: int = 0):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    return result


def flat(text: str) -> str:
    """Help text with its line wrapping undone."""
    return " ".join(text.split())


def train_tiny(data: Path, run_dir: Path, *extra: object):
    return invoke("train", data, "--run-dir", run_dir, *TINY_CLI, *extra)


# --- help ----------------------------------------------------------------------------------------


def test_app_help_lists_commands_and_exit_codes():
    result = invoke("--help")
    text = flat(result.stdout)
    for name in COMMANDS:
        assert name in text
    assert "Exit codes: 0 success; 2 usage or input error" in text and "3 run directory" in text


def test_no_arguments_shows_help():
    result = CliRunner().invoke(app, [])
    assert "Usage" in result.output and "train" in result.output


@pytest.mark.parametrize("name", COMMANDS)
def test_command_help_lists_every_option_with_defaults(name):
    text = flat(invoke(name, "--help").stdout)
    command = typer.main.get_command(app).commands[name]
    for param in command.params:
        if param.param_type_name != "option":
            continue
        assert param.opts[0] in text, f"{param.opts[0]} missing from `{name} --help`"
        assert param.help and flat(param.help)[:30] in text
        default = param.default
        if default is not None and not isinstance(default, bool) and not param.required:
            shown = default.value if hasattr(default, "value") else default
            assert f"default: {shown}" in text, f"{param.opts[0]}: default {shown!r} not shown"
    assert "Exit codes:" in text and "3 run directory unusable" in text


def test_train_help_shows_key_defaults():
    text = flat(invoke("train", "--help").stdout)
    from lstmcast.config import TrainConfig

    # Epochs, batch size and steps per epoch are sized to the data: the help says how, with the rule's numbers.
    from lstmcast.train import defaults as d

    batch_rule = (f"one per {d.BATCH_DIVISOR} training windows, a power of two from {d.FLOOR_BATCH} to {d.MAX_BATCH} "
                  f"({d.MIN_BATCH} under {d.SMALL_WINDOWS:,} windows)")
    epochs_rule = (f"Maximum epochs (default {d.DEFAULT_EPOCHS}, or up to {d.MAX_DEFAULT_EPOCHS} when an epoch is under "
                   f"50 steps, so that {d.MIN_PLANNED_STEPS:,} steps are planned")
    patience_rule = f"Default: {d.DEFAULT_PATIENCE}, or as many short epochs as make {d.PATIENCE_STEPS} steps"
    for expected in ("[default: 64;", "[default: 2;", epochs_rule, batch_rule, patience_rule,
                     "an epoch covers every training window 4 times over", "[default: 0.001;", "[default: interpolate]",
                     "[default: standard]", "[default: mae]", "[default: auto]", "[default: 0]",
                     f"[default: {TrainConfig.mase_weight}; 0.0<=x<=1.0]",
                     "[default: revin]", "--skip"):
        assert expected in text, expected


# --- train, predict, evaluate through CliRunner --------------------------------------------------------


def test_train_writes_run_and_reports(hourly_csv, tmp_path):
    run = tmp_path / "run"
    result = train_tiny(hourly_csv, run, "--horizon", "6", "--lookback", "12")
    assert sorted(p.name for p in run.iterdir()) == RUN_FILES
    assert f"run: {run}" in result.stdout
    assert "validation: MASE" in result.stdout and "(MAE, RMSE: means over series)" in result.stdout and "max_steps" in result.stdout
    assert "epoch 1/1 train_loss=" in result.stderr  # plain progress: stderr is not a terminal here
    assert "frequency h (inferred)" in result.stderr and "lookback 12" in result.stderr
    assert "\x1b" not in result.output


def test_train_default_run_dir_under_runs(hourly_csv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train_tiny(hourly_csv, tmp_path / "ignored", "--horizon", "6", "--lookback", "12")  # explicit still works
    result = invoke("train", hourly_csv, *TINY_CLI, "--horizon", "6", "--lookback", "12", "--quiet")
    assert result.stdout == "" and result.stderr == ""
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.endswith("-hourly") and (runs[0] / "run.json").is_file()


def test_train_refuses_existing_run_without_overwrite(hourly_csv, tmp_path):
    run = tmp_path / "run"
    train_tiny(hourly_csv, run, "--horizon", "6", "--lookback", "12", "-q")
    before = (run / "run.json").read_text()
    # A usage error: exit 2, as the README's table says (3 is a run directory that cannot be used).
    result = invoke("train", hourly_csv, "--run-dir", run, *TINY_CLI, "--horizon", "6", code=EXIT_INPUT)
    assert "--overwrite" in result.stderr and str(run) in result.stderr
    assert (run / "run.json").read_text() == before
    train_tiny(hourly_csv, run, "--horizon", "4", "--lookback", "12", "--overwrite", "-q")
    assert json.loads((run / "run.json").read_text())["model"]["horizon"] == 4


@pytest.mark.parametrize("layout", ["wide", "long", "notime", "inttime"])
def test_train_every_layout(tmp_path, layout, long_csv, notime_csv, inttime_csv, wide_csv):
    data = {"wide": wide_csv, "long": long_csv, "notime": notime_csv, "inttime": inttime_csv}[layout]
    run = tmp_path / "run"
    train_tiny(data, run, "--horizon", "5", "-q")
    predict = invoke("predict", "--run", run, "-q")
    assert predict.stdout == "" and (run / "forecast.csv").is_file()


def test_predict_default_output_hourly(trained_run, run_copy):
    result = invoke("predict", "--run", run_copy)
    out = run_copy / "forecast.csv"
    assert out.is_file() and f"to {out}" in result.stdout
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["series", "timestamp", "forecast"]
    assert frame.groupby("series").size().to_dict() == {"a": 6, "b": 6}
    last = pd.to_datetime(pd.read_csv(trained_run.data)["timestamp"]).max()
    for _, group in frame.groupby("series"):
        times = pd.to_datetime(group["timestamp"]).tolist()
        assert times == list(pd.date_range(last + pd.Timedelta(hours=1), periods=6, freq="h"))
    assert frame["forecast"].notna().all()


def test_predict_monthly_timestamps_continue(monthly_csv, tmp_path):
    run = tmp_path / "run"
    train_tiny(monthly_csv, run, "-q")
    invoke("predict", "--run", run, "--data", monthly_csv, "-q")
    frame = pd.read_csv(run / "forecast.csv")
    assert list(frame.columns) == ["series", "month", "forecast"]
    assert (frame["series"] == "revenue").all() and len(frame) == 12  # monthly default horizon
    assert pd.to_datetime(frame["month"]).tolist() == list(pd.date_range("2025-01-01", periods=12, freq="MS"))


def test_predict_long_layout_columns(long_csv, tmp_path):
    run = tmp_path / "run"
    train_tiny(long_csv, run, "--horizon", "5", "-q")
    invoke("predict", "--run", run, "-q")
    frame = pd.read_csv(run / "forecast.csv")
    assert list(frame.columns) == ["id", "date", "forecast"]
    assert frame.groupby("id").size().to_dict() == {"x": 5, "y": 5}
    assert pd.to_datetime(frame["date"]).min() == pd.Timestamp("2024-03-21")  # 80 days from 2024-01-01


def test_predict_integer_and_row_time(inttime_csv, notime_csv, tmp_path):
    train_tiny(inttime_csv, tmp_path / "int", "--horizon", "3", "-q")
    invoke("predict", "--run", tmp_path / "int", "-q")
    frame = pd.read_csv(tmp_path / "int" / "forecast.csv")
    assert list(frame.columns) == ["series", "period", "forecast"] and frame["period"].tolist() == [500, 505, 510]
    train_tiny(notime_csv, tmp_path / "row", "--horizon", "3", "-q")
    invoke("predict", "--run", tmp_path / "row", "-q")
    frame = pd.read_csv(tmp_path / "row" / "forecast.csv")
    assert list(frame.columns) == ["series", "step", "forecast"] and frame["step"].tolist() == [80, 81, 82] * 2


def test_predict_output_path_and_stdout(run_copy, tmp_path):
    target = tmp_path / "out" / "fc.csv"
    invoke("predict", "--run", run_copy, "--output", target, "-q")
    assert target.is_file() and not (run_copy / "forecast.csv").exists()
    result = invoke("predict", "--run", run_copy, "--output", "-")
    assert result.stdout == target.read_text()
    assert not (run_copy / "forecast.csv").exists()


@pytest.mark.parametrize("horizon", [1, 6, 20])
def test_predict_horizon_longer_than_trained_is_recursive(run_copy, horizon):
    invoke("predict", "--run", run_copy, "--horizon", horizon, "-q")
    frame = pd.read_csv(run_copy / "forecast.csv")
    assert frame.groupby("series").size().to_dict() == {"a": horizon, "b": horizon}
    times = pd.to_datetime(frame.loc[frame["series"] == "a", "timestamp"])
    assert (times.diff().dropna() == pd.Timedelta(hours=1)).all()
    assert frame["forecast"].notna().all()


def test_predict_new_series_long_layout(long_csv, tmp_path):
    run = tmp_path / "run"
    train_tiny(long_csv, run, "--horizon", "5", "-q")
    new_data = write_frame(tmp_path / "more.csv", long_frame(ids=("x", "y", "zeta")))
    result = invoke("predict", "--run", run, "--data", new_data)
    frame = pd.read_csv(run / "forecast.csv")
    assert frame.groupby("id").size().to_dict() == {"x": 5, "y": 5, "zeta": 5}
    assert frame["forecast"].notna().all()
    notes = [line for line in result.stderr.splitlines() if "not seen in training" in line]
    assert len(notes) == 1 and "'zeta'" in notes[0] and "'x'" not in notes[0]


def test_predict_new_series_wide_layout(wide_csv, tmp_path):
    run = tmp_path / "run"
    train_tiny(wide_csv, run, "--horizon", "5", "-q")
    frame = wide_frame()
    frame["c"] = frame["a"] * 2
    result = invoke("predict", "--run", run, "--data", write_frame(tmp_path / "more.csv", frame))
    forecast = pd.read_csv(run / "forecast.csv")
    assert "'c'" in result.stderr or "c" in set(forecast["series"])


def test_predict_data_shorter_than_the_lookback_is_forecast_from_padded_histories(trained_run, run_copy, tmp_path):
    """New products have little history: they get a forecast and a note, not a refusal (issue 30)."""
    short = write_frame(tmp_path / "short.csv", pd.read_csv(trained_run.data).tail(5))
    result = invoke("predict", "--run", run_copy, "--data", short, "--output", tmp_path / "fc.csv")
    assert "fewer points than the run's lookback 12" in result.stderr and "padded" in result.stderr
    forecast = pd.read_csv(tmp_path / "fc.csv")
    assert len(forecast) == 2 * trained_run.horizon and forecast["forecast"].notna().all()
    empty = write_frame(tmp_path / "empty.csv", pd.read_csv(trained_run.data).head(0))
    invoke("predict", "--run", run_copy, "--data", empty, code=EXIT_INPUT)


def test_evaluate_output_json(trained_run, tmp_path):
    out = tmp_path / "metrics.json"
    result = invoke("evaluate", "--run", trained_run.run_dir, "--data", trained_run.data, "--output", out)
    assert "held-out last 6 points, season 24" in result.stdout
    for name in ("lstmcast:", "naive:", "seasonal naive:"):
        assert name in result.stdout
    assert f"wrote {out}" in result.stdout
    data = json.loads(out.read_text())
    assert {"overall", "baselines", "series"} <= set(data) and "notes" not in data
    assert data["test_size"] == 6 and data["season"] == 24
    for block in (data["overall"], data["baselines"]["naive"], data["baselines"]["seasonal_naive"],
                  *data["series"].values()):
        assert set(block) == METRIC_KEYS
    assert set(data["series"]) == {"a", "b"}


def test_evaluate_test_size_and_season(trained_run, tmp_path):
    out = tmp_path / "m.json"
    invoke("evaluate", "--run", trained_run.run_dir, "--data", trained_run.data, "--test-size", "10",
           "--season", "12", "--output", out, "-q")
    data = json.loads(out.read_text())
    assert (data["test_size"], data["season"]) == (10, 12)


# --- errors ----------------------------------------------------------------------------------------------


def one_line_error(result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lstmcast: error: ")
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize(("name", "text", "extra", "expect"), [
    ("missing", None, [], "file not found"),
    ("empty.csv", "", [], "empty"),
    ("header.csv", "date,a\n", [], "no data rows"),
    ("nonnum.csv", "date,a\n2024-01-01,1\n2024-01-02,x\n2024-01-03,3\n", [], "line 3"),
    ("inf.csv", "date,a\n2024-01-01,1\n2024-01-02,inf\n2024-01-03,3\n", [], "infinite"),
    ("dup.csv", "date,a\n2024-01-01,1\n2024-01-01,2\n2024-01-03,3\n", [], "duplicate timestamp"),
    ("ok.csv", None, ["--target", "nope"], "'nope'"),
    ("ok.csv", None, ["--freq", "fortnightly"], "--freq"),
    ("ok.csv", None, ["--fill", "error"], "missing values or gaps"),
    ("ok.csv", None, ["--val-size", "2", "--horizon", "5"], "--val-size"),
])
def test_bad_input_exits_2_with_one_line(write_csv, tmp_path, name, text, extra, expect):
    if name == "missing":
        path = tmp_path / "missing.csv"
    elif name == "ok.csv":
        path = write_csv(name, "date,a\n" + "".join(f"2024-01-{d:02d},{d}\n" for d in (1, 2, 3, 5, 6, 7, 8, 9)))
    else:
        path = write_csv(name, text)
    result = CliRunner().invoke(app, ["train", str(path), "--run-dir", str(tmp_path / "run"), *TINY_CLI, *extra])
    line = one_line_error(result, EXIT_INPUT)
    assert expect in line
    assert not (tmp_path / "run").exists()


def test_device_cuda_without_cuda_exits_2(hourly_csv, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    result = CliRunner().invoke(app, ["train", str(hourly_csv), "--run-dir", str(tmp_path / "run"), *TINY_CLI,
                                      "--device", "cuda"])
    assert "--device cuda" in one_line_error(result, EXIT_INPUT)


def test_bad_input_to_predict_and_evaluate(trained_run, run_copy, write_csv):
    bad = write_csv("bad.csv", "timestamp,a,b\n2024-01-01 00:00:00,1,x\n")
    for command in (["predict", "--run", str(run_copy), "--data", str(bad)],
                    ["evaluate", "--run", str(run_copy), "--data", str(bad)]):
        line = one_line_error(CliRunner().invoke(app, command), EXIT_INPUT)
        assert str(bad) in line


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_bad_run_dir_exits_3(command, tmp_path, trained_run):
    data = ["--data", str(trained_run.data)] if command == "evaluate" else []
    missing = tmp_path / "nope"
    line = one_line_error(CliRunner().invoke(app, [command, "--run", str(missing), *data]), EXIT_RUN)
    assert str(missing) in line
    empty = tmp_path / "empty"
    empty.mkdir()
    line = one_line_error(CliRunner().invoke(app, [command, "--run", str(empty), *data]), EXIT_RUN)
    assert "run.json" in line


# --- real subprocesses ---------------------------------------------------------------------------------


def run_cmd(args: list[object], env: dict[str, str], cwd: Path | None = None, timeout: int = 120):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout, encoding="utf-8")


def test_python_m_lstmcast_help(subprocess_env):
    result = run_cmd([sys.executable, "-m", "lstmcast", "--help"], subprocess_env, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout and "train" in result.stdout and "Exit codes" in result.stdout
    assert result.stderr == ""


def test_installed_command_help(lstmcast_exe, subprocess_env):
    for args in (["--help"], [], ["predict", "--help"]):
        result = run_cmd([lstmcast_exe, *args], subprocess_env)
        assert result.returncode == 0, (args, result.stderr)
        assert "Usage:" in result.stdout


@pytest.mark.parametrize(("args", "expect"), [
    (["train", "x.csv", "--epochs", "0"], "--epochs"),
    (["train", "x.csv", "--no-such-option"], "--no-such-option"),
    (["train", "x.csv", "--fill", "bogus"], "bogus"),
    (["predict"], "--run"),
    (["frobnicate"], "frobnicate"),
])
def test_usage_errors_exit_2_with_one_line(lstmcast_exe, subprocess_env, args, expect):
    result = run_cmd([lstmcast_exe, *args], subprocess_env)
    assert result.returncode == EXIT_INPUT, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lstmcast: error:") and expect in lines[0], result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


@pytest.mark.slow
def test_installed_end_to_end_hourly_load(lstmcast_exe, subprocess_env, tmp_path):
    data = SAMPLE_DATA / "hourly_load.csv"
    run = tmp_path / "run"
    train = run_cmd([lstmcast_exe, "train", data, "--run-dir", run, "--epochs", "2", "--max-steps", "4",
                     "--batch-size", "32", "--hidden", "8"], subprocess_env)
    assert train.returncode == 0, train.stderr
    progress = [line for line in train.stderr.splitlines() if line.startswith("epoch ")]
    assert progress and progress[0].startswith("epoch 1/2 train_loss=")
    assert "\x1b" not in train.stderr and "\x1b" not in train.stdout and "\r" not in train.stderr
    assert f"run: {run}" in train.stdout

    predict = run_cmd([lstmcast_exe, "predict", "--run", run], subprocess_env)
    assert predict.returncode == 0, predict.stderr
    frame = pd.read_csv(run / "forecast.csv")
    assert list(frame.columns) == ["series", "timestamp", "forecast"]
    assert frame.groupby("series").size().to_dict() == {"north": 48, "south": 48}
    assert pd.to_datetime(frame["timestamp"]).min() == pd.Timestamp("2024-02-26 00:00:00")  # 8 weeks on

    out = tmp_path / "metrics.json"
    evaluate = run_cmd([lstmcast_exe, "evaluate", "--run", run, "--data", data, "--output", out], subprocess_env)
    assert evaluate.returncode == 0, evaluate.stderr
    assert "\x1b" not in evaluate.stdout and "held-out last 48 points, season 24" in evaluate.stdout
    metrics = json.loads(out.read_text())
    assert set(metrics["series"]) == {"north", "south"}
    assert set(metrics["baselines"]) == {"naive", "seasonal_naive"}


@pytest.mark.slow
def test_installed_end_to_end_airline_quiet(lstmcast_exe, subprocess_env, shared_data, tmp_path):
    data = shared_data("airline-passengers.csv")
    run = tmp_path / "air"
    steps = [
        ["train", data, "--run-dir", run, "--epochs", "2", "--max-steps", "4", "--hidden", "8", "--quiet"],
        ["predict", "--run", run, "--data", data, "--horizon", "24", "--quiet"],
        ["evaluate", "--run", run, "--data", data, "--output", tmp_path / "m.json", "--quiet"],
    ]
    for args in steps:
        result = run_cmd([lstmcast_exe, *args], subprocess_env)
        assert result.returncode == 0, (args, result.stderr)
        assert result.stderr == "", f"--quiet printed on stderr: {result.stderr!r}"
        assert result.stdout == "", f"--quiet printed on stdout: {result.stdout!r}"
    frame = pd.read_csv(run / "forecast.csv")
    assert list(frame.columns) == ["series", "Month", "forecast"] and len(frame) == 24
    assert pd.to_datetime(frame["Month"]).tolist() == list(pd.date_range("1961-01-01", periods=24, freq="MS"))
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["test_size"] == 12 and metrics["season"] == 12
    assert set(metrics["overall"]) == METRIC_KEYS


def test_installed_bad_run_dir_exit_3(lstmcast_exe, subprocess_env, tmp_path):
    result = run_cmd([lstmcast_exe, "predict", "--run", tmp_path / "nothing"], subprocess_env)
    assert result.returncode == EXIT_RUN
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
