"""Multi-process training with torch.distributed (launched by ``torchrun``).

``torchrun --nproc_per_node=N -m aemg pretrain ...`` sets RANK, WORLD_SIZE, LOCAL_RANK and
MASTER_ADDR/PORT; :func:`setup` then joins the process group (NCCL on GPU, gloo on CPU). Every
process takes a contiguous slice of each global batch; losses are normalised by the global token
count, so the averaged gradients equal those of one process on the whole batch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """``rank``, ``world`` size and ``local_rank`` of this process (0, 1, 0 when not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device: str | None = None) -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1), else single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and (device is None or str(device).startswith("cuda"))
        if use_cuda:
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), local)


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of ``x`` over processes (``x`` itself when not distributed); returns a new tensor."""
    x = x.detach().clone()
    if active():
        dist.all_reduce(x)
    return x


def barrier() -> None:
    if active():
        dist.barrier()


def any_true(flag: bool) -> bool:
    """True when ``flag`` is true on any process."""
    t = torch.tensor([1.0 if flag else 0.0])
    if active():
        if dist.get_backend() == "nccl":
            t = t.cuda()
        dist.all_reduce(t)
    return bool(t.item() > 0)
