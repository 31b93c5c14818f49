"""The TrueDepth mannequin: its data files and its head frame.

Reference poses of the 30 real frames are in :mod:`.mannequin_poses`, splats of the cloud
at any pose in :mod:`.mannequin_splat`; the rigid registration tools in
:mod:`facerecon.metrics.align` (``CloudTarget``, ``multi_start_icp``).

Data (StandardCyborg test data): ``Expected.ply`` is the fused point cloud (45,428
surfels with normals, metres) of a mannequin head with neck and shoulders, in a frame of
its own; ``DepthFrames/frame-*.ply`` are 30 real TrueDepth frames (320 x 240) taken while
the phone, held sideways, sweeps from one ear to the other; ``motion-data.json`` is the
phone's IMU log (attitude quaternions, 100 Hz).

Head frame (:func:`align_mannequin`)
------------------------------------
1. **Multi-start ICP.**  The ICT neutral face (``narrow_face`` region, 2,000 vertices)
   is registered to the cloud by rigid point-to-plane ICP against the cloud's own
   normals (KD-tree, shrinking correspondence distance, pairs beyond 3x the median
   dropped).  72 initial orientations (the face turned towards 24 Fibonacci-sphere
   directions x 3 rolls about it), each with the face centroid on the cloud centroid; a
   coarse ICP (300 points, 14 iterations) from every start, a fine ICP of the 6 best;
   the winner has the lowest robust residual (RMS of the distances capped at 10 mm)
   among those with at least half of the face within 5 mm of the cloud.
2. **Symmetry plane.**  The mannequin's face is not the ICT mean face (its eyes sit
   higher, its nose is shorter), so step 1's best fit is a compromise with several
   nearby minima: the plain winner put the ICT eyes ~20 mm below the mannequin's and
   missed a lower-residual minimum.  Both heads are bilaterally symmetric, so the
   sagittal plane is fixed by the data instead: the head part of the cloud is mirrored
   across the step-1 sagittal plane and registered back onto itself (95 % of the
   mirrored points within 5 mm); that gives the mannequin's own symmetry plane
   (2.6 degrees and 1.7 mm from step 1's), and the head frame's x = 0 plane is set on it.
3. **In-plane fit.**  Pitch and the in-plane position (head y, z) by ICP restricted to
   motions that keep the sagittal plane (rotation about its normal, translation within
   it), from 15 starts (head-y shifts -30..+10 mm x pitch -10, 0, +10 degrees), keeping
   the lowest robust residual.  Result: robust residual 4.63 mm (step 1: 5.00 mm), 72 %
   of the face within 5 mm (their RMS 2.5 mm); the ICT eyes and nose tip land on the
   mannequin's (see ``docs/realdata_mannequin_alignment.png``).

No scale: the mannequin's face keeps its own size.  The mannequin's head frame *is* the
ICT head frame at that placement: ``cloud_point = R_a @ head_point + t_a``.  Its
absolute definition is uncertain by a few degrees / ~10 mm (the shape mismatch); the
poses *relative* to it are precise.

Reference poses (:func:`.mannequin_poses.mannequin_reference`)
--------------------------------------------
Each real frame's points (camera frame, mm, nearer than 800 mm: the wall is farther) are
registered to the cloud the same way (frame 0 multi-start, frame k initialised from
frame k-1), giving ``cloud = R_k @ cam + t_k``; the head pose in the camera is then
``R = R_k^T R_a``, ``t = R_k^T (t_a - t_k)``.  These are *reference* poses for
evaluation (a registration, not a measurement; accuracy limited by the fused cloud and
the ICP, about 1 mm / well under 1 degree judged by the residuals), never training
labels.  Cross-check: the phone's IMU attitude gives the same relative rotation angles
to within ~3 % (see :attr:`MannequinReference.imu_relative_angle_deg`).

Both results are cached as JSON under ``$FACERECON_HOME/realdata`` keyed by the input
files' sizes and modification times (and the algorithm version).
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..facemodel.model import FaceModel
from ..fileutil import write_text_atomic
from ..geometry.pose import HeadPose
from ..geometry.rotations import euler_to_matrix
from ..io.truedepth import read_ply_cloud
from ..metrics.align import CloudTarget, multi_start_icp, start_rotations
from . import cache_dir, real_data_path

_VERSION = 2  # bump when the registration changes (invalidates caches)
MAX_FRAME_DEPTH_MM = 800.0  # frame points farther than this (the room) are not registered
IN_PLANE_SHIFTS_MM = (-30.0, -20.0, -10.0, 0.0, 10.0)  # in-plane starts: head-y shifts (up is -y) ...
IN_PLANE_PITCHES_DEG = (-10.0, 0.0, 10.0)  # ... x pitches about the ICT nose tip


# -- data ------------------------------------------------------------------------------------------------------


def _folder(path: str | Path | None) -> Path:
    return Path(path) if path is not None else real_data_path("truedepth-mannequin")


@lru_cache(maxsize=2)
def _cloud_cached(path: str) -> dict:

    c = read_ply_cloud(path)
    for v in c.values():
        v.setflags(write=False)
    return c


def load_mannequin_cloud(path: str | Path | None = None) -> dict[str, np.ndarray]:
    """``Expected.ply`` as ``points`` (mm), ``normals``, ``colors`` (read-only arrays, cached)."""
    p = _folder(path)
    p = p / "Expected.ply" if p.is_dir() else p
    return _cloud_cached(str(p.resolve()))


def frame_files(path: str | Path | None = None) -> list[Path]:
    """The 30 real frames ``DepthFrames/frame-*.ply`` in sweep order."""
    folder = _folder(path)
    folder = folder.parent if folder.is_file() else folder
    files = sorted((folder / "DepthFrames").glob("frame-*.ply"))
    if not files:
        from ..errors import AssetError

        raise AssetError(f"{folder / 'DepthFrames'}: no frame-*.ply files")
    return files


def _file_key(*paths: Path, extra: str = "") -> str:
    h = hashlib.sha256(f"v{_VERSION}|{extra}".encode())
    for p in paths:
        st = p.stat()
        h.update(f"|{p.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _read_cache(name: str) -> dict | None:
    p = cache_dir() / name
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_cache(name: str, doc: dict) -> None:
    try:
        write_text_atomic(cache_dir() / name, json.dumps(doc))
    except OSError:  # a read-only home only costs recomputation
        pass


# -- (a) the mannequin's head frame ----------------------------------------------------------------------------


@dataclass
class MannequinAlignment:
    """The mannequin's head frame in the cloud: ``cloud = pose.apply(head)`` (mm).

    ``residuals``: robust_rms_mm, inlier_fraction, inlier_rms_mm of the ICT narrow face
    against the cloud; ``candidates``: the same for the in-plane ICP candidates (best
    first); ``symmetry``: the mannequin's symmetry plane relative to the unconstrained
    fit (``plane_angle_deg``, ``plane_offset_mm``), its reflection-ICP residuals and
    whether it was used (``applied``); ``unconstrained``: the multi-start winner before the
    symmetry stage (``rotation``, ``translation``, ``residuals``, fine candidates).
    """

    pose: HeadPose
    residuals: dict
    candidates: list = field(default_factory=list)
    n_starts: int = 0
    seconds: float = 0.0
    cached: bool = False
    symmetry: dict = field(default_factory=dict)
    unconstrained: dict = field(default_factory=dict)

    def cloud_to_head(self, pts: np.ndarray) -> np.ndarray:
        return self.pose.inverse_apply(pts)


def _face_source(model: FaceModel, n: int = 2000) -> np.ndarray:
    face = model.neutral[model.region_vertices("narrow_face")].astype(np.float64)
    return face[np.random.default_rng(0).choice(len(face), min(n, len(face)), replace=False)]


def align_mannequin(
    path: str | Path | None = None, *, model: FaceModel | None = None, use_cache: bool = True,
    n_directions: int = 24, n_rolls: int = 3,
) -> MannequinAlignment:
    """Register the ICT neutral face to ``Expected.ply`` (multi-start rigid ICP; see module doc).

    ~5-10 s uncached on one core; cached under ``$FACERECON_HOME/realdata``.
    """
    p = _folder(path)
    p = p / "Expected.ply" if p.is_dir() else p
    name = f"mannequin-alignment-{_file_key(p, extra=f'{n_directions}x{n_rolls}')}.json"
    if use_cache and (doc := _read_cache(name)) is not None:
        return MannequinAlignment(HeadPose(doc["rotation"], doc["translation"]), doc["residuals"],
                                  doc["candidates"], doc["n_starts"], doc["seconds"], cached=True,
                                  symmetry=doc["symmetry"], unconstrained=doc["unconstrained"])  # fmt: skip
    t0 = time.perf_counter()
    cloud = load_mannequin_cloud(p)
    target = CloudTarget(cloud["points"], cloud["normals"])
    model = model if model is not None else FaceModel.load()
    src = _face_source(model)
    starts = start_rotations(n_directions, n_rolls)
    p1, res1, cands1 = multi_start_icp(target, src, starts)
    unconstrained = {"rotation": p1.R.tolist(), "translation": p1.t_mm.tolist(), "residuals": res1,
                     "candidates": sorted([c[0] for c in cands1], key=lambda c: c["robust_rms_mm"])}  # fmt: skip
    # symmetry stage: the sagittal plane is the mannequin's own; pitch and in-plane position by ICP
    sym = symmetry_plane(cloud["points"], cloud["normals"], p1)
    pose, res, cands = p1, res1, []
    if sym["applied"]:
        n_h, d = np.asarray(sym["normal_head"]), sym["offset_mm"]
        z0 = np.array([0.0, 0.0, 1.0])
        z = z0 - (z0 @ n_h) * n_h
        z /= np.linalg.norm(z)
        basis = np.stack([n_h, np.cross(z, n_h), z], axis=1)  # new head axes in the old head frame
        rs, ts = p1.R @ basis, p1.R @ (d * n_h) + p1.t_mm
        nose = model.neutral[model.landmarks_68[30]].astype(np.float64)
        sub = src[np.random.default_rng(1).choice(len(src), 500, replace=False)]
        coarse = []
        for dy in IN_PLANE_SHIFTS_MM:
            for pitch in IN_PLANE_PITCHES_DEG:
                r0 = rs @ euler_to_matrix(0.0, pitch, 0.0)
                t0_ = ts + rs @ np.array([0.0, dy, 0.0]) + rs @ nose - r0 @ nose
                pc = target.icp(sub, HeadPose(r0, t0_), iterations=25, max_dist=(20.0, 5.0), plane_normal=rs[:, 0])
                coarse.append((target.residuals(sub, pc)["robust_rms_mm"], pc))
        coarse.sort(key=lambda c: c[0])
        for _, pc in coarse[:4]:
            pc = target.icp(src, pc, iterations=30, max_dist=(10.0, 4.0), plane_normal=rs[:, 0])
            cands.append((target.residuals(src, pc), pc))
        ok = [c for c in cands if c[0]["inlier_fraction"] >= 0.5] or cands
        res, pose = min(ok, key=lambda c: c[0]["robust_rms_mm"])
    cand_doc = sorted([c[0] for c in cands], key=lambda c: c["robust_rms_mm"])
    out = MannequinAlignment(pose, res, cand_doc, len(starts), time.perf_counter() - t0, symmetry=sym,
                             unconstrained=unconstrained)  # fmt: skip
    _write_cache(name, {"rotation": pose.R.tolist(), "translation": pose.t_mm.tolist(), "residuals": res, "candidates": cand_doc,
                        "n_starts": len(starts), "seconds": out.seconds, "source": str(p), "symmetry": sym,
                        "unconstrained": unconstrained})  # fmt: skip
    return out


def symmetry_plane(
    points: np.ndarray, normals: np.ndarray, pose: HeadPose,
    radius_mm: float = 160.0, below_mm: float = 90.0, min_inliers: float = 0.8,
) -> dict:
    """The bilateral symmetry plane of the head part of a cloud, near the head frame ``pose``.

    The cloud's points within ``radius_mm`` of the head origin and above ``below_mm``
    (head y) are mirrored across the head frame's x = 0 plane and registered back onto
    the cloud (ICP from identity); the improper transform "register o mirror" is the
    reflection across the true symmetry plane ``normal . p = offset`` (head-frame
    coordinates).  ``applied`` is False when fewer than ``min_inliers`` of the mirrored
    points land within CLOUD_INLIER_MM (no usable symmetry).
    """
    h = pose.inverse_apply(points)
    sel = (np.linalg.norm(h, axis=1) < radius_mm) & (h[:, 1] < below_mm)
    head = CloudTarget(h[sel], np.asarray(normals, np.float64)[sel] @ pose.R)
    mirror = np.diag([-1.0, 1.0, 1.0])
    rng = np.random.default_rng(0)
    src = head.points[rng.choice(len(head.points), min(3000, len(head.points)), replace=False)] @ mirror
    pm = head.icp(src, HeadPose.identity(), iterations=50, max_dist=(20.0, 3.0))
    res = head.residuals(src, pm)
    a = pm.R @ mirror
    w, v = np.linalg.eigh(0.5 * (a + a.T))
    n = v[:, int(np.argmin(w))]
    n = n if n[0] > 0 else -n
    d = 0.5 * float(pm.t_mm @ n)
    return {
        "normal_head": n.tolist(), "offset_mm": d, "plane_angle_deg": float(np.degrees(np.arccos(np.clip(n[0], -1, 1)))),
        "plane_offset_mm": d, "residuals": res, "applied": bool(res["inlier_fraction"] >= min_inliers),
    }  # fmt: skip
