"""Shared training machinery: seeded batching, CSV logs, checkpoints, progress."""
from __future__ import annotations

import csv
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

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

    def __init__(self, data: PositionSet, batch: int, seed: int, repeat: int = 1):
        self.data = data
        self.batch = batch
        self.repeat = repeat
        self.rng = np.random.default_rng(seed)
        self.epoch = 0
        self._order = np.zeros(0, np.int64)
        self._pos = 0

    @property
    def epoch_size(self) -> int:
        return len(self.data) * self.repeat

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


def run_state(step: int, timer: "Timer", src: Batches, tgt: Batches | None) -> dict:
    """What a checkpoint needs to resume exactly: step, time, batching and RNG state."""
    return {"step": step, "seconds": timer.elapsed, "source_batches": src.state(),
            "target_batches": tgt.state() if tgt is not None else None, "torch_rng": torch.get_rng_state().tolist()}


def resume_run(meta: dict, timer: "Timer", src: Batches, tgt: Batches | None) -> int:
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
