"""Data-parallel training under `torchrun`: one model, its batches shared out across processes.

    torchrun --nproc-per-node N -m lstmcast train DATA ...

torchrun starts N copies of lstmcast and tells each its place in the environment (RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). Every rank reads the same data and
builds the same model from the same seed; DistributedDataParallel keeps the copies equal
by averaging gradients after every backward pass (nccl between GPUs, gloo between CPUs).

    global batch g:  order[g*B*W : (g+1)*B*W]   (the same seeded permutation on every rank)
    rank r trains:   its r-th share of it        (B sequences: --batch-size is per rank)

The loss of each share is divided by the number of targets of the whole global batch,
so the averaged gradient is exactly the gradient of the global batch's mean loss: W
ranks of batch B train like one process of batch B x W (up to floating-point order).
The validation loss is summed over ranks, so early stopping stops every rank at the same
epoch. Only rank 0 takes the run directory's lock, writes it and prints.

Outside torchrun (`from_env()` is None) nothing here runs: training is what it was.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from lstmcast.errors import LstmcastError

_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


class PeerError(LstmcastError):
    """Another rank failed first; its own message says why (this rank stays silent)."""


def env_rank() -> int:
    """This process's rank under torchrun (0 outside it); reads the environment, imports nothing."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def launched() -> bool:
    """Whether torchrun (or another launcher setting its variables) started this process."""
    return all(k in os.environ for k in _ENV)


@dataclass
class Dist:
    """This process's place in a torchrun job, and the collectives training needs."""

    rank: int
    world: int
    local_rank: int
    backend: str
    device: Any  # torch.device the rank trains on

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over ranks (float64), on every rank."""
        import torch
        import torch.distributed as td

        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        td.all_reduce(t)
        return t.tolist()

    def all_ok(self, ok: bool) -> bool:
        """True on every rank when `ok` is true on every rank."""
        return self.sum([0.0 if ok else 1.0])[0] == 0.0

    def share(self, items: Any) -> Any:
        """This rank's contiguous share of a global batch (1-D tensor), disjoint from the others'."""
        return items.tensor_split(self.world)[self.rank]

    def wrap(self, module: Any) -> Any:
        """The module under DistributedDataParallel: gradients averaged over ranks in backward."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)


def device_of_run(run_dir: Any) -> Any:
    """The --device a run was trained with (for `train --resume` under torchrun); auto if unreadable."""
    from lstmcast.config import Device

    if not launched():
        return Device.auto
    from lstmcast.run.rundir import load_meta

    try:
        return load_meta(run_dir).train.device
    except (LstmcastError, KeyError, TypeError, ValueError):
        return Device.auto  # resume.load names the problem


_current: Dist | None = None


def current() -> Dist | None:
    """The job this process is part of, while `session` holds it open; else None."""
    return _current


@contextmanager
def session(device_choice: Any) -> Iterator[Dist | None]:
    """Join the torchrun job (nccl on GPUs, gloo on CPUs) for the duration; None outside torchrun.

    The process group is destroyed on the way out, also when training fails.
    """
    global _current
    if not launched() or _current is not None:
        yield _current
        return
    import torch
    import torch.distributed as td

    from lstmcast.train.device import pick_device

    local_rank = int(os.environ["LOCAL_RANK"])
    device = pick_device(device_choice)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    td.init_process_group(backend=backend, **({"device_id": device} if device.type == "cuda" else {}))
    _current = Dist(rank=td.get_rank(), world=td.get_world_size(), local_rank=local_rank, backend=backend,
                    device=device)
    try:
        yield _current
    finally:
        _current = None
        td.destroy_process_group()


@contextmanager
def main_rank_first(dist: Dist | None, *steps: Callable[[], Any]) -> Iterator[None]:
    """Run `steps` on rank 0 only (context managers stay entered for the block); every rank
    learns whether they worked, so a refusal on rank 0 stops all ranks instead of hanging them.
    """
    with ExitStack() as stack:
        failure: BaseException | None = None
        if dist is None or dist.is_main:
            try:
                for step in steps:
                    made = step()
                    if hasattr(made, "__enter__"):
                        stack.enter_context(made)
            except BaseException as exc:  # noqa: BLE001 - re-raised below, after the other ranks know
                failure = exc
        if dist is not None and not dist.all_ok(failure is None) and failure is None:
            raise PeerError("rank 0 could not start training; see its message")
        if failure is not None:
            raise failure
        yield
