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

from ..rotations import axis_angle_to_matrix
from .surface import SurfaceIndex

__all__ = [
    "NOW_LANDMARKS_68",
    "NINE_LANDMARKS_68",
    "SimilarityTransform",
    "IcpResult",
    "fit_similarity",
    "icp_to_surface",
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
            n = target.face_normals(cp.face_index[keep])
            c = p.mean(axis=0)  # rotate about the centroid: better conditioned than the origin
            a = np.concatenate([np.cross(p - c, n), n], axis=1)  # d/d(omega, t) of the residual
            b = -np.einsum("ij,ij->i", p - q, n)
            ata = a.T @ a
            ata += np.eye(6) * 1e-12 * max(np.trace(ata), 1e-12)  # pose along symmetric directions
            x = np.linalg.solve(ata, a.T @ b)
            rot = axis_angle_to_matrix(x[:3])
            step = SimilarityTransform(rot, c + x[3:] - rot @ c, 1.0)
        cur = cur.then(step)
        # Step size: largest displacement of the moved points (rotation + translation).
        move = float(np.max(np.linalg.norm(step.apply(p) - p, axis=1)))
        if move < tol_mm:
            converged = True
            break
    return IcpResult(cur, rms, it, converged, inl)
