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
    """A rich progress bar with epoch, losses and time left, on stderr."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("training"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[losses]}"),
            TimeRemainingColumn(), console=Console(stderr=True), transient=False,
        )
        self._task = None
        self._started = time.monotonic()

    def __call__(self, info: EpochInfo) -> None:
        if self._task is None:
            self._progress.start()
            self._task = self._progress.add_task("train", total=info.epochs, losses="")
        losses = f"train {info.train_loss:.4f}  val {info.val_loss:.4f}  best@{info.best_epoch}"
        self._progress.update(self._task, completed=info.epoch, losses=losses)

    def close(self) -> None:
        if self._task is not None:
            self._progress.stop()
