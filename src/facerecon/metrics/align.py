"""Rigid (optionally similarity) alignment: landmarks (Umeyama) and ICP to a surface.

Shape metrics must not measure pose: a reconstruction is first brought onto the ground
truth with a few corresponding landmarks (the paper uses nine, NoW seven), optionally
refined with ICP against the ground-truth *surface* inside the evaluation region.
Scale stays off by default: facerecon reconstructs metric shape, and fitting a scale
would hide a size error.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from ..geometry.rotations import _rz, axis_angle_to_matrix
from .surface import SurfaceIndex

__all__ = [
    "NOW_LANDMARKS_68",
    "NINE_LANDMARKS_68",
    "SimilarityTransform",
    "IcpResult",
    "fit_similarity",
    "icp_to_surface",
    "point_to_plane_step",
    "CloudTarget",
    "start_rotations",
    "multi_start_icp",
]

#: NoW benchmark's seven points (0-based iBUG-68: eye corners, nose tip, mouth corners) and
#: the paper-style nine (those plus nasion and chin): defined once, with the face model.
from ..facemodel.model import ALIGNMENT_LANDMARKS_7 as NOW_LANDMARKS_68  # noqa: E402
from ..facemodel.model import ALIGNMENT_LANDMARKS_9 as NINE_LANDMARKS_68  # noqa: E402


@dataclass(frozen=True)
class SimilarityTransform:
    """``x -> scale * R @ x + t`` (rotation (3, 3), translation (3,) in mm)."""

    R: np.ndarray
    t: np.ndarray
    scale: float = 1.0

    @staticmethod
    def identity() -> "SimilarityTransform":
        return SimilarityTransform(np.eye(3), np.zeros(3), 1.0)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Transform points (..., 3)."""
        return self.scale * np.asarray(x, dtype=np.float64) @ self.R.T + self.t

    def then(self, other: "SimilarityTransform") -> "SimilarityTransform":
        """The transform applying ``self`` first, then ``other``."""
        return SimilarityTransform(other.R @ self.R, other.scale * other.R @ self.t + other.t, other.scale * self.scale)

    def inverse(self) -> "SimilarityTransform":
        rt = self.R.T
        return SimilarityTransform(rt, -(rt @ self.t) / self.scale, 1.0 / self.scale)

    def matrix(self) -> np.ndarray:
        """4x4 homogeneous matrix."""
        m = np.eye(4)
        m[:3, :3] = self.scale * self.R
        m[:3, 3] = self.t
        return m


def fit_similarity(
    src: np.ndarray, dst: np.ndarray, *, scale: bool = False, weights: np.ndarray | None = None
) -> SimilarityTransform:
    """Least-squares transform mapping ``src`` (N, 3) onto ``dst`` (N, 3) (Kabsch / Umeyama).

    Reflections are excluded (det R = +1).  With ``scale=True`` a uniform scale is fitted
    too (Umeyama 1991).  Needs N >= 3 non-collinear points.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3:
        raise ValueError(f"src {src.shape} and dst {dst.shape} must both be (N, 3)")
    if src.shape[0] < 3:
        raise ValueError(f"need at least 3 corresponding points, got {src.shape[0]}")
    w = np.ones(src.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    xs, xd = src - mu_s, dst - mu_d
    cov = (xd * w[:, None]).T @ xs
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[2] = -1.0
    r = (u * d) @ vt
    s = 1.0
    if scale:
        var_s = float(w @ (xs * xs).sum(axis=1))
        s = float((sig * d).sum() / var_s) if var_s > 0 else 1.0
    return SimilarityTransform(r, mu_d - s * r @ mu_s, s)


@dataclass(frozen=True)
class IcpResult:
    """Outcome of :func:`icp_to_surface`.

    ``transform`` maps the source points onto the target surface (it includes ``init``);
    ``rms_mm`` is the RMS of the inlier distances at the last iteration.
    """

    transform: SimilarityTransform
    rms_mm: float
    iterations: int
    converged: bool
    n_inliers: int


def point_to_plane_step(
    p: np.ndarray, q: np.ndarray, n: np.ndarray, *, centre: np.ndarray | None = None,
    subspace: np.ndarray | None = None, damping: float = 1e-12, damping_floor: float = 1e-12,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One linearised point-to-plane step (Chen & Medioni): the rigid motion that moves the
    points ``p`` (N, 3) onto the planes through ``q`` with normals ``n``.

    The project's one point-to-plane solver: every rigid ICP (surface ICP below, the cloud
    ICP, the model fitter's rigid stage) calls it.  The rotation is taken about ``centre``
    (default: the centroid of ``p``, better conditioned than the origin); ``subspace``
    (k, 6) restricts the motion (omega, t) to the span of its rows.  ``damping`` times
    ``max(trace, damping_floor)`` is added to the normal equations, which keeps the pose
    defined along symmetric directions.  Returns ``(dR, dt, x)`` with ``p' = dR p + dt``
    and ``x = (omega, t)`` the 6-vector of the step.
    """
    c = p.mean(axis=0) if centre is None else np.asarray(centre, np.float64)
    a = np.concatenate([np.cross(p - c, n), n], axis=1)  # d/d(omega, t) of the residual
    b = -np.einsum("ij,ij->i", p - q, n)
    if subspace is not None:
        a = a @ subspace.T
    ata = a.T @ a
    x = np.linalg.solve(ata + damping * max(float(np.trace(ata)), damping_floor) * np.eye(len(ata)), a.T @ b)
    if subspace is not None:
        x = subspace.T @ x
    dr = axis_angle_to_matrix(x[:3])
    return dr, c + x[3:] - dr @ c, x


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
    """
    if mode not in ("point_to_plane", "point_to_point"):
        raise ValueError(f"mode must be 'point_to_plane' or 'point_to_point', got {mode!r}")
    src = np.asarray(src, dtype=np.float64).reshape(-1, 3)
    if src.shape[0] < 3:
        raise ValueError("ICP needs at least 3 source points")
    cur = init or SimilarityTransform.identity()
    rms, inl, it, converged = float("nan"), 0, 0, False
    for it in range(1, max_iter + 1):
        p = cur.apply(src)
        cp = target.query(p)
        d = cp.distances
        thr = reject_factor * float(np.median(d)) + 1e-9
        if max_distance_mm is not None:
            thr = min(thr, max_distance_mm)
        keep = d <= thr
        if keep.sum() < 6:
            break
        p, q = p[keep], cp.points[keep]
        inl = int(keep.sum())
        rms = float(np.sqrt(np.mean(d[keep] ** 2)))
        if mode == "point_to_point":
            step = fit_similarity(p, q)
        else:
            rot, shift, _ = point_to_plane_step(p, q, target.face_normals(cp.face_index[keep]))
            step = SimilarityTransform(rot, shift, 1.0)
        cur = cur.then(step)
        # Step size: largest displacement of the moved points (rotation + translation).
        move = float(np.max(np.linalg.norm(step.apply(p) - p, axis=1)))
        if move < tol_mm:
            converged = True
            break
    return IcpResult(cur, rms, it, converged, inl)


# -- rigid ICP against a point cloud with normals (registration of real scans and frames) -----------------

#: CloudTarget.residuals defaults: a point within CLOUD_INLIER_MM is an inlier; the robust RMS caps distances at CLOUD_CAP_MM
CLOUD_INLIER_MM = 5.0
CLOUD_CAP_MM = 10.0

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
        subspace = None
        if plane_normal is not None:
            n0 = np.asarray(plane_normal, np.float64) / np.linalg.norm(plane_normal)
            h = np.array([0.0, 1.0, 0.0]) if abs(n0[1]) < 0.9 else np.array([0.0, 0.0, 1.0])
            u = np.cross(n0, h)
            u /= np.linalg.norm(u)
            # allowed motions (omega, t): rotation about n0, translation along the two in-plane directions
            z = np.zeros(3)
            subspace = np.stack([np.r_[n0, z], np.r_[z, u], np.r_[z, np.cross(n0, u)]])
        thr = np.geomspace(max_dist[0], max_dist[1], iterations)
        for it in range(iterations):
            q = src @ r.T + t
            d, j = self.tree.query(q, distance_upper_bound=thr[it])
            ok = np.isfinite(d)
            if ok.sum() < 12:
                break
            ok &= d <= max(3.0 * float(np.median(d[ok])), max_dist[1])
            dr, dt, x = point_to_plane_step(q[ok], self.points[j[ok]], self.normals[j[ok]], subspace=subspace, damping=1e-9)
            r, t = dr @ r, dr @ t + dt
            if np.linalg.norm(x[:3]) < 1e-7 and np.linalg.norm(x[3:]) < 1e-5:
                break
        u_, _, vt = np.linalg.svd(r)
        return u_ @ vt, t

    def residuals(self, src: np.ndarray, rotation: np.ndarray, translation: np.ndarray,
                  inlier_mm: float = CLOUD_INLIER_MM, cap_mm: float = CLOUD_CAP_MM) -> dict:
        """Robust residual (RMS of distances capped at ``cap_mm``), inlier fraction (< ``inlier_mm``) and inlier RMS."""
        d, _ = self.tree.query(src @ np.asarray(rotation).T + translation)
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
