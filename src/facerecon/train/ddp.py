"""Data-parallel training with ``torch.distributed`` (DDP), launched by ``torchrun``.

    torchrun --nproc-per-node 2 -m facerecon.train.ddp pose --recipe fast --data runs/data -o runs/pose-ddp
    torchrun --nproc-per-node 2 $(which facerecon) train pose --ddp --recipe fast --data runs/data -o runs/pose-ddp
    torchrun --nnodes 2 --node-rank R --master-addr HOST --nproc-per-node 8 -m facerecon.train.ddp pose ...

* backend: NCCL when CUDA is available (one GPU per local rank), gloo on CPU;
* data: each rank reads only its shard of the position-image sets
  (:meth:`~facerecon.train.data.PositionSet.load_shard`: a seed range of every recipe row,
  :func:`~facerecon.train.data.shard_ranges`), or, if ``facerecon train data --shard R/N``
  built per-shard files (each rank generating only its own frames), that file;
* batch: the recipe's ``batch`` is the GLOBAL batch, split equally over the ranks;
* rank 0 writes the checkpoint (with every rank's batching state) and the log; resuming
  needs the same number of ranks.

BatchNorm: every rank normalises with the statistics of its own part of the batch (as
"ghost batch norm"; running statistics follow rank 0, whose buffers DDP broadcasts at each
forward).  A single-process run with ``--set shards=N`` computes exactly this (the step runs
shard by shard), so a DDP run with N ranks and a single-process run with ``shards = N`` give
the same losses and weights (``tests/test_train_ddp.py``).  We do not use SyncBatchNorm:
it does not run on CPU/gloo, and per-rank statistics keep each rank independent of the others
until the gradient average.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..errors import FaceReconError
from .distributed import Dist, init_from_env, launched_by_torchrun, shutdown
from .pose import train_pose
from .recipes import load_sets, parse_overrides, pose_config

__all__ = ["Dist", "init_from_env", "launched_by_torchrun", "shutdown", "run_pose", "main"]

def run_pose(recipe: str, data: Path, out: Path, overrides: dict, d: Dist, progress=None):
    """Train DAPoseNet on rank ``d.rank`` of ``d.world``, each rank reading only its data shards."""
    cfg = pose_config(recipe, {**overrides, "shards": d.world} if d.active else overrides)
    source, target, val = load_sets(data, cfg.selfsup_steps > 0, shard=(d.rank, d.world) if d.active else None)

    net = train_pose(out, source, target, cfg, validation=val if d.main else None, progress=progress, dist=d)
    d.barrier()
    return net, cfg


def main(argv: list[str] | None = None) -> int:
    """``python -m facerecon.train.ddp pose ...`` (under torchrun; alone it runs as one process)."""
    ap = argparse.ArgumentParser(prog="python -m facerecon.train.ddp", description=__doc__.split("\n\n")[0])
    ap.add_argument("kind", choices=["pose"], help="network to train (DDP covers DAPoseNet)")
    ap.add_argument("--recipe", default="fast", help="a [pose.NAME] recipe of configs/train.toml")
    ap.add_argument("--data", type=Path, default=Path("runs/data"), help="folder made by `facerecon train data`")
    ap.add_argument("-o", "--out", type=Path, required=True, help="run folder (rank 0 writes it)")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="override a recipe field, key=value")
    args = ap.parse_args(argv)

    d = init_from_env() if launched_by_torchrun() else Dist()
    try:
        run_pose(args.recipe, args.data, args.out, parse_overrides(args.sets), d)
        if d.main:
            print(f"done: {args.out / 'checkpoint.safetensors'} ({d.world} rank(s), backend "
                  f"{torch.distributed.get_backend() if d.active else 'none'})")  # fmt: skip
    except FaceReconError as exc:
        print(f"error: {exc.one_line()}")
        return 2
    finally:
        shutdown(d)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
