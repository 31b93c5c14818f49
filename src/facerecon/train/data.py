"""Training sets of position images: synthetic (labelled) and real-domain (unlabelled).

Networks never see raw frames: every frame goes through the same
``localize_head -> make_position_image`` path as at inference, once, and the result is
kept as a compact array file (float16 images + float32 labels) in safetensors, so an
epoch costs only the network.  The same (preset, sensor, seed, n) gives the same bytes.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..errors import FaceReconError
from ..fileutil import atomic_path
from ..io.frame import DepthFrame
from ..preprocess.localize import localize_head
from ..preprocess.position_image import make_position_image
from ..synth.generator import SynthGenerator


@dataclass
class PositionSet:
    """Position images with (optional) labels, all arrays aligned on the first axis.

    images: (N, 3, S, S) float16; center_mm: (N, 3) crop centres; quat: (N, 4) head
    rotation (w >= 0); trans: (N, 3) head origin relative to the centre in position units;
    weights: (N, 155) identity + expression weights; index: (N,) source sample index.
    Unlabelled sets have zero-length label arrays.
    """

    images: np.ndarray
    center_mm: np.ndarray
    scale_mm: np.ndarray
    quat: np.ndarray
    trans: np.ndarray
    weights: np.ndarray
    index: np.ndarray
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(len(self.images))

    @property
    def labelled(self) -> bool:
        return len(self.quat) == len(self.images) and len(self.images) > 0

    def subset(self, idx: np.ndarray) -> "PositionSet":
        lab = self.labelled
        pick = (lambda a: a[idx]) if lab else (lambda a: a)
        return PositionSet(self.images[idx], self.center_mm[idx], self.scale_mm[idx], pick(self.quat), pick(self.trans),
                           pick(self.weights), self.index[idx], dict(self.meta))

    def save(self, path: str | Path) -> None:
        from safetensors.numpy import save_file

        arrays = {k: np.ascontiguousarray(getattr(self, k)) for k in ("images", "center_mm", "scale_mm", "quat", "trans", "weights", "index")}
        with atomic_path(path) as tmp:
            save_file(arrays, str(tmp), metadata={"facerecon_position_set": json.dumps(self.meta, sort_keys=True)})

    @classmethod
    def load(cls, path: str | Path) -> "PositionSet":
        from safetensors import safe_open
        from safetensors.numpy import load_file

        arrays = load_file(str(path))
        with safe_open(str(path), framework="numpy") as f:
            meta = json.loads((f.metadata() or {}).get("facerecon_position_set", "{}"))
        return cls(**arrays, meta=meta)

    @staticmethod
    def concat(sets: list["PositionSet"]) -> "PositionSet":
        cat = lambda name: np.concatenate([getattr(s, name) for s in sets])  # noqa: E731
        meta = {"parts": [s.meta for s in sets], "part_sizes": [len(s) for s in sets]}
        return PositionSet(*(cat(n) for n in ("images", "center_mm", "scale_mm", "quat", "trans", "weights", "index")), meta=meta)


    def shard(self, k: int, n_shards: int) -> "PositionSet":
        """Data shard ``k`` of ``n_shards`` (see :func:`shard_ranges`), in memory; equals :meth:`load_shard`."""
        rows = np.concatenate([np.arange(lo, hi) for lo, hi in shard_ranges(_part_sizes(self.meta, len(self)), k, n_shards)])
        return self.subset(rows.astype(np.int64))

    @classmethod
    def load_shard(cls, path: str | Path, k: int, n_shards: int) -> "PositionSet":
        """Read only data shard ``k`` of ``n_shards`` of a saved set (what one DDP rank trains on)."""
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            meta = json.loads((f.metadata() or {}).get("facerecon_position_set", "{}"))
            n = f.get_slice("images").get_shape()[0]
            ranges = shard_ranges(_part_sizes(meta, n), k, n_shards)
            arrays = {}
            for name in ("images", "center_mm", "scale_mm", "quat", "trans", "weights", "index"):
                sl = f.get_slice(name)
                if sl.get_shape()[0] != n:  # an unlabelled set's empty label arrays
                    arrays[name] = f.get_tensor(name)
                    continue
                arrays[name] = np.concatenate([sl[lo:hi] for lo, hi in ranges])
        return cls(**arrays, meta=meta)


def _part_sizes(meta: dict, n: int) -> list[int]:
    """Sizes of the concatenated parts of a set (one per recipe row; each sorted by sample index)."""
    sizes = meta.get("part_sizes")
    if sizes is None and meta.get("parts"):  # sets merged before part_sizes was recorded
        sizes = [int(m.get("n_requested", 0)) - int(m.get("n_no_head", 0)) for m in meta["parts"]]
    return [int(x) for x in sizes] if sizes and sum(sizes) == n else [n]


def shard_ranges(part_sizes: list[int], k: int, n_shards: int) -> list[tuple[int, int]]:
    """Row ranges of data shard ``k``: the k-th contiguous slice of every part.

    Rows of a part are its frames in sample-index order, i.e. by seed range: shard k holds
    samples ``[m k / n, m (k+1) / n)`` of each recipe row (of m frames), so every shard has
    every preset in the recipe's proportions and no two shards share a frame.
    """
    out, start = [], 0
    for m in part_sizes:
        out.append((start + m * k // n_shards, start + m * (k + 1) // n_shards))
        start += m
    return out


def frame_to_position(frame: DepthFrame):
    """The inference preprocessing: (PositionImage, HeadLocation), or raises NoFaceFoundError."""
    loc = localize_head(frame)
    return make_position_image(frame, loc.center_mm), loc


# -- synthetic sets ----------------------------------------------------------------------
_WORKER: dict = {}


def _init_worker(preset: str, sensor: str, seed: int, threads: int, jitter_mm: float, scans: dict | None = None) -> None:
    import torch

    torch.set_num_threads(threads)

    _WORKER["gen"] = SynthGenerator(preset, sensor, seed, scans=scans)
    _WORKER["jitter"] = jitter_mm


def _synth_one(index: int):
    gen = _WORKER["gen"]
    s = gen.generate(index)
    frame = DepthFrame(s.depth_mm, s.intrinsics, source=f"synth:{gen.preset.name}:{index}")
    try:
        loc = localize_head(frame)
    except FaceReconError:
        return index, None
    centre = loc.center_mm
    if _WORKER["jitter"] > 0:  # seeded per sample, independent of the generator's own streams
        centre = centre + gen.rng(index, 7).normal(0.0, _WORKER["jitter"], 3)
    pim = make_position_image(frame, centre)
    lab = s.labels
    t = np.asarray(lab["translation_mm"], np.float64)
    trans = (t - pim.center_mm) / pim.scale_mm
    w = np.concatenate([lab["identity"], lab["expression"]]).astype(np.float32)
    out_of_span = bool(lab.get("deform")) or lab.get("identity_source", "model") != "model"
    return index, (pim.data.astype(np.float16), pim.center_mm.astype(np.float32), np.float32(pim.scale_mm),
                   np.asarray(lab["quaternion"], np.float32), trans.astype(np.float32), w, out_of_span)


def build_synthetic_set(
    preset: str,
    sensor: str,
    n: int,
    seed: int,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
    start: int = 0,
    center_jitter_mm: float = 0.0,
    scans: dict[str, np.ndarray] | None = None,
) -> PositionSet:
    """Generate frames ``start .. start+n-1`` of (preset, sensor, seed) and turn them into position images.

    Frames where localisation finds no head are left out and counted in ``meta``.  ``scans``:
    real scans as extra identities (name -> ICT displacement, :func:`facerecon.synth.deform.scan_displacement`),
    used by presets with ``[shape] scan_identity``.  Frames with an out-of-span shape keep
    exact pose labels; their ``weights`` are the model part of the shape only (see ``meta``).
    """
    indices = list(range(start, start + n))
    rows: dict[int, tuple] = {}
    failed: list[int] = []
    args = (preset, sensor, seed, 1, center_jitter_mm, scans)
    if workers > 1:
        ctx = mp.get_context("fork" if os.name == "posix" else "spawn")
        with ctx.Pool(workers, initializer=_init_worker, initargs=args) as pool:
            for done, (i, row) in enumerate(pool.imap_unordered(_synth_one, indices, chunksize=8), 1):
                (rows.__setitem__(i, row) if row is not None else failed.append(i))
                if progress:
                    progress(done, n)
    else:
        _init_worker(*args)
        for done, i in enumerate(indices, 1):
            _, row = _synth_one(i)
            (rows.__setitem__(i, row) if row is not None else failed.append(i))
            if progress:
                progress(done, n)
    order = sorted(rows)
    cols = list(zip(*(rows[i] for i in order))) if order else [[]] * 7
    meta = {"kind": "synthetic", "preset": preset, "sensor": sensor, "seed": seed, "start": start, "n_requested": n,
            "center_jitter_mm": center_jitter_mm,
            "n_no_head": len(failed), "no_head_indices": sorted(failed)[:200]}
    if scans:
        meta["scans"] = sorted(scans)
    out_of_span = [i for i, oos in zip(order, cols[6]) if oos]
    if out_of_span:  # their `weights` describe only the model part of the shape (pose labels are exact)
        meta["n_out_of_span"] = len(out_of_span)
        meta["out_of_span_indices"] = out_of_span[:200]
    return PositionSet(
        images=np.stack(cols[0]) if order else np.zeros((0, 3, 160, 160), np.float16),
        center_mm=np.stack(cols[1]) if order else np.zeros((0, 3), np.float32),
        scale_mm=np.asarray(cols[2], np.float32),
        quat=np.stack(cols[3]) if order else np.zeros((0, 4), np.float32),
        trans=np.stack(cols[4]) if order else np.zeros((0, 3), np.float32),
        weights=np.stack(cols[5]) if order else np.zeros((0, 155), np.float32),
        index=np.asarray(order, np.int64),
        meta=meta,
    )


def unlabelled_set(frames: Iterable[DepthFrame], kind: str) -> PositionSet:
    """Position images of real-domain frames (no labels); frames without a head are skipped."""
    imgs, centres, scales, idx, skipped = [], [], [], [], []
    for i, frame in enumerate(frames):
        try:
            pim, _ = frame_to_position(frame)
        except FaceReconError:
            skipped.append(frame.source)
            continue
        imgs.append(pim.data.astype(np.float16))
        centres.append(pim.center_mm.astype(np.float32))
        scales.append(np.float32(pim.scale_mm))
        idx.append(i)
    empty4, empty3 = np.zeros((0, 4), np.float32), np.zeros((0, 3), np.float32)
    return PositionSet(
        images=np.stack(imgs) if imgs else np.zeros((0, 3, 160, 160), np.float16),
        center_mm=np.stack(centres) if centres else empty3,
        scale_mm=np.asarray(scales, np.float32),
        quat=empty4, trans=empty3, weights=np.zeros((0, 155), np.float32),
        index=np.asarray(idx, np.int64),
        meta={"kind": kind, "n_frames": len(imgs) + len(skipped), "skipped": skipped[:50]},
    )
