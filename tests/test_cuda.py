"""The CUDA path: data resident on the GPU, batches gathered there, a run that predicts on CPU.

Skipped where there is no CUDA device (the project's CI machine has none).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from lstmcast import api
from lstmcast.config import Device, Precision
from lstmcast.train.device import use_bf16
from lstmcast.train.loop import gather_forking

from conftest import TINY, TINY_MODEL

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_batches_are_gathered_on_the_gpu():
    device = torch.device("cuda")
    flat = torch.arange(200, dtype=torch.float32, device=device)
    valid = torch.ones(200, dtype=torch.bool, device=device)
    start = torch.tensor([20, 50], device=device)
    x, y, mask = gather_forking(flat, valid, start, lookback=10, horizon=4, forking=3)
    assert x.device.type == y.device.type == mask.device.type == "cuda"
    assert x[0, 0].item() == 10 and y[1, 2, 0].item() == 52


def test_cuda_run_trains_in_bf16_and_predicts_on_cpu(hourly_csv, tmp_path):
    cfg = replace(TINY, device=Device.cuda, precision=Precision.auto, forking=4)
    report = api.train(hourly_csv, horizon=6, lookback=12, train_config=cfg, run_dir=tmp_path / "run", **TINY_MODEL)
    m = report.metrics
    assert m["device"].startswith("cuda")
    assert m["precision"] == ("bf16" if use_bf16(Precision.auto, torch.device("cuda")) else "fp32")
    forecast = api.predict(report.run_dir).forecast  # numpy on the CPU
    assert len(forecast) == 2 * 6 and np.isfinite(forecast["forecast"]).all()
