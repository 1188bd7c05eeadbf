"""Where and in what arithmetic training runs: the one owner of the device choice."""

from __future__ import annotations

from typing import Any

import torch

from lstmcast.config import Device, Precision
from lstmcast.errors import InputError


def pick_device(choice: Device, dist: Any = None) -> torch.device:
    """cuda when asked (or when auto finds one), else cpu; under torchrun (`dist`, a
    `train.distributed.Dist`), the rank's own."""
    if dist is not None:
        return dist.device
    if choice is Device.cuda and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available; use --device cpu or auto")
    if choice is Device.cuda or (choice is Device.auto and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def use_bf16(choice: Precision, device: torch.device) -> bool:
    """Whether training's forward pass runs under bfloat16 autocast."""
    if device.type == "cuda":
        supported = torch.cuda.is_bf16_supported()
    else:
        supported = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if choice is Precision.bf16 and not supported:
        raise InputError(f"--precision bf16: not supported on this {device.type}; use fp32 or auto")
    return choice is Precision.bf16 or (choice is Precision.auto and supported)
