"""How the CLI shows training progress (the events are `lstmcast.train.progress.EpochInfo`).

The core calls `on_epoch(EpochInfo)`; it never prints. The CLI picks a rich progress
bar on a terminal, plain log lines on stderr otherwise (cron, pipes), or nothing.
"""

from __future__ import annotations

import sys
import time

from lstmcast.train.progress import EpochInfo


class PlainProgress:
    """One short line per epoch on stderr, no control characters."""

    def __call__(self, info: EpochInfo) -> None:
        print(
            f"epoch {info.epoch}/{info.epochs} train_loss={info.train_loss:.5f} "
            f"val_loss={info.val_loss:.5f} best_epoch={info.best_epoch} elapsed={info.elapsed:.1f}s",
            file=sys.stderr, flush=True,
        )

    def close(self) -> None:
        pass


class RichProgress:
    """A rich progress bar over the planned optimiser steps, with the epoch, losses and time left, on stderr.

    The bar moves with every step, so the time left is estimated from the first batches,
    not only after the first epoch.
    """

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("training"), BarColumn(), MofNCompleteColumn(), TextColumn("steps  {task.fields[losses]}"),
            TimeRemainingColumn(), console=Console(stderr=True), transient=False,
        )
        self._task = None
        self._started = time.monotonic()

    def _start(self, total: int) -> None:
        if self._task is None:
            self._progress.start()
            self._task = self._progress.add_task("train", total=total, losses="")

    def on_step(self, done: int, planned: int, elapsed: float) -> None:
        self._start(planned)
        self._progress.update(self._task, completed=done, total=max(planned, done))

    def __call__(self, info: EpochInfo) -> None:
        self._start(info.epochs)
        losses = f"epoch {info.epoch}/{info.epochs}  train {info.train_loss:.4f}  val {info.val_loss:.4f}  best@{info.best_epoch}"
        self._progress.update(self._task, losses=losses)

    def close(self) -> None:
        if self._task is not None:
            self._progress.stop()
