"""The README's Python code blocks, run as written (the notebook example among them), and its
top section's commands as a new user types them."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, re.DOTALL)


def test_the_readme_has_the_notebook_example():
    assert any("from lstmcast import train, predict, evaluate" in b and "pd.read_csv" in b for b in PYTHON_BLOCKS)


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[f"block{k}" for k in range(len(PYTHON_BLOCKS))])
def test_python_block_runs_as_written(block, tmp_path, subprocess_env):
    (tmp_path / "sample_data").symlink_to(REPO / "sample_data")  # the README's paths are the clone's
    done = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, env=subprocess_env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    if "forecast.head()" in block:
        assert "store_a" in done.stdout and "mase" in done.stdout and "fold" in done.stdout


def test_five_minute_section_comes_first_and_installs_from_the_clone():
    first = README.index("## ")
    assert README[first:].startswith("## Your own CSV in five minutes")
    section = README[first:README.index("## Overview")]
    for command in ("pip install -c constraints.txt -e \".[plot]\"", "lstmcast train sample_data/store_sales.csv",
                    "lstmcast predict --run runs/sales --plot plots/", "--backtest --refit", "0 2 * * *"):
        assert command in section
    assert "pip install 'lstmcast[plot]'" not in README  # no package index has it
