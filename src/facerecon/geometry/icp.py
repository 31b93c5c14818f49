"""The one rigid ICP loop, :func:`rigid_icp`, and its point-to-plane step.

Every rigid registration of the project is a configuration of the loop: the surface ICP of
the metrics (``metrics.align.icp_to_surface``: exact closest points on triangles), the cloud
ICP of the real-data registration (``metrics.align.CloudTarget``: KD-tree), the robust
check's refinement (``pipeline.check.refine_rigid``: projective lookup in the crop's grid)
and the model fitter's rigid stage (``fitting.fit_face``: KD-tree, model planes).

One iteration: pose the source points (and normals) with the current transform; the
*association* pairs them with target points within the iteration's distance threshold;
fewer than ``min_pairs`` pairs stop the loop; the outlier rule (:class:`Rejection`) drops
pairs far beyond the median; fewer than ``min_inliers`` left stop the loop; one step
(linearised point-to-plane, or closed-form point-to-point) is composed onto the transform;
a small step stops the loop (converged).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numba import njit

from .neighbours import BoundedNeighbours
from .pose import HeadPose
from .rotations import axis_angle_to_matrix
from .transforms import SimilarityTransform, fit_similarity

__all__ = ["Pairs", "Association", "NearestNeighbours", "Rejection", "IcpResult", "point_to_plane_step", "rigid_icp"]


@dataclass(frozen=True)
class Pairs:
    """An association's answer: rows ``index`` of the posed source paired with target ``points``
    (their ``normals``, None where the target has none) at Euclidean ``distances``."""

    index: np.ndarray
    points: np.ndarray
    normals: np.ndarray | None
    distances: np.ndarray


class Association(Protocol):
    def __call__(self, points: np.ndarray, normals: np.ndarray | None, max_distance: float) -> Pairs:
        """Pairs for the posed source ``points`` (N, 3) (``normals``: posed source normals, or
        None), none at ``max_distance`` or farther."""


class NearestNeighbours:
    """Association: the closest point of a cloud (KD-tree built once; ``normals`` optional).
    ``facing``: only source points whose (posed) normal faces the camera at the origin.
    ``bound``: every query's distance threshold is at most this: the lookups use a grid of cubes
    (:class:`~facerecon.geometry.neighbours.BoundedNeighbours`, the same pairs, faster) instead."""

    def __init__(self, points: np.ndarray, normals: np.ndarray | None = None, facing: bool = False, bound: float | None = None):
        self.points = np.asarray(points, np.float64)
        self.normals = None if normals is None else np.asarray(normals, np.float64)
        if bound is None:
            from scipy.spatial import cKDTree  # imported here: the per-frame path takes the bounded grid (a cold start saves ~30 ms)

            self.tree = cKDTree(self.points)
        else:
            self.tree = BoundedNeighbours(self.points, bound)
        self.facing = facing

    def __call__(self, points: np.ndarray, normals: np.ndarray | None, max_distance: float) -> Pairs:
        if self.facing:  # query only the points facing the camera (each query is independent of the others)
            rows = np.flatnonzero(np.einsum("ij,ij->i", normals, points) < 0)
            d, j = self.tree.query(points[rows], distance_upper_bound=max_distance)
            ok = np.isfinite(d)
            rows = rows[ok]
        else:
            d, j = self.tree.query(points, distance_upper_bound=max_distance)
            ok = np.isfinite(d)
            rows = np.flatnonzero(ok)
        j = j[ok]
        return Pairs(rows, self.points[j], None if self.normals is None else self.normals[j], d[ok])


def partition_median(d: np.ndarray) -> float:
    """``float(np.median(d))`` of a 1-D float array without NaNs: the middle order statistic, or the mean of the
    middle two (their sum halved, as ``np.mean`` of two values), from one ``np.partition`` (np.median's wrapper
    costs ~3x the partition on the few hundred pairs of an ICP step)."""
    m = len(d)
    if m == 0:
        return float("nan")
    h = m // 2
    if m % 2:
        return float(np.partition(d, h)[h])
    part = np.partition(d, (h - 1, h))
    return float((part[h - 1] + part[h]) / 2.0)


@dataclass(frozen=True)
class Rejection:
    """Outlier rule: drop pairs farther than ``factor`` times the median pair distance, that
    threshold kept within [``floor``, ``cap``]; applied only to at least ``min_pairs`` pairs."""

    factor: float = 3.0
    floor: float = 0.0
    cap: float = np.inf
    min_pairs: int = 0

    def keep(self, d: np.ndarray) -> np.ndarray:
        if len(d) < self.min_pairs:
            return np.ones(len(d), bool)
        return d <= min(max(self.factor * partition_median(d), self.floor), self.cap)


@dataclass(frozen=True)
class IcpResult:
    """Outcome of :func:`rigid_icp`.  ``transform`` maps the source onto the target (``init``
    included; its scale is ``init``'s); ``rms_mm``, ``n_inliers``: the pairs of the last step
    (``history``: ``rms_mm`` of every step); ``iterations`` counts the one that stopped the loop;
    ``starved``: the pair count that stopped it (below ``min_pairs`` / ``min_inliers``), else None."""

    transform: SimilarityTransform
    rms_mm: float
    iterations: int
    converged: bool
    n_inliers: int
    history: tuple[float, ...] = ()
    starved: int | None = None

    @property
    def pose(self) -> HeadPose:
        """The rigid part as a ``HeadPose``, its rotation re-orthonormalised (SVD) after the steps."""
        u, _, vt = np.linalg.svd(self.transform.R)
        return HeadPose(u @ vt, self.transform.t)


@njit(cache=True, nogil=True)
def _plane_step(p, q, n, centre, damping, damping_floor):
    """(centre, x): the point-to-plane step of :func:`point_to_plane_step` without a subspace, in one compiled pass:
    the centre (``centre`` itself, or the centroid of ``p`` where ``centre`` is empty), the normal equations
    ``A^T A``, ``A^T b`` of the rows ``[(p - c) x n, n]`` and residuals ``-(p - q) . n`` summed row by row (no (N, 6)
    array), the damping on the diagonal, the 6 x 6 solve (:func:`_solve6`).  Values as NumPy's to rounding (the sums'
    order differs)."""
    m = p.shape[0]
    c0, c1, c2 = 0.0, 0.0, 0.0
    if len(centre) == 3:
        c0, c1, c2 = centre[0], centre[1], centre[2]
    else:
        for i in range(m):
            c0 += p[i, 0]
            c1 += p[i, 1]
            c2 += p[i, 2]
        c0, c1, c2 = c0 / m, c1 / m, c2 / m
    ata = np.zeros((6, 6))
    atb = np.zeros(6)
    row = np.empty(6)
    for i in range(m):
        x0, x1, x2 = p[i, 0] - c0, p[i, 1] - c1, p[i, 2] - c2
        n0, n1, n2 = n[i, 0], n[i, 1], n[i, 2]
        row[0] = x1 * n2 - x2 * n1
        row[1] = x2 * n0 - x0 * n2
        row[2] = x0 * n1 - x1 * n0
        row[3], row[4], row[5] = n0, n1, n2
        b = -((p[i, 0] - q[i, 0]) * n0 + (p[i, 1] - q[i, 1]) * n1 + (p[i, 2] - q[i, 2]) * n2)
        for j in range(6):
            rj = row[j]
            atb[j] += rj * b
            for k in range(j, 6):
                ata[j, k] += rj * row[k]
    trace = 0.0
    for j in range(6):
        trace += ata[j, j]
        for k in range(j):
            ata[j, k] = ata[k, j]
    lam = damping * max(trace, damping_floor)
    for j in range(6):
        ata[j, j] += lam
    c = np.empty(3)
    c[0], c[1], c[2] = c0, c1, c2
    return c, _solve6(ata, atb)


@njit(cache=True, nogil=True)
def _solve6(a, b):
    """``np.linalg.solve(a, b)`` of the 6 x 6 damped system by Gaussian elimination with partial pivoting (LAPACK's
    ``gesv`` algorithm, written out: numba's ``np.linalg.solve`` made the kernel's load at a cold start ~6 ms dearer);
    ``a`` and ``b`` are overwritten."""
    n = len(b)
    for k in range(n):
        p = k
        for i in range(k + 1, n):
            if abs(a[i, k]) > abs(a[p, k]):
                p = i
        if a[p, k] == 0.0:
            raise ValueError("point-to-plane step: singular normal equations")
        if p != k:
            for j in range(n):
                a[k, j], a[p, j] = a[p, j], a[k, j]
            b[k], b[p] = b[p], b[k]
        for i in range(k + 1, n):
            f = a[i, k] / a[k, k]
            for j in range(k + 1, n):
                a[i, j] -= f * a[k, j]
            b[i] -= f * b[k]
    x = np.empty(n)
    for i in range(n - 1, -1, -1):
        s = b[i]
        for j in range(i + 1, n):
            s -= a[i, j] * x[j]
        x[i] = s / a[i, i]
    return x


_CENTROID = np.zeros(0)  # :func:`_plane_step`'s centre argument: the pairs' centroid


def point_to_plane_step(
    p: np.ndarray, q: np.ndarray, n: np.ndarray, *, centre: np.ndarray | None = None,
    subspace: np.ndarray | None = None, damping: float = 1e-12, damping_floor: float = 1e-12,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One linearised point-to-plane step (Chen & Medioni): the rigid motion that moves the
    points ``p`` (N, 3) onto the planes through ``q`` with normals ``n``.

    The rotation is taken about ``centre`` (default: the centroid of ``p``, better conditioned
    than the origin); ``subspace`` (k, 6) restricts the motion (omega, t) to the span of its
    rows.  ``damping`` times ``max(trace, damping_floor)`` is added to the normal equations,
    which keeps the pose defined along symmetric directions.  Returns ``(dR, dt, x)`` with
    ``p' = dR p + dt`` and ``x = (omega, t)`` the 6-vector of the step.
    """
    if subspace is None and len(p):  # the compiled step (every caller but the metrics' symmetric registration)
        c, x = _plane_step(np.ascontiguousarray(p, np.float64), np.ascontiguousarray(q, np.float64),
                           np.ascontiguousarray(n, np.float64),
                           _CENTROID if centre is None else np.asarray(centre, np.float64).reshape(3), float(damping),
                           float(damping_floor))
    else:
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


def rigid_icp(
    src: np.ndarray,
    associate: Association,
    *,
    normals: np.ndarray | None = None,
    init: SimilarityTransform | None = None,
    iterations: int = 50,
    max_distance: float | Sequence[float] = np.inf,
    reject: Rejection | None = None,
    min_pairs: int = 6,
    min_inliers: int = 6,
    metric: str = "point_to_plane",
    planes: str = "target",
    centre: str = "centroid",
    damping: float = 1e-12,
    damping_floor: float = 1e-12,
    subspace: np.ndarray | None = None,
    tol_move_mm: float | None = None,
    tol_step: tuple[float, float] | None = None,
    rms: str = "distance",
) -> IcpResult:
    """Rigid ICP of the points ``src`` (N, 3) (with ``normals``, posed along) onto ``associate``'s target.

    * ``max_distance``: the pair gate, one value or one per iteration (e.g. ``np.geomspace(a, b, iterations)``).
    * ``reject``: the outlier rule (None: keep every pair); ``min_pairs`` / ``min_inliers``: stop with
      fewer pairs before / after it.
    * ``metric``: ``point_to_plane`` (:func:`point_to_plane_step` with ``damping``, ``damping_floor``,
      ``subspace``, rotating about the pairs' ``centroid`` or the current ``translation``) or
      ``point_to_point`` (Kabsch step); ``planes``: the ``target``'s normals or the posed ``source``'s.
    * stop rules: ``tol_move_mm``, largest displacement of the paired points by the step;
      ``tol_step`` = (rad, mm), the point-to-plane step's rotation and translation norms.
    * ``rms``: of the pair ``distance`` or of the ``plane`` residuals.

    The scale of ``init`` is kept; the steps are rigid.
    """
    if metric not in ("point_to_plane", "point_to_point"):
        raise ValueError(f"mode must be 'point_to_plane' or 'point_to_point', got {metric!r}")
    if planes not in ("target", "source") or centre not in ("centroid", "translation") or rms not in ("distance", "plane"):
        raise ValueError(f"unknown planes {planes!r}, centre {centre!r} or rms {rms!r}")
    src = np.asarray(src, np.float64)
    src_n = None if normals is None else np.asarray(normals, np.float64)
    cur = init or SimilarityTransform.identity()
    thr = np.asarray(max_distance, np.float64)
    if thr.shape != (iterations,):  # (np.broadcast_to costs ~15 us: the check's refinement passes one gate per step)
        thr = np.broadcast_to(thr, (iterations,))
    rms_mm, n_in, it, converged, starved, history = float("nan"), 0, 0, False, None, []
    # the loop's small NumPy calls are most of a short ICP's cost (the check's grid search runs ~40 per frame), so the
    # cheaper forms below compute the same values: 1.0 * x is x (a C-ordered source: the same product), np.mean is the
    # pairwise sum over the count, np.linalg.norm of a vector is the root of its dot product
    unit_src = src.flags.c_contiguous
    for it in range(1, iterations + 1):
        p = src @ cur.R.T + cur.t if unit_src and cur.scale == 1.0 else cur.apply(src)
        n = None if src_n is None else src_n @ cur.R.T
        pairs = associate(p, n, float(thr[it - 1]))
        if len(pairs.distances) < min_pairs:
            starved = len(pairs.distances)
            break
        keep = np.ones(len(pairs.distances), bool) if reject is None else reject.keep(pairs.distances)
        n_keep = int(np.count_nonzero(keep))
        if n_keep < min_inliers:
            starved = n_keep
            break
        idx, q, d = pairs.index[keep], pairs.points[keep], pairs.distances[keep]
        pk = p[idx]
        n_plane = None
        if metric == "point_to_plane":
            n_plane = n[idx] if planes == "source" else pairs.normals[keep]
        res = np.einsum("ij,ij->i", n_plane, q - pk) if rms == "plane" else d
        rms_mm = math.sqrt(np.add.reduce(res * res) / len(res)) if len(res) else float(np.sqrt(np.mean(res**2)))
        n_in = n_keep
        history.append(rms_mm)
        x = None
        if metric == "point_to_point":
            step = fit_similarity(pk, q)
        else:
            dr, dt, x = point_to_plane_step(pk, q, n_plane, centre=cur.t if centre == "translation" else None,
                                            subspace=subspace, damping=damping, damping_floor=damping_floor)
            step = SimilarityTransform(dr, dt, 1.0)
        cur = cur.then(step)
        if tol_move_mm is not None and float(np.max(np.linalg.norm(step.apply(pk) - pk, axis=1))) < tol_move_mm:
            converged = True
            break
        if tol_step is not None and x is not None and math.sqrt(x[:3].dot(x[:3])) < tol_step[0] and math.sqrt(x[3:].dot(x[3:])) < tol_step[1]:
            converged = True
            break
    return IcpResult(cur, rms_mm, it, converged, n_in, tuple(history), starved)
