"""Data-parallel training under a real `torchrun` (2 processes, gloo on CPU)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import TINY

from lstmcast import api
from lstmcast.train import distributed
from lstmcast.config import Precision, ScalerKind

# Per-rank batch 8 on 2 ranks = a global batch of 16, the single-process reference's batch.
DDP_TRAIN = ["--horizon", "6", "--lookback", "12", "--hidden", "8", "--batch-size", "8", "--max-steps", "4",
             "--epochs", "1", "--device", "cpu", "--precision", "fp32", "--scaler", "mean"]


def _torchrun() -> list[str]:
    exe = Path(sys.executable).parent / "torchrun"
    if exe.is_file():
        return [str(exe)]
    if shutil.which("torchrun"):
        return ["torchrun"]
    pytest.skip("torchrun is not installed")


@pytest.mark.slow
def test_two_gloo_ranks_train_like_one_process_with_their_global_batch(hourly_csv, tmp_path, subprocess_env):
    run_dir = tmp_path / "ddp"
    cmd = [*_torchrun(), "--standalone", "--nproc-per-node", "2", "-m", "lstmcast", "train", str(hourly_csv),
           *DDP_TRAIN, "--run-dir", str(run_dir), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Only rank 0 speaks: one JSON summary on stdout; only rank 0 wrote a run.
    summary = json.loads(proc.stdout.strip())
    assert summary["status"] == "ok" and summary["world_size"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp", "hourly.csv"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["steps"] == 4

    # The run predicts (numpy, no torch), like any other.
    forecast = api.predict(run_dir).forecast
    assert len(forecast) == 2 * 6 and forecast["forecast"].notna().all()

    # One process with the same global batch (2 x 8) and seed. Each rank's loss is divided by
    # the global batch's target count and DDP averages the gradients, so the two runs compute
    # the same sums in a different order: float32 rounding (~1e-7 relative per operation) over
    # four Adam steps. 1e-4 relative leaves a wide margin above that and far below what a wrong
    # sharding (different sequences, or a gradient off by the world size) changes: >1e-2.
    single = api.train(hourly_csv, horizon=6, lookback=12, hidden=8, run_dir=tmp_path / "single",
                       train_config=replace(TINY, batch_size=16, max_steps=4, precision=Precision.fp32,
                                            scaler=ScalerKind.mean))
    assert single.metrics["train_windows"] == metrics["train_windows"]
    assert metrics["best_val_loss"] == pytest.approx(single.metrics["best_val_loss"], rel=1e-4)
    assert metrics["history"][0]["train_loss"] == pytest.approx(single.metrics["history"][0]["train_loss"], rel=1e-4)


def test_outside_torchrun_nothing_is_distributed(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert not distributed.launched() and distributed.env_rank() == 0
    with distributed.session("auto") as dist:
        assert dist is None and distributed.current() is None


def test_refusal_on_rank_zero_is_raised_without_a_job():
    """Outside torchrun main_rank_first runs the steps and raises their error unchanged."""
    from lstmcast.errors import RunDirError

    def refuse():
        raise RunDirError("refused")

    with pytest.raises(RunDirError, match="refused"):
        with distributed.main_rank_first(None, refuse):
            pass


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (nccl)")
def test_nccl_single_rank_trains_on_the_gpu(hourly_csv, tmp_path, subprocess_env):
    run_dir = tmp_path / "gpu"
    args = [a if a != "cpu" else "cuda" for a in DDP_TRAIN]
    cmd = [*_torchrun(), "--standalone", "--nproc-per-node", "1", "-m", "lstmcast", "train", str(hourly_csv),
           *args, "--run-dir", str(run_dir), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((run_dir / "metrics.json").read_text())["device"].startswith("cuda")
    assert len(api.predict(run_dir).forecast) == 2 * 6
