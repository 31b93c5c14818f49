"""Torch datasets over synthetic data (see :mod:`facerecon.synth.dataset` for the sample format).

* :class:`SynthShardDataset` - map-style, reads a generated directory;
* :class:`SynthIterableDataset` - generates on the fly (same samples for the same seed);
* :class:`DerivedLabels` - transform adding the ground-truth mesh and face offsets.

Samples are raw dicts (``depth_mm``, ``intrinsics``, ``labels``, ``segment``); pass a
``transform`` (e.g. the position-image conversion of ``facerecon.preprocess``) to turn
them into tensors, or a ``collate_fn`` such as :func:`collate_raw` to batch them as lists.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch.utils.data as tud

from ..facemodel.model import FaceModel
from .dataset import load_manifest, raw_sample, storage_unit_mm
from .labels import gt_face_offsets, gt_vertices
from .shards import ShardReader


def collate_raw(batch: list[dict]) -> list[dict]:
    """DataLoader ``collate_fn`` that keeps raw samples as a list (no tensor conversion)."""
    return list(batch)


class SynthShardDataset(tud.Dataset):
    """Map-style dataset over a generated directory; ``transform(sample)`` is applied if given."""

    def __init__(self, root: str | Path, transform: Callable | None = None):
        self.root = Path(root)
        self.manifest = load_manifest(self.root)
        self.transform = transform
        self.unit = float(self.manifest["depth_unit_mm"])
        fm = self.manifest.get("face_model", {})
        self._dims = (int(fm.get("n_identity", 100)), int(fm.get("n_expression", 55)))
        self._shards = [(e["file"], e["start"], e["count"]) for e in self.manifest["shards"]]
        self._starts = np.array([st for _, st, _ in self._shards])
        self._readers: dict[int, ShardReader] = {}

    def __len__(self) -> int:
        return int(sum(c for *_, c in self._shards))

    def _reader(self, k: int) -> ShardReader:
        if k not in self._readers:
            self._readers[k] = ShardReader(self.root / self._shards[k][0], *self._dims)
        return self._readers[k]

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(i)
        k = int(np.searchsorted(self._starts, i, side="right") - 1)
        sample = self._reader(k).sample(i - self._shards[k][1], self.unit)
        return self.transform(sample) if self.transform else sample


class SynthIterableDataset(tud.IterableDataset):
    """Generates samples ``start .. start+n-1`` (endless if ``n`` is None) on the fly, split across DataLoader workers.

    Each worker process builds its own generator (loads the face model once).
    """

    def __init__(self, preset: str = "biwi", sensor: str | None = None, seed: int = 0, n: int | None = None,
                 start: int = 0, transform: Callable | None = None):  # fmt: skip
        self.preset, self.sensor, self.seed, self.n, self.start = preset, sensor, int(seed), n, int(start)
        self.transform = transform
        self._gen = None

    def __getstate__(self) -> dict:  # DataLoader workers build their own generator
        return {**self.__dict__, "_gen": None}

    def _generator(self):
        if self._gen is None:
            from .generator import SynthGenerator

            self._gen = SynthGenerator(self.preset, self.sensor, self.seed)
        return self._gen

    def __iter__(self) -> Iterator[dict]:
        info = tud.get_worker_info()
        wid, nw = (0, 1) if info is None else (info.id, info.num_workers)
        gen = self._generator()
        unit = storage_unit_mm(gen.sensor)
        i = self.start + wid
        while self.n is None or i < self.start + self.n:
            sample = raw_sample(gen.generate(i), unit)
            yield self.transform(sample) if self.transform else sample
            i += nw


class DerivedLabels:
    """Transform adding the large labels recomputed with the face model.

    Adds ``labels["vertices_cam"]`` (V, 3) camera-frame ground-truth mesh (mm) and
    ``labels["face_offsets"]`` (n_face, 3) head-frame offsets of the ICT face region from
    the reference face (the shape network's target).
    """

    def __init__(self, model=None, mesh: bool = True, offsets: bool = True):
        self.model, self.mesh, self.offsets = model, mesh, offsets

    def __getstate__(self) -> dict:  # DataLoader workers reload the model (0.3 s) instead of pickling it
        return {**self.__dict__, "model": None}

    def __call__(self, sample: dict) -> dict:

        if self.model is None:
            self.model = FaceModel.load()
        labels = dict(sample["labels"])
        if self.mesh:
            labels["vertices_cam"] = gt_vertices(self.model, labels, "camera").astype(np.float32)
        if self.offsets:
            labels["face_offsets"] = gt_face_offsets(self.model, labels)
        return {**sample, "labels": labels}
