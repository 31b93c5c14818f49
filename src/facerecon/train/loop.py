"""Shared training machinery: seeded batching, CSV logs, checkpoints, progress."""
from __future__ import annotations

import csv
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from .data import PositionSet


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Batches:
    """Endless seeded shuffled mini-batches over a :class:`PositionSet` (epoch-aware).

    ``repeat`` includes every item that many times per epoch (the paper reuses real
    images about three times an epoch when they are few).
    """

    def __init__(self, data: PositionSet, batch: int, seed: int | list[int], repeat: int = 1):
        self.data = data
        self.batch = batch
        self.repeat = repeat
        self.rng = np.random.default_rng(seed)
        self.epoch = 0
        self._order = np.zeros(0, np.int64)
        self._pos = 0

    def _new_epoch(self) -> None:
        self._order = np.concatenate([self.rng.permutation(len(self.data)) for _ in range(self.repeat)])
        self._pos = 0
        self.epoch += 1

    def next_indices(self) -> np.ndarray:
        if self._pos + self.batch > len(self._order):
            self._new_epoch()
        idx = self._order[self._pos : self._pos + self.batch]
        self._pos += self.batch
        return idx

    def images(self, idx: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.data.images[idx].astype(np.float32))

    def state(self) -> dict:
        return {"epoch": self.epoch, "pos": self._pos, "order": self._order.tolist(), "rng": self.rng.bit_generator.state}

    def load_state(self, st: dict) -> None:
        self.epoch, self._pos = int(st["epoch"]), int(st["pos"])
        self._order = np.asarray(st["order"], np.int64)
        self.rng.bit_generator.state = st["rng"]


class ShardedBatches:
    """The global batch of a data-parallel step: one :class:`Batches` per data shard, ``batch / n_shards`` items each.

    A process holds the shards it computes: all of them in a single-process run (which then
    runs the step shard by shard, exactly as the ranks of a DDP run would), or its own in a
    DDP rank.  With one shard this is a plain :class:`Batches` with the run's seed (the
    batches of every earlier single-process run); shard ``k`` of ``n`` draws from the seed
    ``[seed, k, n]``, whichever process holds it.
    """

    def __init__(self, shards: dict[int, PositionSet], batch: int, seed: int, n_shards: int, repeat: int = 1):

        if batch % n_shards:
            raise ConfigError(f"batch {batch} does not split into {n_shards} equal shards (data-parallel ranks)")
        self.n_shards = n_shards
        self.parts = {k: Batches(d, batch // n_shards, seed if n_shards == 1 else [seed, k, n_shards], repeat)
                      for k, d in sorted(shards.items())}  # fmt: skip

    def next_indices(self) -> dict[int, np.ndarray]:
        return {k: b.next_indices() for k, b in self.parts.items()}

    def state(self) -> dict:
        if self.n_shards == 1:
            return self.parts[0].state()
        return {"shards": {str(k): b.state() for k, b in self.parts.items()}}

    def load_state(self, st: dict) -> None:
        if self.n_shards == 1:
            self.parts[0].load_state(st)
            return
        if "shards" not in st or len(st["shards"]) != self.n_shards:
            from ..errors import ConfigError

            raise ConfigError(f"the checkpoint was written by a run with another number of data shards than {self.n_shards}")
        for k, b in self.parts.items():
            b.load_state(st["shards"][str(k)])


def merge_states(states: list[dict]) -> dict:
    """One :meth:`ShardedBatches.state` from those of the ranks (each holds its own shards)."""
    if len(states) == 1 or "shards" not in states[0]:
        return states[0]
    return {"shards": {k: v for st in states for k, v in st["shards"].items()}}


class CsvLog:
    """Append-only CSV log (one row per logging step); survives resumes."""

    def __init__(self, path: Path, fields: list[str]):
        self.path = Path(path)
        self.fields = fields
        new = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = self.path.open("a", newline="")
        self._w = csv.DictWriter(self._f, fieldnames=fields, extrasaction="ignore")
        if new:
            self._w.writeheader()

    def write(self, row: dict) -> None:
        self._w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def run_state(step: int, timer: "Timer", src, tgt, gather=None) -> dict:
    """What a checkpoint needs to resume exactly: step, time, batching and RNG state.

    ``src``/``tgt``: :class:`Batches` or :class:`ShardedBatches`; ``gather``: in a DDP run, a
    function collecting one object from every rank (so rank 0 saves all shards' batching).
    """
    src_st = src.state()
    tgt_st = tgt.state() if tgt is not None else None
    if gather is not None:
        src_st = merge_states(gather(src_st))
        tgt_st = merge_states(gather(tgt_st)) if tgt is not None else None
    return {"step": step, "seconds": timer.elapsed, "source_batches": src_st,
            "target_batches": tgt_st, "torch_rng": torch.get_rng_state().tolist()}


def resume_run(meta: dict, timer: "Timer", src, tgt) -> int:
    """Restore :func:`run_state` from a loaded checkpoint's meta; returns the step to continue from."""
    timer.offset = float(meta.get("seconds", 0.0))
    src.load_state(meta["source_batches"])
    if tgt is not None and meta.get("target_batches"):
        tgt.load_state(meta["target_batches"])
    torch.set_rng_state(torch.tensor(meta["torch_rng"], dtype=torch.uint8))
    return int(meta["step"])


@dataclass
class Timer:
    start: float = 0.0
    offset: float = 0.0  # seconds accumulated by earlier (resumed) runs

    def __post_init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return self.offset + time.perf_counter() - self.start
