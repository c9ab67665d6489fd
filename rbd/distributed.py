"""Training on several processes: `torchrun --nproc_per_node N -m rbd train DATA --out DIR`.

torchrun starts N copies of the command and tells each its rank (RANK, WORLD_SIZE, LOCAL_RANK).
They join one process group (NCCL between GPUs, gloo on CPUs); the student is wrapped in
DistributedDataParallel, so every step averages the gradients of all processes, each of which
drew its own crops from a seed derived from its rank. What the processes must agree on comes
from rank 0: whether to stop (the time budget runs on rank 0's clock; a step one process skips
would leave the others waiting in it forever) and the calibrated, saved model. The others then
wait for rank 0 to finish saving and exit.

Outside torchrun a process is a `Group` of one, on which every call does nothing, so `train()`
reads the same either way.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .errors import InvalidInputError
from .runtime import device_name_parts, resolve_device

# Rank 0 calibrates and saves while the others wait at a barrier: allow for a large set.
TIMEOUT = timedelta(hours=1)


@dataclass(frozen=True)
class Group:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # where collectives run (CUDA for NCCL)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def seed(self, seed: int) -> int:
        """This process's own seed for its random crops, derived from the run's seed and its rank."""
        return int(np.random.SeedSequence([seed, self.rank]).generate_state(1)[0])

    def wrap(self, module: nn.Module) -> nn.Module:
        """`module` with gradients averaged over the processes at each backward pass."""
        if self.size == 1:
            return module
        return DistributedDataParallel(module, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def from_main(self, value: float) -> float:
        """Rank 0's `value`, on every process."""
        if self.size == 1:
            return value
        tensor = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        dist.broadcast(tensor, src=0)
        return float(tensor.item())


def current() -> Group:
    """The group this process belongs to: the initialised process group's, or a group of one."""
    if not (dist.is_available() and dist.is_initialized()):
        return Group()
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    return Group(dist.get_rank(), dist.get_world_size(), device)


@contextmanager
def process_group(device: str = "auto") -> Iterator[Group]:
    """Join the process group torchrun describes in the environment for the block (nothing to join
    outside torchrun); at its end, wait until every process is done (rank 0 saving) and leave."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield Group()
        return
    kind, index = device_name_parts(device)
    if kind == "cuda" and index:  # torchrun gives each process its own GPU (LOCAL_RANK); one named for all would be shared
        raise InvalidInputError(f"under torchrun each process trains on its own GPU: give --device cuda, not {device}")
    cuda = resolve_device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))  # one GPU per process: "cuda" is this one
    dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
    try:
        yield current()
        dist.barrier()
    finally:
        dist.destroy_process_group()
