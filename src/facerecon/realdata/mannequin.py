"""The TrueDepth mannequin: its head frame, reference head poses of the 30 real frames, splats.

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

Reference poses (:func:`mannequin_reference`)
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
from scipy.spatial import cKDTree

from ..camera import Intrinsics
from ..facemodel.model import FaceModel
from ..fileutil import write_text_atomic
from ..io.frame import DepthFrame
from ..rotations import _rz, axis_angle_to_matrix, euler_to_matrix, matrix_to_euler, rotation_angle_deg
from . import EVAL_POSE_KEY, cache_dir, real_data_path

_VERSION = 2  # bump when the registration changes (invalidates caches)
MAX_FRAME_DEPTH_MM = 800.0  # frame points farther than this (the room) are not registered
INLIER_MM = 5.0  # a point within this of the cloud counts as an inlier
CAP_MM = 10.0  # robust residual: RMS of distances capped at this
IN_PLANE_SHIFTS_MM = (-30.0, -20.0, -10.0, 0.0, 10.0)  # in-plane starts: head-y shifts (up is -y) ...
IN_PLANE_PITCHES_DEG = (-10.0, 0.0, 10.0)  # ... x pitches about the ICT nose tip


# -- small rigid ICP against a point cloud with normals ---------------------------------------------------


class CloudTarget:
    """A point cloud with normals as an ICP target (KD-tree built once)."""

    def __init__(self, points: np.ndarray, normals: np.ndarray):
        self.points = np.asarray(points, np.float64)
        self.normals = np.asarray(normals, np.float64)
        self.tree = cKDTree(self.points)

    def icp(
        self, src: np.ndarray, rotation: np.ndarray, translation: np.ndarray, iterations: int = 30,
        max_dist: tuple[float, float] = (15.0, 4.0), plane_normal: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Point-to-plane ICP of ``src`` from (R, t): correspondence distance shrinks geometrically; returns (R, t).

        ``plane_normal`` (unit, target frame) restricts the motion to rotations about it and
        translations perpendicular to it (3 DOF), which keeps every plane with that normal
        -- e.g. a fixed sagittal plane -- in place.
        """
        r = np.asarray(rotation, np.float64).copy()
        t = np.asarray(translation, np.float64).copy()
        if plane_normal is not None:
            n0 = np.asarray(plane_normal, np.float64) / np.linalg.norm(plane_normal)
            h = np.array([0.0, 1.0, 0.0]) if abs(n0[1]) < 0.9 else np.array([0.0, 0.0, 1.0])
            u = np.cross(n0, h)
            u /= np.linalg.norm(u)
            basis = np.stack([n0, u, np.cross(n0, u)])  # rows: rotation axis, two in-plane directions
        thr = np.geomspace(max_dist[0], max_dist[1], iterations)
        for it in range(iterations):
            q = src @ r.T + t
            d, j = self.tree.query(q, distance_upper_bound=thr[it])
            ok = np.isfinite(d)
            if ok.sum() < 12:
                break
            ok &= d <= max(3.0 * float(np.median(d[ok])), max_dist[1])
            qq, pp, nn = q[ok], self.points[j[ok]], self.normals[j[ok]]
            c = qq.mean(axis=0)
            a = np.concatenate([np.cross(qq - c, nn), nn], axis=1)
            b = -np.einsum("ij,ij->i", qq - pp, nn)
            if plane_normal is not None:
                a = np.stack([a[:, :3] @ basis[0], a[:, 3:] @ basis[1], a[:, 3:] @ basis[2]], axis=1)
            ata = a.T @ a
            x = np.linalg.solve(ata + 1e-9 * max(np.trace(ata), 1.0) * np.eye(len(ata)), a.T @ b)
            if plane_normal is not None:
                x = np.concatenate([x[0] * basis[0], x[1] * basis[1] + x[2] * basis[2]])
            dr = axis_angle_to_matrix(x[:3])
            r, t = dr @ r, dr @ (t - c) + c + x[3:]
            if np.linalg.norm(x[:3]) < 1e-7 and np.linalg.norm(x[3:]) < 1e-5:
                break
        u_, _, vt = np.linalg.svd(r)
        return u_ @ vt, t

    def residuals(self, src: np.ndarray, rotation: np.ndarray, translation: np.ndarray) -> dict:
        """Robust residual (RMS of distances capped at CAP_MM), inlier fraction (< INLIER_MM) and inlier RMS."""
        d, _ = self.tree.query(src @ np.asarray(rotation).T + translation)
        inl = d < INLIER_MM
        return {
            "robust_rms_mm": float(np.sqrt(np.mean(np.minimum(d, CAP_MM) ** 2))),
            "inlier_fraction": float(inl.mean()),
            "inlier_rms_mm": float(np.sqrt(np.mean(d[inl] ** 2))) if inl.any() else float("nan"),
        }


def start_rotations(n_directions: int = 24, n_rolls: int = 3) -> np.ndarray:
    """(n_directions * n_rolls, 3, 3) initial head->target rotations: the face (head -z) turned
    towards each of ``n_directions`` Fibonacci-sphere directions, at ``n_rolls`` rolls about it."""
    i = np.arange(n_directions) + 0.5
    phi = np.arccos(1 - 2 * i / n_directions)
    th = np.pi * (1 + 5**0.5) * i
    dirs = np.stack([np.cos(th) * np.sin(phi), np.sin(th) * np.sin(phi), np.cos(phi)], axis=1)
    out = []
    for d in dirs:
        f = -d  # head +z (into the head) maps to -d, so the face looks along d
        h = np.array([1.0, 0, 0]) if abs(f[0]) < 0.9 else np.array([0, 1.0, 0])
        x = np.cross(h, f)
        x /= np.linalg.norm(x)
        base = np.stack([x, np.cross(f, x), f], axis=1)
        for k in range(n_rolls):
            out.append(base @ _rz(np.float64(2 * np.pi * k / n_rolls)))
    return np.asarray(out)


def multi_start_icp(
    target: CloudTarget, src: np.ndarray, starts: np.ndarray, *, n_coarse: int = 300, n_keep: int = 6,
    min_inliers: float = 0.5, rng_seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, dict, list]:
    """Best rigid placement of ``src`` on the target over initial rotations ``starts``.

    Each start puts the source centroid on the target centroid; coarse ICP on a subsample,
    then fine ICP of the ``n_keep`` best; the winner has the lowest robust residual among
    those with ``inlier_fraction >= min_inliers``.  Returns (R, t, residuals, all candidates).
    """
    rng = np.random.default_rng(rng_seed)
    sub = src[rng.choice(len(src), min(n_coarse, len(src)), replace=False)]
    centre = target.points.mean(axis=0)
    coarse = []
    for r0 in starts:
        r, t = target.icp(sub, r0, centre - r0 @ sub.mean(axis=0), iterations=14, max_dist=(80.0, 10.0))
        coarse.append((target.residuals(sub, r, t)["robust_rms_mm"], r, t))
    coarse.sort(key=lambda c: c[0])
    cands = []
    for _, r, t in coarse[:n_keep]:
        r, t = target.icp(src, r, t, iterations=30, max_dist=(15.0, 4.0))
        cands.append((target.residuals(src, r, t), r, t))
    ok = [c for c in cands if c[0]["inlier_fraction"] >= min_inliers] or cands
    res, r, t = min(ok, key=lambda c: c[0]["robust_rms_mm"])
    return r, t, res, cands


# -- data ------------------------------------------------------------------------------------------------------


def _folder(path: str | Path | None) -> Path:
    return Path(path) if path is not None else real_data_path("truedepth-mannequin")


@lru_cache(maxsize=2)
def _cloud_cached(path: str) -> dict:
    from ..io.truedepth import read_ply_cloud

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
    """The mannequin's head frame in the cloud: ``cloud = rotation @ head + translation`` (mm).

    ``residuals``: robust_rms_mm, inlier_fraction, inlier_rms_mm of the ICT narrow face
    against the cloud; ``candidates``: the same for the in-plane ICP candidates (best
    first); ``symmetry``: the mannequin's symmetry plane relative to the unconstrained
    fit (``plane_angle_deg``, ``plane_offset_mm``), its reflection-ICP residuals and
    whether it was used (``applied``); ``unconstrained``: the multi-start winner before the
    symmetry stage (``rotation``, ``translation``, ``residuals``, fine candidates).
    """

    rotation: np.ndarray
    translation: np.ndarray
    residuals: dict
    candidates: list = field(default_factory=list)
    n_starts: int = 0
    seconds: float = 0.0
    cached: bool = False
    symmetry: dict = field(default_factory=dict)
    unconstrained: dict = field(default_factory=dict)

    def head_to_cloud(self, pts: np.ndarray) -> np.ndarray:
        return np.asarray(pts, np.float64) @ self.rotation.T + self.translation

    def cloud_to_head(self, pts: np.ndarray) -> np.ndarray:
        return (np.asarray(pts, np.float64) - self.translation) @ self.rotation


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
        return MannequinAlignment(np.asarray(doc["rotation"]), np.asarray(doc["translation"]), doc["residuals"],
                                  doc["candidates"], doc["n_starts"], doc["seconds"], cached=True,
                                  symmetry=doc["symmetry"], unconstrained=doc["unconstrained"])  # fmt: skip
    t0 = time.perf_counter()
    cloud = load_mannequin_cloud(p)
    target = CloudTarget(cloud["points"], cloud["normals"])
    model = model if model is not None else FaceModel.load()
    src = _face_source(model)
    starts = start_rotations(n_directions, n_rolls)
    r1, t1, res1, cands1 = multi_start_icp(target, src, starts)
    unconstrained = {"rotation": r1.tolist(), "translation": t1.tolist(), "residuals": res1,
                     "candidates": sorted([c[0] for c in cands1], key=lambda c: c["robust_rms_mm"])}  # fmt: skip
    # symmetry stage: the sagittal plane is the mannequin's own; pitch and in-plane position by ICP
    sym = symmetry_plane(cloud["points"], cloud["normals"], r1, t1)
    r, t, res, cands = r1, t1, res1, []
    if sym["applied"]:
        n_h, d = np.asarray(sym["normal_head"]), sym["offset_mm"]
        z0 = np.array([0.0, 0.0, 1.0])
        z = z0 - (z0 @ n_h) * n_h
        z /= np.linalg.norm(z)
        basis = np.stack([n_h, np.cross(z, n_h), z], axis=1)  # new head axes in the old head frame
        rs, ts = r1 @ basis, r1 @ (d * n_h) + t1
        nose = model.neutral[model.landmarks_68[30]].astype(np.float64)
        sub = src[np.random.default_rng(1).choice(len(src), 500, replace=False)]
        coarse = []
        for dy in IN_PLANE_SHIFTS_MM:
            for pitch in IN_PLANE_PITCHES_DEG:
                r0 = rs @ euler_to_matrix(0.0, pitch, 0.0)
                t0_ = ts + rs @ np.array([0.0, dy, 0.0]) + rs @ nose - r0 @ nose
                rc, tc = target.icp(sub, r0, t0_, iterations=25, max_dist=(20.0, 5.0), plane_normal=rs[:, 0])
                coarse.append((target.residuals(sub, rc, tc)["robust_rms_mm"], rc, tc))
        coarse.sort(key=lambda c: c[0])
        for _, rc, tc in coarse[:4]:
            rc, tc = target.icp(src, rc, tc, iterations=30, max_dist=(10.0, 4.0), plane_normal=rs[:, 0])
            cands.append((target.residuals(src, rc, tc), rc, tc))
        ok = [c for c in cands if c[0]["inlier_fraction"] >= 0.5] or cands
        res, r, t = min(ok, key=lambda c: c[0]["robust_rms_mm"])
    cand_doc = sorted([c[0] for c in cands], key=lambda c: c["robust_rms_mm"])
    out = MannequinAlignment(r, t, res, cand_doc, len(starts), time.perf_counter() - t0, symmetry=sym,
                             unconstrained=unconstrained)  # fmt: skip
    _write_cache(name, {"rotation": r.tolist(), "translation": t.tolist(), "residuals": res, "candidates": cand_doc,
                        "n_starts": len(starts), "seconds": out.seconds, "source": str(p), "symmetry": sym,
                        "unconstrained": unconstrained})  # fmt: skip
    return out


def symmetry_plane(
    points: np.ndarray, normals: np.ndarray, rotation: np.ndarray, translation: np.ndarray,
    radius_mm: float = 160.0, below_mm: float = 90.0, min_inliers: float = 0.8,
) -> dict:
    """The bilateral symmetry plane of the head part of a cloud, near the head frame (R, t).

    The cloud's points within ``radius_mm`` of the head origin and above ``below_mm``
    (head y) are mirrored across the head frame's x = 0 plane and registered back onto
    the cloud (ICP from identity); the improper transform "register o mirror" is the
    reflection across the true symmetry plane ``normal . p = offset`` (head-frame
    coordinates).  ``applied`` is False when fewer than ``min_inliers`` of the mirrored
    points land within INLIER_MM (no usable symmetry).
    """
    r = np.asarray(rotation, np.float64)
    h = (np.asarray(points, np.float64) - translation) @ r
    sel = (np.linalg.norm(h, axis=1) < radius_mm) & (h[:, 1] < below_mm)
    head = CloudTarget(h[sel], np.asarray(normals, np.float64)[sel] @ r)
    mirror = np.diag([-1.0, 1.0, 1.0])
    rng = np.random.default_rng(0)
    src = head.points[rng.choice(len(head.points), min(3000, len(head.points)), replace=False)] @ mirror
    rm, tm = head.icp(src, np.eye(3), np.zeros(3), iterations=50, max_dist=(20.0, 3.0))
    res = head.residuals(src, rm, tm)
    a = rm @ mirror
    w, v = np.linalg.eigh(0.5 * (a + a.T))
    n = v[:, int(np.argmin(w))]
    n = n if n[0] > 0 else -n
    d = 0.5 * float(tm @ n)
    return {
        "normal_head": n.tolist(), "offset_mm": d, "plane_angle_deg": float(np.degrees(np.arccos(np.clip(n[0], -1, 1)))),
        "plane_offset_mm": d, "residuals": res, "applied": bool(res["inlier_fraction"] >= min_inliers),
    }  # fmt: skip


# -- (b) reference poses of the real frames ----------------------------------------------------------------


@dataclass
class MannequinReference:
    """Reference head poses of the real TrueDepth frames (evaluation only, never training labels).

    Attributes:
        files: frame file names, sweep order.
        rotations, translations: (N, 3, 3), (N, 3) head frame -> camera frame (mm).
        camera_to_cloud: (N, 3, 4) ``[R_k | t_k]`` with ``cloud = R_k cam + t_k``.
        residuals: per frame, robust_rms_mm / inlier_fraction / inlier_rms_mm of the frame's
            points against the cloud.
        timestamps: (N,) frame timestamps (s, the phone's clock).
        relative_angle_deg: (N,) rotation angle of each pose relative to frame 0.
        euler_deg: (N, 3) yaw, pitch, roll (facerecon.rotations) of the poses.
        image_roll_deg: the camera's roll (multiple of 90) removed in ``upright_euler_deg``.
        upright_euler_deg: (N, 3) Euler angles of ``Rz(-image_roll) @ R`` (head turning = yaw).
        imu_relative_angle_deg: (N,) the phone's rotation angle since frame 0 from
            ``motion-data.json`` (nearest IMU sample), or None without it.
        alignment: the mannequin's head frame in the cloud.
    """

    files: list[str]
    rotations: np.ndarray
    translations: np.ndarray
    camera_to_cloud: np.ndarray
    residuals: list[dict]
    timestamps: np.ndarray
    relative_angle_deg: np.ndarray
    euler_deg: np.ndarray
    image_roll_deg: float
    upright_euler_deg: np.ndarray
    imu_relative_angle_deg: np.ndarray | None
    alignment: MannequinAlignment
    seconds: float = 0.0
    cached: bool = False

    def pose(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.rotations[i].copy(), self.translations[i].copy()


def _frame_points(path: Path, n: int = 3000) -> tuple[np.ndarray, float]:
    from ..io import read_depth

    fr = read_depth(path)
    pts = fr.points()
    pts = pts[pts[:, 2] < MAX_FRAME_DEPTH_MM].astype(np.float64)
    rng = np.random.default_rng(0)
    pts = pts[rng.choice(len(pts), min(n, len(pts)), replace=False)]
    return pts, float(fr.meta.get("truedepth", {}).get("timestamp", np.nan))


def _imu_angles(folder: Path, timestamps: np.ndarray) -> np.ndarray | None:
    from ..rotations import quat_to_matrix

    p = folder / "DepthFrames" / "motion-data.json"
    try:
        rows = json.loads(p.read_text(encoding="utf-8"))
        ts = np.array([r["timestamp"] for r in rows], np.float64)
        q = np.array([[r["attitude_w"], r["attitude_x"], r["attitude_y"], r["attitude_z"]] for r in rows], np.float64)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not np.isfinite(timestamps).all() or len(ts) == 0:
        return None
    rot = quat_to_matrix(q[np.abs(ts[None, :] - timestamps[:, None]).argmin(axis=1)])
    return rotation_angle_deg(np.swapaxes(rot[:1], -1, -2) @ rot)


def mannequin_reference(
    path: str | Path | None = None, *, model: FaceModel | None = None, use_cache: bool = True
) -> MannequinReference:
    """Register every real frame to ``Expected.ply`` -> reference head poses (see module doc).

    ~5-10 s uncached (plus :func:`align_mannequin`); cached under ``$FACERECON_HOME/realdata``.
    """
    folder = _folder(path)
    folder = folder.parent if folder.is_file() else folder
    align = align_mannequin(folder, model=model, use_cache=use_cache)
    files = frame_files(folder)
    name = f"mannequin-reference-{_file_key(folder / 'Expected.ply', *files)}.json"
    doc = _read_cache(name) if use_cache else None
    cached = doc is not None
    if doc is None:
        t0 = time.perf_counter()
        cloud = load_mannequin_cloud(folder)
        target = CloudTarget(cloud["points"], cloud["normals"])
        rk, tk, res, stamps = [], [], [], []
        r = t = None
        for i, f in enumerate(files):
            pts, stamp = _frame_points(f)
            if i == 0:
                r, t, _, _ = multi_start_icp(target, pts, start_rotations(24, 3))
            else:
                r, t = target.icp(pts, r, t, iterations=30, max_dist=(20.0, 4.0))
            rk.append(r)
            tk.append(t)
            res.append(target.residuals(pts, r, t))
            stamps.append(stamp)
        doc = {"files": [f.name for f in files], "R": np.asarray(rk).tolist(), "t": np.asarray(tk).tolist(),
               "residuals": res, "timestamps": stamps, "seconds": time.perf_counter() - t0}  # fmt: skip
        _write_cache(name, doc)
    rk, tk = np.asarray(doc["R"]), np.asarray(doc["t"])
    rot = np.swapaxes(rk, -1, -2) @ align.rotation
    trans = np.einsum("nji,nj->ni", rk, align.translation[None] - tk)
    rel = rotation_angle_deg(np.swapaxes(rot[:1], -1, -2) @ rot)
    from .scan import upright_roll_deg

    roll = upright_roll_deg(rot[0])
    upright = matrix_to_euler(_rz(np.deg2rad(-roll)) @ rot)
    stamps = np.asarray(doc["timestamps"], np.float64)
    return MannequinReference(
        files=list(doc["files"]), rotations=rot, translations=trans, camera_to_cloud=np.concatenate([rk, tk[:, :, None]], axis=2),
        residuals=list(doc["residuals"]), timestamps=stamps, relative_angle_deg=rel, euler_deg=matrix_to_euler(rot),
        image_roll_deg=roll if roll <= 180 else roll - 360.0, upright_euler_deg=upright,
        imu_relative_angle_deg=_imu_angles(folder, stamps), alignment=align, seconds=float(doc["seconds"]), cached=cached,
    )  # fmt: skip


# -- (c) splats of the cloud at any head pose ---------------------------------------------------------------


def _cos_from_depth(depth: np.ndarray, intr: Intrinsics) -> np.ndarray:
    """|cos| of the view angle per pixel from depth-image normals (central differences)."""
    pts = intr.depth_to_points(depth).astype(np.float64)
    dx = np.zeros_like(pts)
    dy = np.zeros_like(pts)
    dx[:, 1:-1] = pts[:, 2:] - pts[:, :-2]
    dy[1:-1] = pts[2:] - pts[:-2]
    n = np.cross(dx, dy)
    nn = np.linalg.norm(n, axis=-1) * np.linalg.norm(pts, axis=-1)
    valid = depth > 0
    ok = valid & np.roll(valid, 1, 0) & np.roll(valid, -1, 0) & np.roll(valid, 1, 1) & np.roll(valid, -1, 1) & (nn > 0)
    cos = np.ones(depth.shape, np.float32)
    cos[ok] = np.abs(np.einsum("ijk,ijk->ij", n, pts)[ok] / nn[ok])
    return cos


def splat_mannequin(
    rotation: np.ndarray,
    translation: np.ndarray,
    intrinsics: Intrinsics,
    sensor_name: str = "ideal",
    rng: np.random.Generator | None = None,
    *,
    radius_mm: float = 1.6,
    background: str = "none",
    wall_gap_mm: float = 600.0,
    path: str | Path | None = None,
) -> DepthFrame:
    """Depth frame of ``Expected.ply`` with the mannequin's head at pose (R, t) through a sensor model.

    Points whose normal faces away from the camera are dropped, the rest are splatted as
    discs of ``radius_mm`` (the cloud's median spacing is ~1.1 mm).  ``background``:
    ``'none'`` or ``'wall'`` (a plane ``wall_gap_mm`` behind the head origin).  The
    cloud covers the front and sides of the head (the real sweep spans ~110 degrees),
    neck and the top of the shoulders; views from behind show holes.
    ``meta[EVAL_POSE_KEY] = (R, t)`` is the exact head pose (evaluation only).
    """
    from ..synth.presets import load_sensor
    from ..synth.render import rasterize, splat_points
    from ..synth.sensors import apply_sensor

    rng = rng if rng is not None else np.random.default_rng(0)
    r = np.asarray(rotation, np.float64)
    t = np.asarray(translation, np.float64).reshape(3)
    align = align_mannequin(path)
    cloud = load_mannequin_cloud(path)
    # cloud -> head -> camera
    rc = r @ align.rotation.T
    tc = t - rc @ align.translation
    pts = cloud["points"] @ rc.T + tc
    nrm = cloud["normals"] @ rc.T
    front = np.einsum("ij,ij->i", nrm, pts) < 0
    depth = splat_points(pts[front], intrinsics, radius_mm)
    if background == "wall":
        from .scan import _wall

        wv, wt = _wall(float(t[2]) + float(wall_gap_mm), intrinsics)
        wd, _, _ = rasterize(wv, wt, intrinsics)
        depth = np.where((depth > 0) & ((wd == 0) | (depth < wd)), depth, wd).astype(np.float32)
    elif background != "none":
        raise ValueError(f"background must be 'none' or 'wall', got {background!r}")
    cos = _cos_from_depth(depth, intrinsics)
    out, applied = apply_sensor(load_sensor(sensor_name), depth, intrinsics, rng, cos_view=cos)
    meta = {
        "format": "render",
        "domain": "real-splat",
        "subject": "truedepth-mannequin",
        "sensor": sensor_name,
        "background": background,
        EVAL_POSE_KEY: (r.copy(), t.copy()),
        "sensor_params": [[name, prm] for name, prm in applied],
    }
    return DepthFrame(out, intrinsics, f"truedepth-mannequin splat ({sensor_name})", None, meta)


# -- figures ------------------------------------------------------------------------------------------------------


def plot_alignment(out_path: str | Path, model: FaceModel | None = None) -> None:
    """Figure: the registered ICT neutral face against the mannequin cloud (colour, profile, depth, difference)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..camera import camera_preset
    from ..rotations import euler_to_matrix
    from ..synth.render import render_mesh

    model = model if model is not None else FaceModel.load()
    align = align_mannequin()
    cloud = load_mannequin_cloud()
    head = align.cloud_to_head(cloud["points"])
    col = cloud["colors"] / 255.0
    lm = model.neutral[model.landmarks_68].astype(np.float64)
    r1 = np.asarray(align.unconstrained["rotation"])
    t1 = np.asarray(align.unconstrained["translation"])
    lm1 = align.cloud_to_head(lm @ r1.T + t1)  # the multi-start winner's landmarks, in the final head frame
    k = camera_preset("truedepth-320x240")
    tris = model.region_triangles("narrow_face")
    views = [(0.0, 0.0), (45.0, 0.0), (-80.0, 0.0), (0.0, 35.0)]
    fig, axes = plt.subplots(3, len(views), figsize=(3.1 * len(views), 9.6), constrained_layout=True)
    # row 0: colour cloud with the ICT landmarks, profile, midline section
    front = head[:, 2] < -50
    o = np.argsort(-head[front, 2])
    a = axes[0, 0]
    a.scatter(head[front][o, 0], head[front][o, 1], c=col[front][o], s=1.5, rasterized=True)
    a.scatter(lm[:, 0], lm[:, 1], c="red", s=5, label="ICT landmarks (final)")
    a.set_title("cloud colour, head frame (front)", fontsize=9)
    a = axes[0, 1]
    a.scatter(head[front][o, 0], head[front][o, 1], c=col[front][o], s=1.5, rasterized=True)
    a.scatter(lm1[:, 0], lm1[:, 1], c="orange", s=5)
    a.set_title("before the symmetry stage\n(plain multi-start winner)", fontsize=9)
    for a in axes[0, :2]:
        a.set_xlim(-90, 90)
        a.set_ylim(100, -110)
        a.set_aspect("equal")
    side = head[:, 0] < 5
    o = np.argsort(-head[side, 0])
    a = axes[0, 2]
    a.scatter(head[side][o, 2], head[side][o, 1], c=col[side][o], s=1.5, rasterized=True)
    a.scatter(lm[:, 2], lm[:, 1], c="red", s=5)
    a.set_xlim(-150, 60)
    a.set_ylim(110, -120)
    a.set_aspect("equal")
    a.set_title("cloud colour (subject's right side)", fontsize=9)
    a = axes[0, 3]
    mid = np.abs(head[:, 0]) < 2
    face_v = model.neutral[model.region_vertices("face")].astype(np.float64)
    fm = np.abs(face_v[:, 0]) < 2
    a.scatter(head[mid, 2], head[mid, 1], s=1, label="cloud |x| < 2 mm")
    a.scatter(face_v[fm, 2], face_v[fm, 1], s=1, label="ICT neutral |x| < 2 mm")
    a.set_xlim(-150, -30)
    a.set_ylim(110, -120)
    a.set_aspect("equal")
    a.legend(fontsize=7, loc="lower left", markerscale=4)
    a.set_title("midline section (z, y)", fontsize=9)
    for j, (yaw, pitch) in enumerate(views):
        r = euler_to_matrix(yaw, pitch, 0.0)
        t = np.array([0.0, 40.0, 420.0])
        cl = splat_mannequin(r, t, k, "ideal").depth_mm[5:235, 45:275]
        ict = render_mesh(model.neutral.astype(np.float64) @ r.T + t, tris, k, barycentrics=False).depth[5:235, 45:275]
        both = (cl > 0) & (ict > 0)
        lo = np.percentile(cl[cl > 0], 1) if (cl > 0).any() else 300
        kw = dict(cmap="viridis", vmin=lo, vmax=lo + 200)
        axes[1, j].imshow(np.where(cl > 0, cl, np.nan), cmap="gray", vmin=lo, vmax=lo + 200)
        axes[1, j].imshow(np.where(ict > 0, ict, np.nan), alpha=0.55, **kw)
        axes[1, j].set_title(f"splat + ICT narrow face\nhead yaw {yaw:.0f}, pitch {pitch:.0f}", fontsize=9)
        im = axes[2, j].imshow(np.where(both, ict - cl, np.nan), cmap="RdBu", vmin=-10, vmax=10)
        axes[2, j].set_title("ICT depth - cloud depth (mm)", fontsize=9)
        for a in axes[1:, j]:
            a.set_xticks([])
            a.set_yticks([])
    fig.colorbar(im, ax=axes[2, :].tolist(), shrink=0.8, label="mm (blue: ICT behind the cloud)")
    res, sym = align.residuals, align.symmetry
    fig.suptitle(
        f"Mannequin head frame: ICT neutral face registered to Expected.ply ({align.n_starts} starts + symmetry plane)\n"
        f"robust RMS {res['robust_rms_mm']:.2f} mm (plain multi-start {align.unconstrained['residuals']['robust_rms_mm']:.2f}), "
        f"{100 * res['inlier_fraction']:.0f}% of the face within {INLIER_MM:.0f} mm (RMS {res['inlier_rms_mm']:.2f} mm); "
        f"mirror fit {100 * sym['residuals']['inlier_fraction']:.0f}% inliers", fontsize=9,
    )
    fig.savefig(out_path, dpi=80)
    plt.close(fig)


def plot_poses(out_path: str | Path, ref: MannequinReference | None = None) -> None:
    """Figure: reference head poses of the 30 real frames (upright Euler angles, angle relative to frame 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = ref if ref is not None else mannequin_reference()
    idx = np.arange(len(ref.files))
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    for k, name in enumerate(("yaw", "pitch", "roll")):
        ax[0].plot(idx, ref.upright_euler_deg[:, k], "o-", ms=3, label=name)
    ax[0].set_title(f"head pose, camera roll {ref.image_roll_deg:+.0f} deg removed")
    ax[0].set_xlabel("frame index")
    ax[0].set_ylabel("degrees")
    ax[0].legend()
    ax[0].grid(alpha=0.3)
    ax[1].plot(idx, ref.relative_angle_deg, "o-", ms=3, label="registration (ICP to Expected.ply)")
    if ref.imu_relative_angle_deg is not None:
        ax[1].plot(idx, ref.imu_relative_angle_deg, "--", label="phone IMU attitude (independent)")
    ax[1].set_title("rotation angle relative to frame 0")
    ax[1].set_xlabel("frame index")
    ax[1].set_ylabel("degrees")
    ax[1].legend()
    ax[1].grid(alpha=0.3)
    ax[2].plot(idx, [r["inlier_rms_mm"] for r in ref.residuals], "o-", ms=3, label="inlier RMS (mm)")
    ax[2].plot(idx, [r["robust_rms_mm"] for r in ref.residuals], "s-", ms=3, label=f"robust RMS (capped {CAP_MM:.0f} mm)")
    ax[2].plot(idx, [10 * r["inlier_fraction"] for r in ref.residuals], "^-", ms=3,
               label=f"10 x inlier fraction (< {INLIER_MM:.0f} mm)")  # fmt: skip
    ax[2].set_title("registration residuals per frame")
    ax[2].set_xlabel("frame index")
    ax[2].legend(fontsize=8)
    ax[2].grid(alpha=0.3)
    fig.suptitle("TrueDepth mannequin: reference head poses of the 30 real frames (evaluation only)")
    fig.tight_layout()
    fig.savefig(out_path, dpi=80)
    plt.close(fig)
