"""Fit the ICT face model to a depth point cloud: rigid ICP, then identity + expression.

A classical baseline for the networks (and ``--refine N`` after them):

1. correspondences: each visible model vertex (a fixed subsample of the face region,
   normal facing the camera) is paired with its nearest depth point (SciPy KD-tree);
   pairs farther than a shrinking threshold are dropped;
2. residuals: point-to-plane, ``n_i . (p_i - (R v_i + t))`` with the model normal, plus
   optional 3D landmark priors;
3. Gauss-Newton on ``[rotation (3, left-multiplicative), translation (3), identity (k_id),
   expression (k_expr)]`` with Tikhonov priors (identity ~ N(0, 1), expression towards 0)
   and expression weights clipped to [0, 1].

The first ``rigid_iterations`` update only the pose (rigid ICP); the rest update all.

Modes beyond ``n_identity`` / ``n_expression`` keep the values they start with (a
network's prediction, when refining one).  Measured: the rigid stage converges from a
start within ~10 degrees (0.24 deg / 0.3 mm on an ideal render).  The joint stage trades
a little pose (1-3 degrees: identity modes can mimic a small rotation) for the shape; its
per-vertex error stays several mm (vertices slide along the surface, which depth cannot
see) while the surface error drops: after the networks, 12 joint iterations take the
median point-to-surface error on synthetic facewarehouse frames from 1.57 to 1.16 mm
(``benchmarks/evaluate.py``, section "refinement").  Used by ``reconstruct --method fit``
and ``--refine N --refine-shape M``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from ..facemodel import FaceModel, vertex_normals
from ..facemodel.shape_subset import NOSE_TIP_LANDMARK, farthest_point_sampling
from ..geometry.icp import NearestNeighbours, rigid_icp
from ..geometry.neighbours import cube_query
from ..geometry.pose import HeadPose
from ..geometry.rotations import axis_angle_to_matrix
from ..geometry.transforms import SimilarityTransform
from ..settings import check_keys, packaged_toml, toml_defaults, with_overrides


@toml_defaults("configs/fit.toml", "fit")
class FitConfig:
    """The ``[fit]`` table of ``configs/fit.toml`` (see the comments there)."""

    n_identity: int
    n_expression: int
    rigid_iterations: int
    iterations: int
    n_model_points: int
    max_distance_mm: tuple[float, float]
    identity_prior: float
    expression_prior: float
    landmark_weight: float
    region: str
    seed: int
    sampling: str

    @staticmethod
    def preset(name: str) -> "FitConfig":
        """A named schedule of ``configs/fit.toml``: its table's keys on top of ``[fit]``."""
        tables = packaged_toml("configs/fit.toml")
        check_keys([name], set(tables) - {"fit"}, "configs/fit.toml: ")
        return with_overrides(FitConfig(), tables[name], f"configs/fit.toml [{name}]")


@dataclass
class FitResult:
    pose: HeadPose  # head -> camera
    identity: np.ndarray  # (100,)
    expression: np.ndarray  # (55,)
    rms_mm: float  # point-to-plane RMS over the final inliers
    n_inliers: int
    seconds: float
    history: list[float] = field(default_factory=list)


def _skew(v: np.ndarray) -> np.ndarray:
    z = np.zeros(len(v))
    return np.stack([z, -v[:, 2], v[:, 1], v[:, 2], z, -v[:, 0], -v[:, 1], v[:, 0], z], 1).reshape(-1, 3, 3)


class _SubsetGeometry:
    """What a fit needs of the model that does not change between fits with one configuration:
    the seeded subsample of the region, its bases, and the region's triangles (for normals,
    on the triangles' vertices only).  Built once per (model, configuration): :func:`_geometry`."""

    def __init__(self, model: FaceModel, cfg: FitConfig):
        region_tris = model.region_triangles(cfg.region)
        self.idx = model_points(model, cfg.region, cfg.n_model_points, cfg.sampling, cfg.seed, region_tris)
        self.tri_verts = np.unique(region_tris)
        local = np.full(model.n_vertices, -1, np.int64)
        local[self.tri_verts] = np.arange(len(self.tri_verts))
        self.tris_local = local[region_tris]
        self.idx_local = local[self.idx]
        if (self.idx_local < 0).any():
            raise ValueError(f"region {cfg.region!r}: sampled vertices outside every region triangle have no normal")
        self.k_id, self.k_ex = cfg.n_identity, cfg.n_expression
        # (k, n, 3), C-contiguous: the gather leaves them vertex-major and ``np.tensordot`` then copied
        # them on every call (the same copy, made once here: the same products, bit-identical)
        self.b_id = np.ascontiguousarray(model.identity_basis[: self.k_id, self.idx], np.float64)  # (k_id, n, 3)
        self.b_ex = np.ascontiguousarray(model.expression_basis[: self.k_ex, self.idx], np.float64)
        # the same bases per coordinate, vertex-major (3 x (n, k)): the Jacobian's rows of the paired
        # vertices are three contiguous gathers (see :func:`_jacobian`)
        self.b_id_xyz = tuple(np.ascontiguousarray(self.b_id[..., c].T) for c in range(3))
        self.b_ex_xyz = tuple(np.ascontiguousarray(self.b_ex[..., c].T) for c in range(3))
        # (k, 3n) views of the same bases: ``np.tensordot(w, b, 1)`` is ``np.dot(w.reshape(1, k), b.reshape(k, 3n))``
        # (its own reshape and call; the same product bit for bit), here without tensordot's ~40 us per call
        self.b_id_flat = self.b_id.reshape(self.k_id, 3 * len(self.idx))
        self.b_ex_flat = self.b_ex.reshape(self.k_ex, 3 * len(self.idx))
        # the fitted modes' bases on the triangles' vertices (float32, as the model's; (k_id + k_ex, 3 n)): a normal
        # refresh from a start mesh moves it by the fitted weights' change (a quarter of the bases a whole product reads)
        self.b_tri = model.mode_bases(np.r_[np.arange(self.k_id), model.n_identity + np.arange(self.k_ex)], self.tri_verts)
        self.model = model


def model_points(model: FaceModel, region: str, n: int, sampling: str, seed: int = 0,
                 region_tris: np.ndarray | None = None) -> np.ndarray:
    """Sorted vertex indices of ``n`` of the region's vertices, the points a fit pairs with the depth points.

    ``random``: a seeded uniform subsample of the region's vertices (ICT's vertex density: dense
    around the eyes, lips and nostrils, sparse on the cheeks and forehead; clumps and gaps by chance);
    ``farthest``: farthest-point sampling over the region's triangle vertices on the neutral mesh, started
    at the nose tip (:func:`~facerecon.facemodel.shape_subset.farthest_point_sampling`): spread evenly over
    the surface (a third of the random sample's share on nose, eyes and mouth); ``stratified``: the
    neutral mesh's triangle vertices cut into ``n`` compact cells of equal vertex count (recursive median
    splits along the longest side), the vertex nearest each cell's centre: ICT's density like ``random``,
    without its clumps and gaps.  ``farthest`` and ``stratified`` are deterministic (no seed)."""
    if sampling == "random":
        vertices = model.region_vertices(region)
        rng = np.random.default_rng(seed)
        return np.sort(rng.choice(vertices, size=min(n, len(vertices)), replace=False))
    used = np.unique(model.region_triangles(region) if region_tris is None else region_tris)
    n = min(n, len(used))
    p = model.neutral[used].astype(np.float64)
    if sampling == "farthest":
        hit = np.flatnonzero(used == model.landmarks_68[NOSE_TIP_LANDMARK])
        start = int(hit[0]) if len(hit) else 0
        return np.sort(used[farthest_point_sampling(p, n, start)])
    if sampling == "stratified":
        return np.sort(used[_strata_centres(p, np.arange(len(p)), n)])
    raise ValueError(f"fit sampling {sampling!r}: choose random, farthest or stratified")


def _strata_centres(p: np.ndarray, rows: np.ndarray, k: int) -> list[int]:
    """``k`` rows of ``p[rows]``: the cells of equal count from recursive median splits along the longest
    side, each cell's point nearest its centroid."""
    if k <= 1:
        q = p[rows]
        return [int(rows[np.argmin(((q - q.mean(0)) ** 2).sum(1))])]
    q = p[rows]
    axis = int(np.argmax(q.max(0) - q.min(0)))
    k1 = k // 2
    cut = round(len(rows) * k1 / k)
    order = np.argsort(q[:, axis], kind="stable")
    return _strata_centres(p, rows[order[:cut]], k1) + _strata_centres(p, rows[order[cut:]], k - k1)


def measured_points(points: np.ndarray) -> np.ndarray:
    """The rows of ``points`` (N, 3) (as float64) that are finite with z > 0: ``p[np.isfinite(p).all(1) & (p[:, 2] > 0)]``
    in one numba pass (numpy's row reduction of an (N, 3) mask was ~0.2-0.5 ms of a frame's 12,000-25,000 points); where
    every row is kept, ``points`` itself when it is C-ordered float64 (read only: the callers do not write it)."""
    p = np.ascontiguousarray(points, np.float64).reshape(-1, 3)
    keep = _finite_in_front(p)
    return p if keep.all() else p[keep]  # (the frame's callers pass valid pixels only: no copy of them)


@njit(cache=True, nogil=True)
def _finite_in_front(p):
    keep = np.empty(len(p), np.bool_)
    for i in range(len(p)):
        keep[i] = np.isfinite(p[i, 0]) and np.isfinite(p[i, 1]) and np.isfinite(p[i, 2]) and p[i, 2] > 0
    return keep


_NO_BASES = tuple(np.zeros((0, 0)) for _ in range(3))  # a rigid step: no identity / expression columns


@njit(cache=True, nogil=True)
def _jacobian(vi, ni, t, nh, index, ix, iy, iz, ex, ey, ez):
    """(m, 6 + k_id + k_ex): the joint step's Jacobian in one pass (no gathered copies of the basis rows), the
    values of ``np.concatenate([np.cross(vi - t, ni), ni, rows(id), rows(ex)], 1)`` bit for bit, where
    ``rows(b) = (bx[index] * nh[:, :1] + by[index] * nh[:, 1:2]) + bz[index] * nh[:, 2:]`` for the per-coordinate
    bases (3 x (n, k)) and head-frame normals ``nh`` (numpy's cross product: ``a1 b2 - a2 b1`` ...; its 3-axis
    sums left to right: (x + y) + z).  Zero-width bases: the rigid six columns."""
    m, k_id, k_ex = len(index), ix.shape[1], ex.shape[1]
    out = np.empty((m, 6 + k_id + k_ex))
    for i in range(m):
        a0, a1, a2 = vi[i, 0] - t[0], vi[i, 1] - t[1], vi[i, 2] - t[2]
        b0, b1, b2 = ni[i, 0], ni[i, 1], ni[i, 2]
        out[i, 0] = a1 * b2 - a2 * b1
        out[i, 1] = a2 * b0 - a0 * b2
        out[i, 2] = a0 * b1 - a1 * b0
        out[i, 3], out[i, 4], out[i, 5] = b0, b1, b2
        if k_id + k_ex == 0:
            continue
        j = index[i]
        n0, n1, n2 = nh[i, 0], nh[i, 1], nh[i, 2]
        for c in range(k_id):
            out[i, 6 + c] = (ix[j, c] * n0 + iy[j, c] * n1) + iz[j, c] * n2
        for c in range(k_ex):
            out[i, 6 + k_id + c] = (ex[j, c] * n0 + ey[j, c] * n1) + ez[j, c] * n2
    return out


@njit(cache=True, nogil=True)
def _paired_rows(v, nh, R, t, points, cube_points, order, starts, origin, cell, reach, dims, r2, ix, iy, iz, ex, ey, ez):
    """One Gauss-Newton iteration's pairs and rows in one compiled pass, (index, r, J): the subset's vertices ``v``
    and head-frame normals ``nh`` posed by ``R``, ``t``; those facing the camera (posed normal towards the origin)
    paired with their nearest measured point strictly closer than ``sqrt(r2)`` (the grid of
    :class:`~facerecon.geometry.neighbours.BoundedNeighbours` built on ``points``: its ``cube_query``, the same pairs);
    ``r``: the point-to-plane residuals ``n . (p - v)``, ``J``: :func:`_jacobian`'s rows, the basis columns taken
    against the head-frame normals themselves (``R^T (R n)`` is ``n`` up to rounding).  Replaces NumPy's posing,
    masks, gathers and residual (~0.4 ms of temporaries per iteration)."""
    n = v.shape[0]
    vc = np.empty((n, 3))
    nc = np.empty((n, 3))
    q = np.empty((n, 3))
    rows = np.empty(n, np.int64)
    m = 0
    for i in range(n):
        for c in range(3):
            vc[i, c] = (R[c, 0] * v[i, 0] + R[c, 1] * v[i, 1] + R[c, 2] * v[i, 2]) + t[c]
            nc[i, c] = R[c, 0] * nh[i, 0] + R[c, 1] * nh[i, 1] + R[c, 2] * nh[i, 2]
        if nc[i, 0] * vc[i, 0] + nc[i, 1] * vc[i, 1] + nc[i, 2] * vc[i, 2] < 0.0:
            q[m, 0], q[m, 1], q[m, 2] = vc[i, 0], vc[i, 1], vc[i, 2]
            rows[m] = i
            m += 1
    dist, j = cube_query(cube_points, order, starts, origin, cell, reach, dims, q[:m], r2)
    k = 0
    for e in range(m):
        if np.isfinite(dist[e]):
            k += 1
    index = np.empty(k, np.int64)
    vi = np.empty((k, 3))
    ni = np.empty((k, 3))
    nhi = np.empty((k, 3))
    r = np.empty(k)
    k = 0
    for e in range(m):
        if not np.isfinite(dist[e]):
            continue
        i = rows[e]
        pj = j[e]
        index[k] = i
        s = 0.0
        for c in range(3):
            vi[k, c] = vc[i, c]
            ni[k, c] = nc[i, c]
            nhi[k, c] = nh[i, c]
            s += nc[i, c] * (points[pj, c] - vc[i, c])
        r[k] = s
        k += 1
    return index, r, _jacobian(vi, ni, t, nhi, index, ix, iy, iz, ex, ey, ez)


_GEOMETRY_CACHE: dict[tuple, _SubsetGeometry] = {}


def _geometry(model: FaceModel, cfg: FitConfig) -> _SubsetGeometry:
    """The cached :class:`_SubsetGeometry` (~17 ms to build, a fifth of a 6-iteration joint fit):
    every frame of the default output and every start of ``--method fit`` reuses it."""
    key = (cfg.region, cfg.n_model_points, cfg.sampling, cfg.seed, cfg.n_identity, cfg.n_expression)
    return per_model(_GEOMETRY_CACHE, model, key, lambda: _SubsetGeometry(model, cfg), 8)


def per_model(cache: dict, model: FaceModel, key: tuple, build, limit: int):
    """``cache``'s entry for ``(model, *key)``, built by ``build()`` when missing (entries hold ``.model``:
    a new model under a reused ``id`` is rebuilt); the cache is emptied when it holds ``limit``."""
    full = (id(model), *key)
    value = cache.get(full)
    if value is None or value.model is not model:  # a new model under a reused id
        if len(cache) >= limit:
            cache.clear()
        value = cache[full] = build()
    return value


class _ModelSubset:
    """The subset geometry with this fit's fixed modes: modes beyond the fitted ones keep their
    given values (e.g. a network's prediction).  ``start_mesh``: the model's head-frame mesh at the start weights
    (at least up to the region's last vertex): the subset's base and the region's normals are taken from it and
    moved by the fitted weights' change, instead of products over all the bases (the same values to float32
    rounding)."""

    def __init__(self, geo: _SubsetGeometry, fixed_identity: np.ndarray | None = None,
                 fixed_expression: np.ndarray | None = None, start_mesh: np.ndarray | None = None):
        model, k_id, k_ex = geo.model, geo.k_id, geo.k_ex
        self.geo, self.model = geo, model
        self.k_id, self.k_ex, self.b_id, self.b_ex = k_id, k_ex, geo.b_id, geo.b_ex
        self.rest_id = np.zeros(model.n_identity - k_id) if fixed_identity is None else np.asarray(fixed_identity, np.float64)[k_id:]
        self.rest_ex = np.zeros(model.n_expression - k_ex) if fixed_expression is None else np.asarray(fixed_expression, np.float64)[k_ex:]
        self.start_tri = None
        if start_mesh is None:
            self.base = model.vertices(np.r_[np.zeros(k_id), self.rest_id], np.r_[np.zeros(k_ex), self.rest_ex],
                                       subset=geo.idx).astype(np.float64)
            return
        start = np.asarray(start_mesh, np.float64)
        if len(start) <= geo.tri_verts[-1]:
            raise ValueError(f"start mesh of {len(start)} vertices: the region reaches vertex {geo.tri_verts[-1]}")
        self.w0 = np.r_[np.zeros(k_id) if fixed_identity is None else np.asarray(fixed_identity, np.float64)[:k_id],
                        np.zeros(k_ex) if fixed_expression is None else np.asarray(fixed_expression, np.float64)[:k_ex]]
        self.start_tri = start[geo.tri_verts]
        self.base = start[geo.idx] - self.vertices_of_fitted(self.w0[:k_id], self.w0[k_id:])

    def full_weights(self, ident: np.ndarray, expr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.r_[ident, self.rest_id], np.r_[expr, self.rest_ex]

    def vertices_of_fitted(self, ident: np.ndarray, expr: np.ndarray) -> np.ndarray:
        """(n, 3): the fitted modes' part of the subset's vertices."""
        g = self.geo
        shape = (len(g.idx), 3)
        return np.dot(np.reshape(ident, (1, g.k_id)), g.b_id_flat).reshape(shape) + np.dot(np.reshape(expr, (1, g.k_ex)), g.b_ex_flat).reshape(shape)

    def vertices(self, ident: np.ndarray, expr: np.ndarray) -> np.ndarray:
        g, shape = self.geo, self.base.shape
        v = self.base + np.dot(np.reshape(ident, (1, g.k_id)), g.b_id_flat).reshape(shape)
        if g.k_ex:  # (no expression modes fitted: adding their zeros changes no value)
            v = v + np.dot(np.reshape(expr, (1, g.k_ex)), g.b_ex_flat).reshape(shape)
        return v

    def normals(self, ident: np.ndarray, expr: np.ndarray) -> np.ndarray:
        g = self.geo
        if self.start_tri is None:
            v = self.model.vertices(*self.full_weights(ident, expr), subset=g.tri_verts).astype(np.float64)
        else:
            dw = np.r_[ident, expr] - self.w0
            v = self.start_tri
            if dw.any():
                v = v + (dw.astype(np.float32) @ g.b_tri).reshape(-1, 3)
        return vertex_normals(v, g.tris_local)[g.idx_local]


def fit_face(
    points_cam: np.ndarray,
    model: FaceModel,
    pose: HeadPose,
    config: FitConfig | None = None,
    landmarks_cam: np.ndarray | None = None,
    identity: np.ndarray | None = None,
    expression: np.ndarray | None = None,
    start_mesh: np.ndarray | None = None,
) -> FitResult:
    """Fit pose, identity and expression to camera-frame points (mm) from an initial pose.  ``start_mesh``: the
    model's head-frame mesh of the start weights ``identity`` / ``expression`` where the caller already holds it
    (at least up to the fit region's last vertex; e.g. the check's): the fit's normals and subset start from it
    (:class:`_ModelSubset`)."""
    cfg = config or FitConfig()
    t0 = time.perf_counter()
    pts = measured_points(points_cam)
    if len(pts) < 50:
        raise ValueError("too few depth points to fit the face model")
    pairs = NearestNeighbours(pts, facing=True, bound=max(cfg.max_distance_mm))  # visible: normal facing the camera (at the origin, looking along +z)
    tree = pairs.tree  # its grid of cubes: the joint iterations query it from one compiled pass (_paired_rows)
    sub = _ModelSubset(_geometry(model, cfg), identity, expression, start_mesh)
    R, t = pose.R.copy(), pose.t_mm.copy()
    a = np.zeros(sub.k_id) if identity is None else np.asarray(identity, np.float64)[: sub.k_id].copy()
    b = np.zeros(sub.k_ex) if expression is None else np.asarray(expression, np.float64)[: sub.k_ex].copy()
    n_iter = cfg.rigid_iterations + cfg.iterations
    thresholds = np.geomspace(cfg.max_distance_mm[0], cfg.max_distance_mm[1], n_iter)
    history: list[float] = []
    rms, n_in = float("nan"), 0
    normals_head = sub.normals(a, b)
    first = 0
    if cfg.rigid_iterations > 0 and (landmarks_cam is None or cfg.landmark_weight <= 0):
        # the rigid stage is plain point-to-plane ICP with the model's planes: the project's one
        # rigid loop, rotating about t (the left-multiplicative update of the joint stage below)
        icp = rigid_icp(sub.vertices(a, b), pairs, normals=normals_head, init=SimilarityTransform(R, t),
                        iterations=cfg.rigid_iterations, max_distance=thresholds[: cfg.rigid_iterations], min_pairs=30,
                        planes="source", centre="translation", damping=1e-6, damping_floor=1.0, rms="plane")
        R, t, rms, n_in = icp.transform.R, icp.transform.t, icp.rms_mm, icp.n_inliers if icp.starved is None else icp.starved
        history += icp.history
        first = n_iter if icp.starved is not None else cfg.rigid_iterations
    for it in range(first, n_iter):
        rigid = it < cfg.rigid_iterations
        if not rigid and it > cfg.rigid_iterations and (it - cfg.rigid_iterations) % 4 == 0:
            normals_head = sub.normals(a, b)  # shape changes slowly: refresh normals every few steps (not at the first: unchanged)
        # d(R v + t)/dw = -[R v]x  (left-multiplicative update R <- exp(w) R): n . (w x rv) = w . (rv x n), rv = vi - t;
        # the identity / expression columns n . (R b) = (R^T n) . b
        index, r, J = _paired_rows(sub.vertices(a, b), normals_head, R, t, tree.points, *tree.grid, float(thresholds[it]) ** 2,
                          *(_NO_BASES if rigid else sub.geo.b_id_xyz), *(_NO_BASES if rigid else sub.geo.b_ex_xyz))
        n_in = len(index)
        if n_in < 30:
            break
        rms = math.sqrt(float(r @ r) / n_in)
        history.append(rms)
        H = J.T @ J
        g = J.T @ r
        n_rigid = 6
        if not rigid:
            s = np.arange(n_rigid, n_rigid + sub.k_id)  # the priors on the diagonal (no identity matrices made)
            H[s, s] += cfg.identity_prior
            g[s] -= cfg.identity_prior * a
            e = np.arange(n_rigid + sub.k_id, n_rigid + sub.k_id + sub.k_ex)
            H[e, e] += cfg.expression_prior
            g[e] -= cfg.expression_prior * b
        if landmarks_cam is not None and cfg.landmark_weight > 0:
            lm_idx = model.landmarks_68
            lm_head = model.vertices(*sub.full_weights(a, b), subset=lm_idx).astype(np.float64)
            lm_cam = lm_head @ R.T + t
            rl = (np.asarray(landmarks_cam, np.float64) - lm_cam).reshape(-1)
            Jl = np.zeros((rl.size, J.shape[1]))
            Jl[:, :3] = -_skew(lm_cam - t).reshape(-1, 3)
            Jl[:, 3:6] = np.tile(np.eye(3), (len(lm_idx), 1))
            w = cfg.landmark_weight
            H += w * Jl.T @ Jl
            g += w * Jl.T @ rl
        H.reshape(-1)[:: H.shape[0] + 1] += 1e-6 * max(H.diagonal().max(), 1.0)  # the diagonal's view (the same sums; ~8 us less than index arrays)
        delta = np.linalg.solve(H, g)
        R = axis_angle_to_matrix(delta[:3]) @ R
        t = t + delta[3:6]
        if not rigid:
            a = a + delta[6 : 6 + sub.k_id]
            b = np.clip(b + delta[6 + sub.k_id :], 0.0, 1.0)
    u, _, vt = np.linalg.svd(R)
    R = u @ vt
    ident, expr = sub.full_weights(a, b)
    return FitResult(HeadPose(R, t), ident, expr, rms, n_in, time.perf_counter() - t0, history)
