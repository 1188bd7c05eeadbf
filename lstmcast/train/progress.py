"""Training progress events: the loop calls `progress(EpochInfo)` after every epoch; it never prints.

How they are shown is the edge's business (`lstmcast.cli.progress`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class EpochInfo:
    epoch: int
    epochs: int
    train_loss: float
    val_loss: float
    best_epoch: int
    elapsed: float


ProgressFn = Callable[[EpochInfo], None]
