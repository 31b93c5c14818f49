"""The out-of-span correction: a smooth per-vertex offset field on ICT's mesh, solved against the
measured surface after the identity fit.

A face is not in the model's 100-mode span (james's scan: the mean face 1.53 mm from it, the best
fit 1.31 mm); the depth frame holds the rest.  After the identity fit this module moves each vertex
of the face region along the model's vertex normal by ``d_i`` (one unknown per vertex: well
conditioned, no sliding along the surface that depth cannot see), minimising

    sum_j w_j (r_j - d_i(j))^2 / sigma^2  +  smoothness |L d|^2  +  shrink |d|^2

* ``r_j = n_i . (p_j - v_i)``: measured point ``p_j`` (head frame) against the tangent plane of its
  nearest region vertex ``i`` (pairs gated along and across the normal: hair, neck and background
  never pair); ``w_j``: Geman-McClure weights of the current residual (IRLS);
* ``sigma``: the frame's own depth noise (:func:`grid_noise_mm`: second differences of the crop's
  depth grid), floored at ``min_sigma_mm``, so the smoothing follows the sensor (a Kinect v1 frame at
  1 m is smoothed more than one at 60 cm, an exact render least); the Geman-McClure scale is the
  robust scale of the residual after each solve;
* the measured points are the source frame's own pixels (:func:`source_grid`), not the networks'
  position image (its min-pooling biases slanted surfaces towards the camera);
* ``L``: the mesh's umbrella Laplacian (each vertex minus the mean of its neighbours) on the region,
  the region's border to the rest of the head held at 0 (Dirichlet): the field falls off to the
  model there; ``|L d|^2`` is a thin-plate (bi-Laplacian) prior, so unseen vertices continue the seen
  surface smoothly and ``shrink`` pulls them back to the model far from any data;
* free vertices more than ``margin_rings`` edges from a measured one keep the model (0), and each
  offset is bounded by ``max_offset_mm``.

A frame whose residual after the correction is implausible (too little of the face measured, the
points still far from the corrected surface, or a field too large to be the same face) keeps the
model surface; the result says why (:attr:`Correction.status`).

Pure numpy / numba (sparse conjugate gradients, warm-started across the re-weighted solves); scipy.sparse builds the
region's matrices once (then kept on disk), off the per-frame path.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from ..facemodel import FaceModel, vertex_normals
from ..facemodel.model import Csr, csr_matvec
from ..geometry.camera import Intrinsics
from ..geometry.icp import partition_median
from ..geometry.neighbours import BoundedNeighbours
from ..geometry.pose import HeadPose
from ..settings import toml_defaults
from .gauss_newton import measured_points, per_model

TRIM_NOISE = 0.95  # share of the second differences kept by :func:`grid_noise_mm`


@toml_defaults("configs/correction.toml", "correction")
class CorrectionConfig:
    """The ``[correction]`` table of ``configs/correction.toml`` (see the comments there)."""

    region: str
    max_normal_mm: float
    max_tangent_mm: float
    smoothness: float
    shrink: float
    robust_scale: float
    iterations: int
    min_sigma_mm: float
    max_offset_mm: float
    min_seen: float
    max_residual_mm: float
    max_rms_offset_mm: float
    tolerance: float
    first_tolerance: float
    prior: str
    margin_rings: int
    preconditioner: str
    preconditioner_shift: float


@dataclass(frozen=True, eq=False)
class Correction:
    """The solved field and what it was solved from.

    ``offsets`` is zero (and ``vertices_head`` the model surface) when ``status`` is not ``"on"``;
    ``normal_offsets`` / ``seen`` / ``confidence`` are per model vertex (0 / False outside the region)."""

    status: str  # "on" | "off: <reason>"
    offsets: np.ndarray  # (V, 3) mm, head frame: what is added to the model surface
    normal_offsets: np.ndarray  # (V,) mm along the model's vertex normals (the solved field, also when refused)
    seen: np.ndarray  # (V,) bool: a measured point paired with the vertex
    confidence: np.ndarray  # (V,) in [0, 1]: the share of the vertex's offset that comes from data, not the prior
    sigma_mm: float  # the frame's noise level the smoothing used
    residual_before_mm: float  # median |point - model surface| over the paired points
    residual_after_mm: float  # median |point - corrected surface| over the same points
    rms_offset_mm: float  # over the seen region vertices
    max_offset_mm: float
    n_points: int  # measured points paired
    seen_fraction: float  # of the region's vertices

    @property
    def on(self) -> bool:
        return self.status == "on"

    def stats(self) -> dict:
        """The numbers pose.json carries (None: not reached, the field was refused before)."""
        def mm(v: float):
            return round(float(v), 4) if np.isfinite(v) else None

        return {"sigma_mm": mm(self.sigma_mm), "residual_before_mm": mm(self.residual_before_mm),
                "residual_after_mm": mm(self.residual_after_mm), "rms_offset_mm": mm(self.rms_offset_mm),
                "max_offset_mm": mm(self.max_offset_mm), "points": int(self.n_points),
                "seen_fraction": round(float(self.seen_fraction), 4)}


class _RegionGeometry:
    """What the correction needs of the model that does not change between frames: the region, its
    border (held at 0), the triangles for its normals and the bi-Laplacian on its free vertices."""

    def __init__(self, model: FaceModel, region: str):
        import scipy.sparse as sp  # here: built once per model and region (then read from disk), not per frame

        self.model = model
        in_region = model.region_mask(region)
        tris = model.triangles
        touching = tris[in_region[tris].any(axis=1)]
        # normals from every triangle that touches the region (the border's too)
        self.tri_verts = np.unique(touching)
        local = np.full(model.n_vertices, -1, np.int64)
        local[self.tri_verts] = np.arange(len(self.tri_verts))
        self.tris_local = local[touching]
        # the region's vertices that belong to a triangle (the rest are loose: never moved)
        self.idx = np.intersect1d(np.flatnonzero(in_region), self.tri_verts)
        self.idx_in_tri = local[self.idx]
        n = len(self.idx)
        pos = np.full(model.n_vertices, -1, np.int64)
        pos[self.idx] = np.arange(n)
        e = np.concatenate([touching[:, [0, 1]], touching[:, [1, 2]], touching[:, [2, 0]]])
        e = _unique_pairs(np.sort(e, axis=1), model.n_vertices)
        border = np.zeros(model.n_vertices, bool)
        cross = in_region[e[:, 0]] != in_region[e[:, 1]]
        border[e[cross].ravel()] = True
        inner = e[in_region[e].all(axis=1)]
        i, j = pos[inner[:, 0]], pos[inner[:, 1]]
        adj = sp.coo_matrix((np.ones(2 * len(i)), (np.r_[i, j], np.r_[j, i])), shape=(n, n)).tocsr()
        deg = np.asarray(adj.sum(axis=1)).ravel()
        # the umbrella operator counts the neighbours outside the region too (they hold 0)
        ends = e[cross].ravel()
        out_deg = np.bincount(pos[ends[in_region[ends]]], minlength=n)
        lap = sp.eye(n) - sp.diags(1.0 / np.maximum(deg + out_deg, 1)) @ adj
        self.free = ~border[self.idx]
        lf = lap.tocsc()[:, self.free]
        bilaplacian = (lf.T @ lf).tocsr()
        bilaplacian.sort_indices()  # the product's rows come unsorted: sorted once here, not in each prior's sum
        self.bilaplacian = _csr(bilaplacian)
        # the membrane energy sum over edges (d_i - d_j)^2 (border neighbours hold 0): D - A on the free vertices
        comb = (sp.diags(deg + out_deg) - adj).tocsc()[:, self.free].tocsr()[self.free]
        self.membrane = _csr(comb.tocsr())
        self.n_free = int(self.free.sum())
        fa = _csr(adj.tocsc()[:, self.free].tocsr()[self.free])
        # int64 row pointers as the per-frame system's (``_principal``): one signature of the product to load, not two
        self.free_adjacency = Csr(fa.indptr.astype(np.int64), fa.indices, fa.data, fa.shape)
        self._priors: dict = {}

    def prior(self, smoothness: float, shrink: float, kind: str) -> Csr:
        """``smoothness x (bi-Laplacian | membrane) + shrink x I`` on the free vertices, CSR with sorted
        indices and every diagonal entry stored (built once per setting: a column slice of it keeps both)."""
        key = (float(smoothness), float(shrink), kind)
        m = self._priors.get(key)
        if m is None:
            if kind not in ("thin-plate", "membrane"):
                raise ValueError(f"correction prior {kind!r}: choose thin-plate or membrane")
            base = self.bilaplacian if kind == "thin-plate" else self.membrane
            m = _scaled_plus_diagonal(base, float(smoothness), float(shrink))
            self._priors = {key: m}  # one setting at a time in practice
        return m

    def normals(self, v_head: np.ndarray) -> np.ndarray:
        """(n, 3) unit normals of the region's vertices on the mesh ``v_head``."""
        return vertex_normals(np.asarray(v_head[self.tri_verts], np.float64), self.tris_local)[self.idx_in_tri]


def _csr(m) -> Csr:
    """scipy's CSR matrix ``m`` as a :class:`Csr` of the same arrays."""
    return Csr(m.indptr, m.indices, m.data, (int(m.shape[0]), int(m.shape[1])))


def _scaled_plus_diagonal(base: Csr, scale: float, diag: float) -> Csr:
    """``scale x base + diag x I`` as scipy gives it (``(scale * base + diag * sp.eye(n, format="csr")).tocsr()``, then
    ``sum_duplicates()`` and ``sort_indices()``) without importing scipy.sparse: each entry ``scale x b`` (``+ diag`` on
    the diagonal; the missing diagonal entries inserted as ``diag``), the columns sorted within each row, exact zeros
    dropped (scipy's sum keeps only nonzero results).  The same arrays, bit for bit (tests/test_cold_start.py)."""
    n = base.shape[0]
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(base.indptr))
    cols = np.asarray(base.indices, np.int64)
    v = base.data * scale
    same_row = rows[1:] == rows[:-1]
    if (cols[1:][same_row] > cols[:-1][same_row]).all():  # sorted, no duplicates: the region's matrices as built
        r, c = rows, cols
    else:
        key = rows * n + cols
        order = np.argsort(key, kind="stable")
        r, c, v, key = rows[order], cols[order], v[order], key[order]
        if (key[1:] == key[:-1]).any():
            raise ValueError("correction prior: a duplicate entry in the region's matrix")  # never built so
    on = r == c
    v[on] = v[on] + diag
    if on.sum() < n:  # a row without its diagonal entry: inserted as ``diag``
        missing = np.ones(n, bool)
        missing[r[on]] = False
        add = np.flatnonzero(missing)
        r, c = np.r_[r, add], np.r_[c, add]
        v = np.r_[v, np.full(len(add), 0.0) + diag]
        order = np.argsort(r * n + c, kind="stable")
        r, c, v = r[order], c[order], v[order]
    keep = v != 0
    if not keep.all():
        r, c, v = r[keep], c[keep], v[keep]
    indptr = np.zeros(n + 1, np.int32)
    np.cumsum(np.bincount(r, minlength=n), out=indptr[1:])
    return Csr(indptr, c.astype(np.int32), v, (n, n))


def _unique_pairs(e: np.ndarray, n: int) -> np.ndarray:
    """``np.unique(e, axis=0)`` of (M, 2) indices in [0, n): the same rows, order (lexicographic) and dtype, from one
    int64 key per row (~10x faster than the row-wise unique: ~40 ms of a process's first frame)."""
    nv = np.int64(n)
    key = np.unique(e[:, 0].astype(np.int64) * nv + e[:, 1])
    return np.stack([key // nv, key % nv], axis=1).astype(e.dtype, copy=False)


_GEOMETRY: dict[tuple, _RegionGeometry] = {}
_GEOMETRY_CACHE_VERSION = 1
_GEOMETRY_ARRAYS = ("tri_verts", "tris_local", "idx", "idx_in_tri", "free")
_GEOMETRY_MATRICES = ("bilaplacian", "membrane", "free_adjacency")


def region_geometry(model: FaceModel, region: str) -> _RegionGeometry:
    """The cached :class:`_RegionGeometry` (~30 ms to build: once per model and region, and kept on disk in
    ``$FACERECON_HOME/correction``: a process's first frame reads it back)."""
    return per_model(_GEOMETRY, model, (region,), lambda: _geometry_from_disk(model, region), 4)


def _geometry_file(model: FaceModel, region: str):
    """(the disk cache file of ``region``'s geometry of ``model``, its key as text), or (None, "")."""
    import hashlib
    import json
    from pathlib import Path

    from ..facemodel.ict import facerecon_home
    from ..facemodel.model import content_fingerprint

    try:
        here = Path(__file__)  # this code and the regions' table (facemodel/model.py) build it; scipy its matrices
        code = hashlib.sha256(here.read_bytes() + here.parents[1].joinpath("facemodel", "model.py").read_bytes())
        key = json.dumps({"version": _GEOMETRY_CACHE_VERSION, "region": str(region), "model": content_fingerprint(model),
                          "code": code.hexdigest()[:20], "numpy": np.__version__, "scipy": _scipy_version()},
                         sort_keys=True)
    except (OSError, AttributeError, TypeError, ValueError):
        return None, ""
    return facerecon_home() / "correction" / f"region-{hashlib.sha256(key.encode()).hexdigest()[:24]}.bin", key


def _scipy_version() -> str:
    import scipy

    return scipy.__version__


def _geometry_from_disk(model: FaceModel, region: str) -> _RegionGeometry:
    """:class:`_RegionGeometry` read back from its disk cache file when whole and of this model, region and code
    (copies: aligned, writable arrays, as built), else built and written."""
    from ..fileutil import read_cache_file, write_cache_file

    path, key = _geometry_file(model, region)
    got = read_cache_file(path, key) if path is not None else None
    if got is not None:
        geo = _geometry_of_arrays(model, got[0], got[1])
        if geo is not None:
            return geo
    geo = _RegionGeometry(model, region)
    if path is not None:
        arrays = [getattr(geo, a) for a in _GEOMETRY_ARRAYS]
        for name in _GEOMETRY_MATRICES:
            m = getattr(geo, name)
            arrays += [m.data, m.indices, m.indptr]
        write_cache_file(path, key, {"shapes": [list(getattr(geo, m).shape) for m in _GEOMETRY_MATRICES]}, arrays)
    return geo


def _geometry_of_arrays(model: FaceModel, header: dict, arrays: list) -> _RegionGeometry | None:
    """The geometry of a cache file's arrays, or None where they are not a region's geometry of ``model``."""
    try:
        shapes = [tuple(int(x) for x in s) for s in header["shapes"]]
        if len(arrays) != len(_GEOMETRY_ARRAYS) + 3 * len(_GEOMETRY_MATRICES) or len(shapes) != len(_GEOMETRY_MATRICES):
            return None
        geo = _RegionGeometry.__new__(_RegionGeometry)
        geo.model = model
        for name, a in zip(_GEOMETRY_ARRAYS, arrays):
            setattr(geo, name, np.array(a))
        tri_verts, tris_local, idx, idx_in_tri, free = (getattr(geo, a) for a in _GEOMETRY_ARRAYS)
        nv, nt = model.n_vertices, len(tri_verts)
        if not (tri_verts.ndim == idx.ndim == idx_in_tri.ndim == free.ndim == 1 and tris_local.ndim == 2
                and len(idx) == len(idx_in_tri) == len(free) and free.dtype == np.bool_
                and (not nt or (tri_verts.min() >= 0 and tri_verts.max() < nv))
                and (not tris_local.size or (tris_local.min() >= 0 and tris_local.max() < nt))
                and (not len(idx) or (idx.min() >= 0 and idx.max() < nv and idx_in_tri.min() >= 0 and idx_in_tri.max() < nt))):
            return None
        geo.n_free = int(free.sum())
        rest = arrays[len(_GEOMETRY_ARRAYS):]
        for k, (name, shape) in enumerate(zip(_GEOMETRY_MATRICES, shapes)):
            data, indices, indptr = (np.array(a) for a in rest[3 * k : 3 * k + 3])
            if shape != (geo.n_free, geo.n_free):
                return None
            if not _valid_csr(indptr, indices, data, shape):
                return None
            setattr(geo, name, Csr(indptr, indices, data, shape))
        geo._priors = {}
        return geo
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def _valid_csr(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, shape: tuple[int, int]) -> bool:
    """The arrays are a CSR matrix of ``shape`` (as scipy's ``check_format(full_check=True)`` checks: int32 / int64
    indices, float64 data, ``indptr`` from 0 to the entries and not decreasing, columns in range)."""
    return (indptr.ndim == indices.ndim == data.ndim == 1
            and indptr.dtype in (np.int32, np.int64) and indices.dtype in (np.int32, np.int64) and data.dtype == np.float64
            and len(indptr) == shape[0] + 1 and indptr[0] == 0 and indptr[-1] == len(indices) == len(data)
            and bool((np.diff(indptr) >= 0).all()) and (not len(indices) or (indices.min() >= 0 and indices.max() < shape[1])))


def _robust_sigma(e: np.ndarray, w: np.ndarray) -> float:
    """1.4826 x the weighted median absolute residual (Gaussian sigma of the inliers)."""
    a = np.abs(e)
    if len(a) and (w == 1.0).all():  # unit weights (the first solve's): the ceil(n / 2)-th smallest, by one partition
        k = (len(a) + 1) // 2 - 1
        return float(1.4826 * np.partition(a, k)[k])
    order = np.argsort(a)
    c = np.cumsum(w[order])
    return float(1.4826 * a[order][np.searchsorted(c, 0.5 * c[-1])])


def _principal(m: Csr, keep: np.ndarray) -> tuple[Csr, np.ndarray]:
    """``m[keep][:, keep]`` (``keep`` sorted, unique; ``m`` with sorted indices and every diagonal entry
    stored) and where each row's diagonal entry sits in its ``data``: the same entries in the same order
    as scipy's two fancy indexings (so the same products, bit for bit), in one numba pass (~5x faster)."""
    pos = np.full(m.shape[0], -1, np.int64)
    pos[keep] = np.arange(len(keep))
    indptr, indices, data, diag = _principal_nb(m.indptr, m.indices, m.data, keep.astype(np.int64), pos)  # (no int64 copies of m)
    if (diag < 0).any():
        raise ValueError("principal submatrix: a diagonal entry is not stored")
    return Csr(indptr, indices, data, (len(keep), len(keep))), diag


@njit(cache=True, nogil=True)
def _principal_nb(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, keep: np.ndarray, pos: np.ndarray):
    n = len(keep)
    count = 0  # an upper bound: the kept rows' entries
    for r in range(n):
        count += indptr[keep[r] + 1] - indptr[keep[r]]
    out_ptr = np.zeros(n + 1, np.int64)
    out_idx = np.empty(count, np.int32)
    out_data = np.empty(count)
    diag = np.full(n, -1, np.int64)
    k = 0
    for r in range(n):
        row = keep[r]
        for e in range(indptr[row], indptr[row + 1]):
            c = pos[indices[e]]
            if c >= 0:
                out_idx[k] = c
                out_data[k] = data[e]
                if c == r:
                    diag[r] = k
                k += 1
        out_ptr[r + 1] = k
    return out_ptr, out_idx[:k].copy(), out_data[:k].copy(), diag


@njit(cache=True, nogil=True)
def _gated_pairs(p, dist, k, cand, vr, nr, max_normal, max_tangent):
    """The pairs (region vertex ``vi``, residual ``r`` along its normal) of the points ``p`` with a nearest candidate
    vertex (``dist`` finite; ``cand[k]``) within both gates, in the points' order: the values of
    ``r = np.einsum("ij,ij->i", delta, n)`` (NumPy 2.4's einsum adds a row's three products as (x + z) + y: its
    two-lane loop) and ``tangent = np.linalg.norm(delta - r[:, None] * n, axis=1)`` (left to right) and the gates
    ``|r| < max_normal``, ``tangent < max_tangent``, bit for bit."""
    m = len(p)
    vi = np.empty(m, np.int64)
    r = np.empty(m)
    count = 0
    for i in range(m):
        if not np.isfinite(dist[i]):
            continue
        v = cand[k[i]]
        d0, d1, d2 = p[i, 0] - vr[v, 0], p[i, 1] - vr[v, 1], p[i, 2] - vr[v, 2]
        n0, n1, n2 = nr[v, 0], nr[v, 1], nr[v, 2]
        ri = (d0 * n0 + d2 * n2) + d1 * n1
        e0, e1, e2 = d0 - ri * n0, d1 - ri * n1, d2 - ri * n2
        tangent = np.sqrt((e0 * e0 + e1 * e1) + e2 * e2)
        if abs(ri) < max_normal and tangent < max_tangent:
            vi[count] = v
            r[count] = ri
            count += 1
    return vi[:count].copy(), r[:count].copy()


def _pcg(a: Csr, b: np.ndarray, x: np.ndarray, tol: float, max_iter: int = 500,
         diagonal: np.ndarray | None = None, factor: "_IncompleteCholesky | None" = None) -> tuple[np.ndarray, int]:
    """Preconditioned conjugate gradients for the SPD ``a`` from ``x`` (to ``|r| <= tol |b|``): scipy's ``cg``
    without its per-iteration operator wrapping (a third of its time on these systems).  Returns the solution and
    the iterations made.

    ``factor`` None: Jacobi (``diagonal``: ``a``'s diagonal where the caller holds it, the same values as
    ``a.diagonal()``).  ``factor``: an incomplete Cholesky factor of ``a`` (or of ``a`` with other data weights on its
    diagonal: it only preconditions), applied by two triangular sweeps.  The iterations are one compiled loop
    (:func:`_pcg_loop`: the sparse product is :class:`Csr`'s, the dot products are sums in index order)."""
    x = np.array(x, np.float64)  # a copy: the warm start is the caller's
    bn = tol * max(float(np.linalg.norm(b)), 1e-300)
    if factor is None:
        ptr, idx, val, inv_ic = _NO_FACTOR
        inv = 1.0 / (a.diagonal() if diagonal is None else diagonal)
    else:
        ptr, idx, val, inv_ic = factor.ptr, factor.idx, factor.val, factor.inv
        inv = _NO_FACTOR[3]
    it = _pcg_loop(a.indptr, a.indices, a.data, np.asarray(b, np.float64), x, bn, int(max_iter), ptr, idx, val, inv_ic, inv)
    return x, it


_NO_FACTOR = (np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0))  # (ptr, idx, val, inv): none


@njit(cache=True, nogil=True)
def _pcg_loop(indptr, indices, data, b, x, bn, max_iter, ptr, idx, val, inv_ic, inv):
    """Preconditioned conjugate gradients on the CSR matrix (``indptr``, ``indices``, ``data``) in place on ``x``
    until ``|r| <= bn`` or ``max_iter`` steps; returns the steps made.  The preconditioner: the incomplete factor
    (``ptr``, ``idx``, ``val``, ``inv_ic`` of :func:`_ic_factor`; two triangular sweeps) where ``inv_ic`` is not
    empty, else Jacobi (``inv``: the diagonal's reciprocals).  One compiled loop: the per-step products, dot products
    and vector updates called from Python cost ~40-60 us a step (a solve makes 3-9)."""
    n = len(b)
    r = b - csr_matvec(indptr, indices, data, x)
    z = np.empty(n)
    p = np.zeros(n)
    ap = np.zeros(n)
    ic = len(inv_ic) > 0
    if ic:
        _ic_step(x, r, p, ap, 0.0, ptr, idx, val, inv_ic, z)  # z = M^-1 r (x and r unchanged: a zero step)
    else:
        for i in range(n):
            z[i] = inv[i] * r[i]
    rz = 0.0
    rr = 0.0
    for i in range(n):
        p[i] = z[i]
        rz += r[i] * z[i]
        rr += r[i] * r[i]
    bn2 = bn * bn
    it = 0
    while it < max_iter and not rr <= bn2:
        ap = csr_matvec(indptr, indices, data, p)
        pap = 0.0
        for i in range(n):
            pap += p[i] * ap[i]
        alpha = rz / pap
        if ic:
            _ic_step(x, r, p, ap, alpha, ptr, idx, val, inv_ic, z)  # x += alpha p; r -= alpha ap; z = M^-1 r
        else:
            for i in range(n):
                x[i] += alpha * p[i]
                r[i] -= alpha * ap[i]
                z[i] = inv[i] * r[i]
        rz_new = 0.0
        rr = 0.0
        for i in range(n):
            rz_new += r[i] * z[i]
            rr += r[i] * r[i]
        beta = rz_new / rz
        for i in range(n):
            p[i] = z[i] + beta * p[i]
        rz = rz_new
        it += 1
    return it


class _IncompleteCholesky:
    """The zero-fill incomplete Cholesky factor ``L`` (``L L^T ~ a``, on ``a``'s lower pattern) of an SPD CSR matrix
    ``a`` (sorted indices, every diagonal entry stored at ``on_diag``), its diagonal scaled by ``1 + shift`` first:
    the bi-Laplacian prior has positive off-diagonal entries (not an M-matrix), where the unshifted factor can break
    down (a pivot <= 0: it did on every real frame tried).  The shift is doubled until the factor exists (``ok``
    False: not within 8 doublings).  Stored compact: the strictly lower rows, and the diagonal's reciprocals (the
    sweeps multiply)."""

    def __init__(self, a: Csr, on_diag: np.ndarray, shift: float):
        s = float(shift)
        self.ok, self.shift = False, s
        for _ in range(9):
            self.ptr, self.idx, self.val, self.inv, ok = _ic_factor(a.indptr, a.indices, a.data, on_diag, s)
            if ok:
                self.ok, self.shift = True, s
                break
            s = max(2.0 * s, 1e-3)


@njit(cache=True, nogil=True)
def _ic_factor(indptr, indices, data, on_diag, shift):
    """(ptr, idx, val, inv, ok): ``L``'s strictly lower rows in CSR (``a``'s pattern left of each diagonal) and
    ``inv[i] = 1 / L[i, i]``; ``L[i, k] = (a_ik - sum_j<k L[i, j] L[k, j]) / L[k, k]`` over the stored pattern (the
    row's earlier entries held in a dense work row).  ``ok`` False where a pivot is not positive."""
    n = len(on_diag)
    ptr = np.zeros(n + 1, np.int64)
    for i in range(n):
        ptr[i + 1] = ptr[i] + (on_diag[i] - indptr[i])
    idx = np.empty(ptr[n], np.int64)
    val = np.empty(ptr[n])
    inv = np.empty(n)
    w = np.zeros(n)
    for i in range(n):
        k0 = ptr[i]
        for e in range(indptr[i], on_diag[i]):
            idx[k0 + e - indptr[i]] = indices[e]
        for e in range(ptr[i], ptr[i + 1]):
            k = idx[e]
            s = data[indptr[i] + e - ptr[i]]
            for f in range(np.uint64(ptr[k]), np.uint64(ptr[k + 1])):  # unsigned: no wraparound per load (as _ic_step)
                s -= val[f] * w[np.uint64(idx[f])]
            s *= inv[k]
            val[e] = s
            w[k] = s
        d = data[on_diag[i]] * (1.0 + shift)
        for e in range(ptr[i], ptr[i + 1]):
            d -= val[e] * val[e]
            w[idx[e]] = 0.0
        if not d > 0.0:
            return ptr, idx, val, inv, False
        inv[i] = 1.0 / np.sqrt(d)
    return ptr, idx, val, inv, True


@njit(cache=True, nogil=True)
def _ic_step(x, r, p, ap, alpha, ptr, idx, val, inv, z):
    """``x += alpha p``, ``r -= alpha ap``, then ``z = (L L^T)^-1 r`` for the factor of :func:`_ic_factor`: a forward
    sweep by rows, a backward one by columns."""
    # unsigned positions (``np.uint64``): numba then drops each load's negative-index wraparound, ~30 % of the
    # sweeps' time (docs/speed.md round 8); the same operations in the same order
    n = len(r)
    for i in range(n):
        x[i] += alpha * p[i]
        r[i] -= alpha * ap[i]
    lo = np.uint64(ptr[0])
    for i in range(n):
        s = r[i]
        hi = np.uint64(ptr[i + 1])
        for e in range(lo, hi):
            s -= val[e] * z[np.uint64(idx[e])]
        z[i] = s * inv[i]
        lo = hi
    for i in range(n - 1, -1, -1):
        zi = z[i] * inv[i]
        z[i] = zi
        for e in range(np.uint64(ptr[i]), np.uint64(ptr[i + 1])):
            z[np.uint64(idx[e])] -= val[e] * zi


def source_grid(depth_mm: np.ndarray, intrinsics: Intrinsics, box: tuple[float, float, float, float], z_range: tuple[float, float],
                out: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """The measured points of the source frame's pixels inside ``box`` (``(u0, v0, u1, v1)`` outer edges,
    pixel centres at integers) with a depth in ``z_range``: an organised ((h, w, 3) camera frame mm,
    (h, w) valid) grid, every ``step``-th pixel so that about ``out`` pixels span the box.

    Each point is its own pixel's ray at its own depth.  The networks' position image is not used
    here: its min-pooling (the nearest of up to 4 x 4 samples per pixel, so a silhouette never blends
    depths) moves a slanted surface towards the camera by up to half a pixel's slope (measured: a
    0.35-0.4 mm offset over the whole face of an exact render), which the correction would copy."""
    h, w = depth_mm.shape
    u0, v0, u1, v1 = box
    step = max(1, int(round((u1 - u0) / out)))
    us = np.arange(max(int(np.ceil(u0)), 0), min(int(np.floor(u1)) + 1, w), step)
    vs = np.arange(max(int(np.ceil(v0)), 0), min(int(np.floor(v1)) + 1, h), step)
    z = np.asarray(depth_mm)[np.ix_(vs, us)].astype(np.float64)  # the pixels taken, then widened (not the whole frame)
    valid = np.isfinite(z) & (z > max(z_range[0], 0.0)) & (z < z_range[1])
    k = intrinsics
    x = (us[None, :] - k.cx) / k.fx * z
    y = (vs[:, None] - k.cy) / k.fy * z
    return np.stack([x, y, z], axis=-1), valid


def grid_noise_mm(points: np.ndarray, valid: np.ndarray, max_jump_mm: float = 10.0) -> float:
    """The depth noise of an organised grid of measured points ((h, w, 3) camera frame, mm, with its
    (h, w) ``valid`` mask): the robust scale of the second differences of z along rows and columns
    (white noise sigma gives sigma^2 x 6; a smooth face adds little at 2 mm pixels), over triples of
    valid pixels without a jump, the largest ``1 - TRIM_NOISE`` left out (edges, flying pixels).  NaN with fewer than 100 triples."""
    d2 = _second_differences(points[..., 2], valid, float(max_jump_mm))  # |z''| along rows, then along columns
    if len(d2) < 100:
        return float("nan")
    # a trimmed RMS, not a median: quantised depth (Kinect v1: 1/8-px disparity steps, ~2.9 mm at 1 m)
    # is flat between its steps, so the median second difference is 0 however coarse the steps are; the smallest
    # values by one partition (the same values as a sort's first ones, summed in another order)
    k = int(np.ceil(TRIM_NOISE * len(d2)))
    a = np.partition(d2, k - 1)[:k]
    return float(np.sqrt(np.mean(a**2) / 6.0))


@njit(cache=True, nogil=True)
def _second_differences(z, valid, max_jump):
    """|a - 2 b + c| of every three consecutive valid pixels of ``z`` along its rows, then along its columns, where
    neither step ``|a - b|``, ``|c - b|`` reaches ``max_jump`` (one pass each, no (h, w) temporaries)."""
    h, w = z.shape
    out = np.empty(h * max(w - 2, 0) + w * max(h - 2, 0))
    k = 0
    for i in range(h):
        for j in range(w - 2):
            if valid[i, j] and valid[i, j + 1] and valid[i, j + 2]:
                a, b, c = z[i, j], z[i, j + 1], z[i, j + 2]
                d2 = a - 2.0 * b + c
                if np.isfinite(d2) and abs(a - b) < max_jump and abs(c - b) < max_jump:
                    out[k] = abs(d2)
                    k += 1
    for j in range(w):
        for i in range(h - 2):
            if valid[i, j] and valid[i + 1, j] and valid[i + 2, j]:
                a, b, c = z[i, j], z[i + 1, j], z[i + 2, j]
                d2 = a - 2.0 * b + c
                if np.isfinite(d2) and abs(a - b) < max_jump and abs(c - b) < max_jump:
                    out[k] = abs(d2)
                    k += 1
    return out[:k]


def correct_surface(points_cam: np.ndarray, v_head: np.ndarray, pose: HeadPose, model: FaceModel,
                    config: CorrectionConfig | None = None, noise_mm: float | None = None) -> Correction:
    """The correction field of the model surface ``v_head`` (head frame, posed by ``pose``) against
    the measured ``points_cam`` (camera frame, mm; non-finite or z <= 0 rows are ignored).
    ``noise_mm``: the frame's depth noise (:func:`grid_noise_mm`; None: the robust scale of the
    residual to the model surface, an over-estimate where the face is far from the model)."""
    cfg = config or CorrectionConfig()
    geo = region_geometry(model, cfg.region)
    nv = model.n_vertices
    v_head = np.asarray(v_head, np.float64)
    pts = measured_points(points_cam)
    vr = v_head[geo.idx]
    nr = geo.normals(v_head)
    # the vertices the camera can see: normal towards the camera (at the origin of the camera frame)
    cam_head = pose.inverse_apply(np.zeros((1, 3)))[0]
    facing = np.einsum("ij,ij->i", nr, cam_head - vr) > 0
    zero = np.zeros(nv)

    def refused(reason: str, d_all=zero, seen_all=None, conf_all=zero, sigma=float("nan"), before=float("nan"),
                after=float("nan"), rms=float("nan"), big=float("nan"), n_pts=0, frac=0.0) -> Correction:
        return Correction(f"off: {reason}", np.zeros((nv, 3)), d_all, np.zeros(nv, bool) if seen_all is None else seen_all,
                          conf_all, sigma, before, after, rms, big, n_pts, frac)

    if len(pts) == 0 or not facing.any():
        return refused("no measured points on the face")
    p_head = pose.inverse_apply(pts)
    cand = np.flatnonzero(facing & geo.free)
    # a pair within both gates is nearer than sqrt(normal^2 + tangent^2) (r^2 + tangent^2 = distance^2; the factor
    # covers the rounding): a nearest vertex beyond that is always gated out, so the lookup need not reach farther
    reach = float(np.hypot(cfg.max_normal_mm, cfg.max_tangent_mm)) * (1.0 + 1e-6)
    dist, k = BoundedNeighbours(vr[cand], reach).query(p_head, reach)
    vi, r = _gated_pairs(p_head, dist, k, cand, vr, nr, float(cfg.max_normal_mm), float(cfg.max_tangent_mm))
    n = len(geo.idx)
    seen_r = np.zeros(n, bool)
    seen_r[vi] = True
    frac = float(seen_r.sum() / n)
    seen_all = np.zeros(nv, bool)
    seen_all[geo.idx] = seen_r
    if frac < cfg.min_seen:
        return refused(f"{frac:.0%} of the face measured (< {cfg.min_seen:.0%})", seen_all=seen_all, n_pts=len(r), frac=frac)
    free_pos = np.full(n, -1, np.int64)
    free_pos[geo.free] = np.arange(geo.n_free)
    col = free_pos[vi]  # every paired vertex is free (paired among free vertices only)
    before = partition_median(np.abs(r))  # np.median's value from one partition (geometry.icp)
    w = np.ones(len(r))
    noise = _robust_sigma(r, w) if noise_mm is None or not np.isfinite(noise_mm) else float(noise_mm)
    sigma = max(noise, cfg.min_sigma_mm)  # the smoothing's noise level (fixed: the robust scale below adapts)
    # the unknowns: the free vertices within ``margin_rings`` edges of a measured one; the rest keep the
    # model (0), like the border (the far unseen part would only decay to 0, and it is what makes the
    # system ill-conditioned: measured, 3-5x the conjugate-gradient iterations)
    active = np.zeros(geo.n_free, bool)
    active[col] = True
    for _ in range(int(cfg.margin_rings)):
        active |= (geo.free_adjacency @ active.astype(np.float64)) > 0
    act = np.flatnonzero(active)
    pos = np.full(geo.n_free, -1, np.int64)
    pos[act] = np.arange(len(act))
    col = pos[col]
    n_act = len(act)
    system, on_diag = _principal(geo.prior(cfg.smoothness, cfg.shrink, cfg.prior), act)  # the inactive vertices held at 0
    system.data *= sigma**2
    prior_diag = system.data[on_diag].copy()
    if cfg.preconditioner not in ("incomplete-cholesky", "jacobi"):
        raise ValueError(f"correction preconditioner {cfg.preconditioner!r}: choose incomplete-cholesky or jacobi")
    d = np.zeros(n_act)
    factor = None
    for it in range(max(int(cfg.iterations), 1)):
        a = np.bincount(col, w, minlength=n_act)
        b = np.bincount(col, w * r, minlength=n_act)
        diagonal = prior_diag + a
        system.data[on_diag] = diagonal
        if it == 0:  # start from each vertex's mean residual: CG removes the noise in it first (fewer iterations)
            d = b / np.maximum(a, 1.0)
            if cfg.preconditioner == "incomplete-cholesky":
                # factored once per frame: the later solves change only the data weights on the diagonal, and the
                # first factor still preconditions them well (measured: 0-2 iterations more than a new factor, for
                # less than a factor's cost)
                factor = _IncompleteCholesky(system, on_diag, cfg.preconditioner_shift)
                factor = factor if factor.ok else None  # Jacobi then
        # the solves before the last only set the robust weights: solved less tightly
        tol = cfg.tolerance if it == max(int(cfg.iterations), 1) - 1 else cfg.first_tolerance
        d, _ = _pcg(system, b, d, tol, diagonal=diagonal, factor=factor)
        e = r - d[col]
        scale = max(_robust_sigma(e, w), cfg.min_sigma_mm)
        w = 1.0 / (1.0 + (e / (cfg.robust_scale * scale)) ** 2) ** 2  # Geman-McClure
    d = np.clip(d, -cfg.max_offset_mm, cfg.max_offset_mm)
    after = partition_median(np.abs(r - d[col]))
    d_free = np.zeros(geo.n_free)
    d_free[act] = d
    d_r = np.zeros(n)
    d_r[geo.free] = d_free
    # the share of each offset the data decide: data weight against the prior's diagonal
    a = np.bincount(col, w, minlength=n_act)
    conf_free = np.zeros(geo.n_free)
    conf_free[act] = a / (a + prior_diag)
    conf_r = np.zeros(n)
    conf_r[geo.free] = conf_free
    d_all, conf_all = zero.copy(), zero.copy()
    d_all[geo.idx], conf_all[geo.idx] = d_r, conf_r
    rms = float(np.sqrt(np.mean(d_r[seen_r] ** 2)))
    big = float(np.abs(d_r).max())
    stats = dict(d_all=d_all, seen_all=seen_all, conf_all=conf_all, sigma=sigma, before=before, after=after, rms=rms, big=big,
                 n_pts=len(r), frac=frac)
    if after > cfg.max_residual_mm:
        return refused(f"median residual {after:.2f} mm after the correction (> {cfg.max_residual_mm:g})", **stats)
    if rms > cfg.max_rms_offset_mm:
        return refused(f"rms offset {rms:.2f} mm (> {cfg.max_rms_offset_mm:g}): not a correction of this face", **stats)
    offsets = np.zeros((nv, 3))
    offsets[geo.idx] = d_r[:, None] * nr
    return Correction("on", offsets, d_all, seen_all, conf_all, sigma, before, after, rms, big, len(r), frac)
