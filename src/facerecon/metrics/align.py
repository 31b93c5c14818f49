"""Rigid registration onto surfaces and clouds: configurations of :func:`facerecon.geometry.icp.rigid_icp`.

Shape metrics must not measure pose: a reconstruction is first brought onto the ground
truth with a few corresponding landmarks (the paper uses nine, NoW seven;
:func:`facerecon.geometry.transforms.fit_similarity`), optionally refined with ICP against
the ground-truth *surface* inside the evaluation region (:func:`icp_to_surface`).
Scale stays off by default: facerecon reconstructs metric shape, and fitting a scale
would hide a size error.
"""
from __future__ import annotations

import numpy as np

from ..geometry.icp import IcpResult, NearestNeighbours, Pairs, Rejection, rigid_icp
from ..geometry.pose import HeadPose
from ..geometry.rotations import _rz
from ..geometry.transforms import SimilarityTransform
from .surface import SurfaceIndex

__all__ = [
    "NOW_LANDMARKS_68",
    "NINE_LANDMARKS_68",
    "SurfacePairs",
    "icp_to_surface",
    "CloudTarget",
    "start_rotations",
    "multi_start_icp",
]

#: NoW benchmark's seven points (0-based iBUG-68: eye corners, nose tip, mouth corners) and
#: the paper-style nine (those plus nasion and chin): defined once, with the face model.
from ..facemodel.model import ALIGNMENT_LANDMARKS_7 as NOW_LANDMARKS_68  # noqa: E402
from ..facemodel.model import ALIGNMENT_LANDMARKS_9 as NINE_LANDMARKS_68  # noqa: E402


class SurfacePairs:
    """:func:`~facerecon.geometry.icp.rigid_icp` association: exact closest points on the triangles of
    a :class:`SurfaceIndex` (with the triangles' normals when ``normals``)."""

    def __init__(self, target: SurfaceIndex, normals: bool = True):
        self.target, self.normals = target, normals

    def __call__(self, points: np.ndarray, normals: np.ndarray | None, max_distance: float) -> Pairs:
        cp = self.target.query(points)
        ok = np.flatnonzero(cp.distances < max_distance)
        nrm = self.target.face_normals(cp.face_index[ok]) if self.normals else None
        return Pairs(ok, cp.points[ok], nrm, cp.distances[ok])


def icp_to_surface(
    src: np.ndarray,
    target: SurfaceIndex,
    *,
    init: SimilarityTransform | None = None,
    mode: str = "point_to_plane",
    max_iter: int = 50,
    tol_mm: float = 1e-6,
    max_distance_mm: float | None = None,
    reject_factor: float = 3.0,
) -> IcpResult:
    """Rigid ICP of points ``src`` (N, 3) onto the (possibly region-restricted) ``target``.

    Correspondences are exact closest points on the target triangles.  Pairs farther
    than ``max_distance_mm`` or than ``reject_factor`` times the median distance are
    dropped each iteration, so parts of the source with no counterpart (outside the
    region) do not drag the fit.  ``point_to_plane`` (linearised, Chen & Medioni)
    converges in a few iterations on smooth surfaces; ``point_to_point`` (Besl & McKay,
    closed-form Kabsch step) is slower but never ill-posed.  Scale of ``init`` is kept.
    Stops when no paired point moves by ``tol_mm`` (converged).
    """
    src = np.asarray(src, dtype=np.float64).reshape(-1, 3)
    if src.shape[0] < 3:
        raise ValueError("ICP needs at least 3 source points")
    cap = np.inf if max_distance_mm is None else max_distance_mm
    return rigid_icp(src, SurfacePairs(target, mode == "point_to_plane"), init=init, iterations=max_iter, metric=mode,
                     reject=Rejection(reject_factor, floor=1e-9, cap=cap), tol_move_mm=tol_mm)


# -- rigid ICP against a point cloud with normals (registration of real scans and frames) -----------------

#: CloudTarget.residuals defaults: a point within CLOUD_INLIER_MM is an inlier; the robust RMS caps distances at CLOUD_CAP_MM
CLOUD_INLIER_MM = 5.0
CLOUD_CAP_MM = 10.0

class CloudTarget(NearestNeighbours):
    """A point cloud with normals as an ICP target (KD-tree built once): ``CloudTarget(points, normals)``."""

    def icp(
        self, src: np.ndarray, pose: HeadPose, iterations: int = 30,
        max_dist: tuple[float, float] = (15.0, 4.0), plane_normal: np.ndarray | None = None,
    ) -> HeadPose:
        """Point-to-plane ICP of ``src`` from ``pose``: correspondence distance shrinks geometrically.

        Pairs beyond 3 x the median distance (but within ``max_dist[1]``) are dropped; it stops
        with fewer than 12 pairs or a step below 1e-7 rad / 1e-5 mm.  ``plane_normal`` (unit,
        target frame) restricts the motion to rotations about it and translations perpendicular
        to it (3 DOF), which keeps every plane with that normal -- e.g. a fixed sagittal plane -- in place.
        """
        subspace = None
        if plane_normal is not None:
            n0 = np.asarray(plane_normal, np.float64) / np.linalg.norm(plane_normal)
            h = np.array([0.0, 1.0, 0.0]) if abs(n0[1]) < 0.9 else np.array([0.0, 0.0, 1.0])
            u = np.cross(n0, h)
            u /= np.linalg.norm(u)
            # allowed motions (omega, t): rotation about n0, translation along the two in-plane directions
            z = np.zeros(3)
            subspace = np.stack([np.r_[n0, z], np.r_[z, u], np.r_[z, np.cross(n0, u)]])
        return rigid_icp(src, self, init=SimilarityTransform(pose.R, pose.t_mm), iterations=iterations,
                         max_distance=np.geomspace(max_dist[0], max_dist[1], iterations), reject=Rejection(3.0, floor=max_dist[1]),
                         min_pairs=12, subspace=subspace, damping=1e-9, tol_step=(1e-7, 1e-5)).pose

    def residuals(self, src: np.ndarray, pose: HeadPose, inlier_mm: float = CLOUD_INLIER_MM, cap_mm: float = CLOUD_CAP_MM) -> dict:
        """Robust residual (RMS of distances capped at ``cap_mm``), inlier fraction (< ``inlier_mm``) and inlier RMS."""
        d, _ = self.tree.query(src @ pose.R.T + pose.t_mm)
        inl = d < inlier_mm
        return {
            "robust_rms_mm": float(np.sqrt(np.mean(np.minimum(d, cap_mm) ** 2))),
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
) -> tuple[HeadPose, dict, list]:
    """Best rigid placement of ``src`` on the target over initial rotations ``starts``.

    Each start puts the source centroid on the target centroid; coarse ICP on a subsample,
    then fine ICP of the ``n_keep`` best; the winner has the lowest robust residual among
    those with ``inlier_fraction >= min_inliers``.  Returns (pose, residuals, all candidates
    as (residuals, pose)).
    """
    rng = np.random.default_rng(rng_seed)
    sub = src[rng.choice(len(src), min(n_coarse, len(src)), replace=False)]
    centre = target.points.mean(axis=0)
    coarse = []
    for r0 in starts:
        p = target.icp(sub, HeadPose(r0, centre - r0 @ sub.mean(axis=0)), iterations=14, max_dist=(80.0, 10.0))
        coarse.append((target.residuals(sub, p)["robust_rms_mm"], p))
    coarse.sort(key=lambda c: c[0])
    cands = []
    for _, p in coarse[:n_keep]:
        p = target.icp(src, p, iterations=30, max_dist=(15.0, 4.0))
        cands.append((target.residuals(src, p), p))
    ok = [c for c in cands if c[0]["inlier_fraction"] >= min_inliers] or cands
    res, pose = min(ok, key=lambda c: c[0]["robust_rms_mm"])
    return pose, res, cands
