"""The process group of a data-parallel run (see :mod:`facerecon.train.ddp` for the launcher and the rules).

:class:`Dist` says where a process stands (rank, world, device) and wraps the few collective
operations training needs; a default ``Dist()`` is a single process and does nothing.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..errors import ConfigError


@dataclass(frozen=True)
class Dist:
    """Where this process stands in a data-parallel run (the default: a single process)."""

    rank: int = 0
    world: int = 1
    device: str = "cpu"
    active: bool = False  # a process group is initialised

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` inside DistributedDataParallel when distributed (gradients averaged over ranks)."""
        if not self.active:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [torch.device(self.device).index] if self.device.startswith("cuda") else None
        # default buffer sync: rank 0's BatchNorm running statistics are broadcast at every forward
        return DistributedDataParallel(module, device_ids=ids)

    def gather(self, obj):
        """``[obj of rank 0, obj of rank 1, ...]`` on every rank."""
        if not self.active:
            return [obj]
        out = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    def mean_over_ranks(self, values: dict[str, float]) -> dict[str, float]:
        """The mean of each logged number over the ranks (for the log: the global batch's value)."""
        if not self.active:
            return values
        keys = sorted(values)
        t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        return {k: float(v) / self.world for k, v in zip(keys, t.tolist())}

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()


def launched_by_torchrun() -> bool:
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def init_from_env() -> Dist:
    """Join the process group ``torchrun`` set up (env:// rendezvous); NCCL with CUDA, else gloo."""
    if not launched_by_torchrun():
        raise ConfigError("--ddp: not started by torchrun (RANK, WORLD_SIZE, LOCAL_RANK are not set); "
                          "run `torchrun --nproc-per-node N -m facerecon.train.ddp pose ...`")  # fmt: skip
    import torch.distributed as td

    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    cuda = torch.cuda.is_available()
    device = f"cuda:{local}" if cuda else "cpu"
    if cuda:
        torch.cuda.set_device(local)
    if not td.is_initialized():
        td.init_process_group("nccl" if cuda else "gloo")
    return Dist(rank, world, device, active=world > 1)


def shutdown(d: Dist) -> None:
    if d.active and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
