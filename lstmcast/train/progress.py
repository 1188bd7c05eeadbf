"""Training progress events: the loop calls `progress(EpochInfo)` after every epoch (and
`progress.on_step(...)` after every step, where it has one); it never prints.

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
# A progress callable may also have `on_step(done, planned, elapsed)`: called after every
# optimiser step, so that a display can estimate the time left from the first batches.
StepFn = Callable[[int, int, float], None]
