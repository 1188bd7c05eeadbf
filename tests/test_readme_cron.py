"""The README's "Running from cron" recipe, run as written: its crontab lines through /bin/sh
as cron runs them, its lstmcast.toml with the training shrunk to test size."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from conftest import REPO, SAMPLE_DATA

README = (REPO / "README.md").read_text(encoding="utf-8")
SECTION = README[README.index("## Running from cron"):README.index("## Python API")]


def crontab_commands() -> list[str]:
    block = re.search(r"```\n(# m h dom mon dow.*?)```", SECTION, re.DOTALL).group(1)
    lines = [line for line in block.splitlines() if line and not line.startswith("#")]
    return [line.split(None, 5)[5] for line in lines]  # the command after the five time fields


def readme_toml() -> dict:
    return tomllib.loads(re.search(r"```toml\n(.*?)```", SECTION, re.DOTALL).group(1))


def as_cron(command: str, root: Path, exe: str) -> str:
    """What cron hands /bin/sh: \\% becomes %, and our paths for the README's."""
    assert "%" not in command.replace("\\%", ""), "an unescaped % would end the command in a crontab"
    command = command.replace("\\%", "%").replace("cd /srv/forecast", f"cd '{root}'")
    return command.replace(".venv/bin/lstmcast", exe)


def toml_text(config: dict) -> str:
    def value(v):
        return json.dumps(v) if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v)

    top = [f"{k} = {value(v)}" for k, v in config.items() if not isinstance(v, dict)]
    tables = [f"[{name}]\n" + "\n".join(f"{k} = {value(v)}" for k, v in table.items())
              for name, table in config.items() if isinstance(table, dict)]
    return "\n".join(top) + "\n\n" + "\n\n".join(tables) + "\n"


@pytest.mark.slow
def test_readme_cron_recipe_works_as_written(lstmcast_exe, subprocess_env, trained_run, tmp_path):
    if shutil.which("sh") is None:
        pytest.skip("no /bin/sh")
    root = tmp_path / "forecast"
    (root / "data").mkdir(parents=True)
    (root / "logs").mkdir()
    shutil.copy(SAMPLE_DATA / "store_sales.csv", root / "data" / "sales.csv")
    config = readme_toml()
    assert config["wait"] == 600 and config["train"]["id_col"] == "store"
    config["train"].update(epochs=1, max_steps=3, hidden=8, batch_size=16, device="cpu")  # test-sized training
    (root / "lstmcast.toml").write_text(toml_text(config))
    for k in range(5):  # older runs to prune
        shutil.copytree(trained_run.run_dir, root / "runs" / f"sales-2020-01-0{k + 1}")
        meta = json.loads((root / "runs" / f"sales-2020-01-0{k + 1}" / "run.json").read_text())
        meta["created"] = f"2020-01-0{k + 1}T01:00:00+00:00"
        (root / "runs" / f"sales-2020-01-0{k + 1}" / "run.json").write_text(json.dumps(meta))
    train_line, predict_line = crontab_commands()
    today = dt.date.today().isoformat()

    def cron(command: str) -> subprocess.CompletedProcess:
        return subprocess.run(["sh", "-c", as_cron(command, root, lstmcast_exe)], capture_output=True, text=True,
                              env=subprocess_env, timeout=300, check=False)

    done = cron(train_line)
    assert done.returncode == 0, (done.stdout, done.stderr, (root / "logs" / "lstmcast.log").read_text())
    summary = json.loads((root / "logs" / "train.jsonl").read_text().splitlines()[-1])
    assert summary["status"] == "ok" and summary["exit_code"] == 0 and summary["run_dir"] == f"runs/sales-{today}"
    assert summary["metrics"]["validation"]["mae"] is not None
    assert sorted(p.name for p in (root / "runs").iterdir()) == [
        "sales-2020-01-03", "sales-2020-01-04", "sales-2020-01-05", f"sales-{today}"]
    assert "epoch 1/1" in (root / "logs" / "lstmcast.log").read_text()

    done = cron(predict_line)
    assert done.returncode == 0, (done.stdout, done.stderr, (root / "logs" / "lstmcast.log").read_text())
    forecast = root / "forecasts" / f"sales-{today}.csv"
    assert forecast.is_file() and len(forecast.read_text().splitlines()) == 1 + 4 * 14
    summary = json.loads((root / "logs" / "predict.jsonl").read_text().splitlines()[-1])
    assert summary["status"] == "ok" and summary["files"] == [f"forecasts/sales-{today}.csv"]
    assert not (root / "logs" / "alerts.log").exists()

    (root / "data" / "sales.csv").write_text("store,date,sales\nstore_a,2024-01-01,many\n")
    done = cron(predict_line)
    assert done.returncode == 0  # the alert line ran
    assert re.search(r"predict failed: exit 2$", (root / "logs" / "alerts.log").read_text().strip())
    summary = json.loads((root / "logs" / "predict.jsonl").read_text().splitlines()[-1])
    assert summary["status"] == "error" and summary["exit_code"] == 2 and "sales.csv" in summary["error"]
    assert len(forecast.read_text().splitlines()) == 1 + 4 * 14  # yesterday's good file is untouched
