"""Biwi Kinect Head Pose database: frame index, the two published protocols, conversion.

Layout of a copy of the database (``ROOT`` may be the folder holding ``hpdb`` or ``hpdb``
itself)::

    hpdb/NN/frame_XXXXX_depth.bin   depth, run-length coded int16 mm
    hpdb/NN/frame_XXXXX_pose.txt    head rotation R and centre t (mm, depth camera frame)
    hpdb/NN/depth.cal               depth intrinsics
    hpdb/NN.obj                     the subject's neutral head mesh (mm, head frame)

24 sequences (``NN`` = 01..24) of 20 people, 15,678 frames in the public release.
The file formats themselves are read by :mod:`facerecon.io.biwi` (imported lazily here).

Protocols (the paper's Table 3):

* ``group1``: by sequence: sequences 11 and 12 are the test set, all others train.
* ``group2``: a random 70/30 split of all frames.  The script most papers copy draws it
  without a seed, so published numbers are not reproducible; here the frames are sorted
  by (sequence, frame) and permuted with ``numpy.random.default_rng(seed)``, **seed 0 by
  default**; the first 30% of the permutation (rounded) is the test set.  The split
  depends only on the set of indexed frames and the seed; publish it with
  :meth:`BiwiSplit.write` next to any number you report.

Poses are kept exactly as Biwi gives them (head-mesh frame -> depth camera frame, mm)
and turned into yaw / pitch / roll with :mod:`facerecon.geometry.rotations`.  Biwi's frontal
poses are close to the identity, as in facerecon's canonical head frame, but the sign
conventions of its head axes have not been checked against real frames here (no Biwi
data in this repository): before comparing per-axis numbers with other papers, check a
few frames; the geodesic error does not depend on the Euler convention.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ..errors import InputFileError
from ..fileutil import write_text_atomic
from ..geometry.camera import camera_preset
from ..io.biwi import read_biwi_frame
from .folder import FolderSample, FolderWriter, HeadPose

__all__ = [
    "GROUP1_TEST_SEQUENCES",
    "GROUP2_TEST_FRACTION",
    "DEFAULT_GROUP2_SEED",
    "BiwiFrameRef",
    "BiwiSplit",
    "find_hpdb",
    "index_biwi",
    "split_group1",
    "split_group2",
    "biwi_protocol",
    "load_biwi_sample",
    "convert_biwi_to_folder",
]

GROUP1_TEST_SEQUENCES: tuple[int, ...] = (11, 12)
GROUP2_TEST_FRACTION = 0.3
DEFAULT_GROUP2_SEED = 0
_SEQ_RE = re.compile(r"^\d{2}$")
_FRAME_RE = re.compile(r"^frame_(\d+)_depth\.bin$")


@dataclass(frozen=True, order=True)
class BiwiFrameRef:
    """One Biwi frame on disk (sortable by sequence, then frame number)."""

    sequence: int
    frame: int
    depth_path: Path

    @property
    def pose_path(self) -> Path:
        return self.depth_path.with_name(f"frame_{self.frame:05d}_pose.txt")

    @property
    def cal_path(self) -> Path:
        return self.depth_path.with_name("depth.cal")

    @property
    def mesh_path(self) -> Path | None:
        """``hpdb/NN.obj`` when it exists (the subject's head mesh, head frame)."""
        p = self.depth_path.parent.parent / f"{self.sequence:02d}.obj"
        return p if p.is_file() else None

    @property
    def name(self) -> str:
        """A unique sample name, e.g. ``11_frame_00042``."""
        return f"{self.sequence:02d}_frame_{self.frame:05d}"


def find_hpdb(root: str | Path) -> Path:
    """The ``hpdb`` folder under ``root`` (``root`` itself if it holds the NN folders)."""
    root = Path(root)
    for cand in (root, root / "hpdb", root / "kinect_head_pose_db" / "hpdb"):
        if cand.is_dir() and any(p.is_dir() and _SEQ_RE.match(p.name) for p in cand.iterdir()):
            return cand
    raise InputFileError(root, "no Biwi hpdb folder (expected hpdb/NN/frame_XXXXX_depth.bin)")


def index_biwi(root: str | Path, *, require_pose: bool = True) -> list[BiwiFrameRef]:
    """All frames under ``root``, sorted by (sequence, frame).

    With ``require_pose`` (default) frames without a ``_pose.txt`` are skipped, since
    neither protocol can score them.
    """
    hpdb = find_hpdb(root)
    refs: list[BiwiFrameRef] = []
    for seq_dir in sorted(p for p in hpdb.iterdir() if p.is_dir() and _SEQ_RE.match(p.name)):
        seq = int(seq_dir.name)
        for f in seq_dir.iterdir():
            m = _FRAME_RE.match(f.name)
            if m:
                ref = BiwiFrameRef(seq, int(m.group(1)), f)
                if not require_pose or ref.pose_path.is_file():
                    refs.append(ref)
    if not refs:
        raise InputFileError(hpdb, "no Biwi frames (frame_XXXXX_depth.bin with a pose file) found")
    return sorted(refs)


@dataclass(frozen=True)
class BiwiSplit:
    """A train/test split of Biwi frames under one protocol."""

    protocol: str
    train: tuple[BiwiFrameRef, ...]
    test: tuple[BiwiFrameRef, ...]
    seed: int | None = None
    test_fraction: float | None = None

    def to_json(self) -> dict:
        return {
            "protocol": self.protocol,
            "seed": self.seed,
            "test_fraction": self.test_fraction,
            "n_train": len(self.train),
            "n_test": len(self.test),
            "train": [r.name for r in self.train],
            "test": [r.name for r in self.test],
        }

    def write(self, path: str | Path) -> None:
        """Publish the split (frame names per part) as JSON, atomically."""
        write_text_atomic(path, json.dumps(self.to_json(), indent=0) + "\n")


def split_group1(
    frames: Sequence[BiwiFrameRef], test_sequences: Iterable[int] = GROUP1_TEST_SEQUENCES
) -> BiwiSplit:
    """Group-1 protocol: frames of ``test_sequences`` (default 11 and 12) form the test set."""
    test_seq = set(int(s) for s in test_sequences)
    fr = sorted(frames)
    return BiwiSplit(
        "group1",
        tuple(r for r in fr if r.sequence not in test_seq),
        tuple(r for r in fr if r.sequence in test_seq),
    )


def split_group2(
    frames: Sequence[BiwiFrameRef], *, test_fraction: float = GROUP2_TEST_FRACTION, seed: int = DEFAULT_GROUP2_SEED
) -> BiwiSplit:
    """Group-2 protocol: a seeded random ``1 - test_fraction`` / ``test_fraction`` frame split.

    Deterministic: frames are sorted first, so the order they were listed in does not matter.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    fr = sorted(frames)
    n_test = int(round(test_fraction * len(fr)))
    perm = np.random.default_rng(seed).permutation(len(fr))
    is_test = np.zeros(len(fr), dtype=bool)
    is_test[perm[:n_test]] = True
    return BiwiSplit(
        "group2",
        tuple(r for r, t in zip(fr, is_test) if not t),
        tuple(r for r, t in zip(fr, is_test) if t),
        seed=int(seed),
        test_fraction=float(test_fraction),
    )


def biwi_protocol(frames: Sequence[BiwiFrameRef], protocol: str, *, seed: int = DEFAULT_GROUP2_SEED) -> BiwiSplit:
    """``protocol`` = ``group1`` or ``group2`` (seed used by group2 only)."""
    p = protocol.lower().replace("-", "").replace("_", "")
    if p == "group1":
        return split_group1(frames)
    if p == "group2":
        return split_group2(frames, seed=seed)
    raise ValueError(f"unknown Biwi protocol {protocol!r}; use 'group1' or 'group2'")


def load_biwi_sample(ref: BiwiFrameRef) -> FolderSample:
    """Read one frame (depth, intrinsics from depth.cal or the Biwi preset, pose, mesh path)."""
    frame = read_biwi_frame(ref.depth_path)
    if frame.intrinsics is None:
        frame = frame.with_intrinsics(camera_preset("kinect-v1-biwi").with_size(frame.width, frame.height))
    pose = None
    if "pose" in frame.meta:
        r, t = frame.meta["pose"]
        pose = HeadPose(np.asarray(r, dtype=np.float64), np.asarray(t, dtype=np.float64))
    return FolderSample(ref.name, frame, pose, ref.mesh_path, None, {"sequence": ref.sequence, "frame": ref.frame})


def convert_biwi_to_folder(
    root: str | Path,
    out_dir: str | Path,
    *,
    frames: Iterable[BiwiFrameRef] | None = None,
    copy_meshes: bool = True,
    description: str | None = None,
    exist_ok: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Convert Biwi frames (default: all under ``root``) to the folder format; returns the count.

    Depth becomes lossless 16-bit PNGs (Biwi depth is integer mm).  Each subject's head
    mesh is copied once to ``meshes/NN.obj`` and referenced from the pose files (it stays
    in Biwi's head frame, which is what the folder format expects).  Pose files also
    record ``sequence`` and ``frame``.  Pass ``split.test`` as ``frames`` to export one
    protocol's test set.
    """
    refs = sorted(frames) if frames is not None else index_biwi(root)
    if not refs:
        raise ValueError("no frames to convert")
    first = load_biwi_sample(refs[0])
    desc = description or f"Biwi Kinect Head Pose database frames converted from {Path(root)}"
    writer = FolderWriter(out_dir, intrinsics=first.frame.intrinsics, description=desc, exist_ok=exist_ok,
                          manifest_extra={"source": "biwi"})
    meshes: dict[int, str | None] = {}
    for i, ref in enumerate(refs):
        s = first if i == 0 else load_biwi_sample(ref)
        if ref.sequence not in meshes:
            mp = ref.mesh_path
            meshes[ref.sequence] = writer.add_shared_mesh(f"meshes/{ref.sequence:02d}.obj", mp) if (copy_meshes and mp) else None
        mesh_ref = meshes[ref.sequence] if s.pose is not None else None
        writer.write(ref.name, s.frame, pose=s.pose, mesh_ref=mesh_ref,
                     extra={"source": "biwi", "sequence": ref.sequence, "frame": ref.frame} if s.pose is not None else None)
        if progress is not None:
            progress(i + 1, len(refs))
    return len(refs)
