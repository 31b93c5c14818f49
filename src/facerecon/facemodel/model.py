"""The ICT-FaceKit Light morphable face model as one typed object.

Canonical head frame (used by every module): millimetres; x towards the subject's left,
y down (towards the chin), z into the head (from the face towards the back); origin at
the ICT model origin, inside the head about 130 mm behind the nose tip.  A frontal face
looking at the camera has rotation identity in the camera frame (x right, y down,
z forward).  See :mod:`facerecon.geometry.rotations` for the Euler convention.

``vertices(identity, expression)`` is linear: ``neutral + identity @ B_id + expression @ B_exp``
with identity weights ~ N(0, 1) (each mode is one standard deviation) and expression
weights in [0, 1] (ARKit-style blendshapes).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from numba import njit

from .ict import resolve_cache

# Vertex ranges of ICT-FaceKit (upstream documentation), [start, stop).
REGIONS: dict[str, tuple[int, int]] = {
    "face": (0, 9409),
    "narrow_face": (0, 6706),
    "head_and_neck": (9409, 11248),
    "mouth_socket": (11248, 13294),
    "eye_sockets": (13294, 14062),
    "gums_and_tongue": (14062, 17039),
    "teeth": (17039, 21451),
    "eyeballs": (21451, 24591),
    "eye_cosmetics": (24591, 26719),  # lacrimal fluid, eye blend, occlusion shells, eyelashes
}
# Surfaces a depth sensor sees: skin and eyeballs (sockets, teeth, lashes are interior/cosmetic).
RENDER_REGIONS = ("face", "head_and_neck", "eyeballs")
# Region used by shape metrics: the face without ears and neck.
EVAL_REGION = "narrow_face"

# The 9 landmarks (indices into the 68 Multi-PIE points) used for rigid alignment, as in
# the paper: the four eye corners, nose bridge, nose tip, the two mouth corners and the chin.
ALIGNMENT_LANDMARKS_9 = (36, 39, 42, 45, 27, 30, 48, 54, 8)
# The 7 landmarks used by the NoW benchmark: eye corners, nose tip, mouth corners.
ALIGNMENT_LANDMARKS_7 = (36, 39, 42, 45, 30, 48, 54)


# one face's vertices are computed in blocks of this many (FaceModel.vertices)
_BLOCK_VERTICES = 4096
# a ``leading`` prefix's last full block is cut after a multiple of this many columns instead of computed to the
# block's end; the columns kept are the whole block's values bit for bit where the BLAS's sgemv sums a column the
# same way whatever the columns after it, beyond its kernels' column groups (OpenBLAS's Haswell kernels: measured,
# 409 prefix lengths, every value the same at 16 or 64; at 4 or 8, most differ): tests/test_speed_identity.py::test_leading_vertices_are_the_whole_meshs
_LEADING_COLUMNS = 64


def _read_flat_bases(cache: Path) -> tuple[np.ndarray, int, tuple[int, ...]] | None:
    """The identity and expression bases read from the safetensors file straight into one (K, V*3) float32 array,
    ``FaceModel._flat_bases``, the bases its views: (the array, the identity rows, a basis row's shape). Reading
    the bytes into place instead of the reader's copy of the whole file and a concatenation: the model and its
    bases in 14 ms instead of 39-133 (a cold frame's; docs/speed.md "Cold start, round 5"). None (the reader's
    arrays then) for another layout."""
    with open(cache, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")  # safetensors: header length, JSON header, then the data
        header = json.loads(fh.read(n))
        ident, expr = header.get("identity_basis", {}), header.get("expression_basis", {})
        if ident.get("dtype") != "F32" or expr.get("dtype") != "F32" or len(ident.get("shape", ())) < 2:
            return None
        tail = tuple(ident["shape"][1:])
        if tuple(expr.get("shape", ())[1:]) != tail:
            return None
        n_id, n_ex = ident["shape"][0], expr["shape"][0]
        flat = np.empty((n_id + n_ex, int(np.prod(tail))), np.float32)
        for info, rows in ((ident, flat[:n_id]), (expr, flat[n_id:])):
            start, stop = info["data_offsets"]
            if stop - start != rows.nbytes:
                return None
            fh.seek(8 + n + start)
            if fh.readinto(memoryview(rows).cast("B")) != rows.nbytes:
                return None
    return flat, n_id, tail


@dataclass
class FaceModel:
    """ICT-FaceKit Light in millimetres, canonical head frame (see module docstring)."""

    neutral: np.ndarray  # (V, 3) float32
    identity_basis: np.ndarray  # (100, V, 3) float32, one standard deviation per mode
    expression_basis: np.ndarray  # (55, V, 3) float32, weight 1 = full blendshape
    expression_names: list[str]
    triangles: np.ndarray  # (T, 3) int32, quads split in two
    triangle_uv: np.ndarray  # (T, 3) int32 indices into uv
    triangle_material: np.ndarray  # (T,) int32 index into materials
    polygons: np.ndarray  # (F, 4) int32 original faces, -1 pads triangles
    polygon_uv: np.ndarray  # (F, 4) int32
    uv: np.ndarray  # (U, 2) float32
    materials: list[str]
    landmarks_68: np.ndarray  # (68,) vertex indices, Multi-PIE order
    fitting_vertices: np.ndarray  # ICT's own fitting subset of the face
    meta: dict = field(default_factory=dict)
    polygon_material: np.ndarray | None = None  # (F,) int32 index into materials

    # -- loading --------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path | None = None) -> "FaceModel":
        """Load the model (see :mod:`facerecon.facemodel.ict` for where it is looked for)."""
        from safetensors import safe_open

        cache = resolve_cache(path)
        bases = ("identity_basis", "expression_basis")
        with safe_open(str(cache), framework="numpy") as f:
            meta = dict(f.metadata() or {})
            flat = _read_flat_bases(cache)
            t = {k: f.get_tensor(k) for k in f.keys() if flat is None or k not in bases}
        if flat is not None:
            flat, n_id, tail = flat
            t["identity_basis"] = flat[:n_id].reshape((n_id, *tail))
            t["expression_basis"] = flat[n_id:].reshape((flat.shape[0] - n_id, *tail))
        model = cls(
            neutral=t["neutral"],
            identity_basis=t["identity_basis"],
            expression_basis=t["expression_basis"],
            expression_names=json.loads(meta["expression_names"]),
            triangles=t["triangles"],
            triangle_uv=t["triangle_uv"],
            triangle_material=t["triangle_material"],
            polygons=t["polygons"],
            polygon_uv=t["polygon_uv"],
            uv=t["uv"],
            materials=json.loads(meta["materials"]),
            landmarks_68=np.asarray(json.loads(meta["landmarks_68"]), dtype=np.int64),
            fitting_vertices=t["fitting_vertices"],
            meta={**meta, "cache_path": str(cache)},
            polygon_material=t.get("polygon_material"),
        )
        if flat is not None:
            model.__dict__["_flat_bases"] = flat  # the bases are views of it: nothing to concatenate at first use
        return model

    # -- sizes ----------------------------------------------------------------------
    @property
    def n_vertices(self) -> int:
        return int(self.neutral.shape[0])

    @property
    def n_identity(self) -> int:
        return int(self.identity_basis.shape[0])

    @property
    def n_expression(self) -> int:
        return int(self.expression_basis.shape[0])

    @property
    def n_arkit_expression(self) -> int:
        """The 53 ARKit-style blendshapes (the last two shapes are pupil dilation)."""
        return self.n_expression - 2

    # -- regions and landmarks --------------------------------------------------------
    def region_vertices(self, *names: str) -> np.ndarray:
        """Sorted vertex indices of the named regions (see ``REGIONS``)."""
        idx = [np.arange(*REGIONS[n]) for n in names]
        return np.unique(np.concatenate(idx))

    def region_mask(self, *names: str) -> np.ndarray:
        mask = np.zeros(self.n_vertices, dtype=bool)
        mask[self.region_vertices(*names)] = True
        return mask

    def region_triangles(self, *names: str) -> np.ndarray:
        """Triangles whose three corners all lie in the named regions."""
        return self.triangles[self.region_mask(*names)[self.triangles].all(axis=1)]

    @cached_property
    def alignment_landmarks(self) -> np.ndarray:
        """Vertex indices of the 9 rigid-alignment landmarks (``ALIGNMENT_LANDMARKS_9``)."""
        return self.landmarks_68[list(ALIGNMENT_LANDMARKS_9)]

    def expression_index(self, name: str) -> int:
        try:
            return self.expression_names.index(name)
        except ValueError:
            raise KeyError(f"unknown expression {name!r}") from None

    # -- geometry ---------------------------------------------------------------------
    @cached_property
    def _flat_bases(self) -> np.ndarray:
        k = self.n_identity + self.n_expression
        return np.concatenate([self.identity_basis, self.expression_basis]).reshape(k, -1)

    def vertices(
        self,
        identity: np.ndarray | None = None,
        expression: np.ndarray | None = None,
        subset: np.ndarray | None = None,
        leading: int | None = None,
    ) -> np.ndarray:
        """Vertices (mm, head frame) for identity (..., 100) and expression (..., 55) weights.

        Either weight array may be None (zeros) or shorter than the full basis (the
        leading modes).  Leading batch dimensions broadcast; ``subset`` restricts the
        computation to some vertex indices (much faster for rendering a region);
        ``leading`` (one face, no ``subset``) to the first ``leading`` vertices, whose values are
        those of the whole mesh bit for bit (the face regions come first in ICT's order).
        Returns float32 (..., V, 3), (..., len(subset), 3) or (leading, 3).
        """
        ident = np.zeros(self.n_identity, np.float32) if identity is None else np.asarray(identity, np.float32)
        expr = np.zeros(self.n_expression, np.float32) if expression is None else np.asarray(expression, np.float32)
        ident = _pad(ident, self.n_identity)
        expr = _pad(expr, self.n_expression)
        batch = np.broadcast_shapes(ident.shape[:-1], expr.shape[:-1])
        w = np.concatenate(
            [np.broadcast_to(ident, batch + ident.shape[-1:]), np.broadcast_to(expr, batch + expr.shape[-1:])], axis=-1
        )
        if subset is None and batch == ():
            # one face: the product in blocks of _BLOCK_VERTICES vertices, so that the first ``leading`` vertices are
            # the same sums as in the whole mesh whatever the BLAS does inside one call (threads split a call's
            # rows; OpenBLAS's single-threaded sgemv blocks them by 4096 itself: there, values as one call's)
            n = self.n_vertices if leading is None else min(int(leading), self.n_vertices)
            step = 3 * _BLOCK_VERTICES
            bases = self._flat_bases
            full, end = 3 * self.n_vertices, -(-3 * n // _LEADING_COLUMNS) * _LEADING_COLUMNS
            # a block that ends past the mesh's end is the whole mesh's last block as it is (not cut: its own count
            # of columns); a prefix's last full block stops at ``end`` (~18 % of the check's product at its 6,706)
            flat = np.concatenate([w @ bases[:, i : i + step if i + step > full else min(i + step, end)]
                                   for i in range(0, 3 * n, step)])[: 3 * n]
            return (flat.reshape(n, 3) + self.neutral[:n]).astype(np.float32)
        if leading is not None:
            raise ValueError("vertices: leading is for one face's whole-mesh prefix (no subset, no batch)")
        if subset is None:
            flat = w @ self._flat_bases
            return (flat.reshape(batch + (self.n_vertices, 3)) + self.neutral).astype(np.float32)
        neutral, bases = self._subset_bases(np.asarray(subset))
        out = (w @ bases).reshape(batch + (len(neutral), 3)) + neutral
        return out.astype(np.float32)

    def _subset_bases(self, subset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(neutral, flat bases) restricted to ``subset``, cached: slicing the bases costs more than using them."""
        cache = self.__dict__.setdefault("_subset_cache", {})
        key = hash(subset.tobytes())
        if key not in cache:
            k = self.n_identity + self.n_expression
            # np.take: the same copy as [:, subset], ~5x faster on (K, V, 3) (~20 ms less for the face region)
            bases = np.take(self._flat_bases.reshape(k, self.n_vertices, 3), subset, axis=1).reshape(k, -1)
            cache[key] = (self.neutral[subset], bases)
        return cache[key]

    def torch_bases(self, subset: np.ndarray | None = None, device: str = "cpu"):
        """(neutral (V,3), bases (K, V*3)) as torch tensors for differentiable use."""
        import torch

        neutral, bases = (self.neutral, self._flat_bases) if subset is None else self._subset_bases(np.asarray(subset))
        return torch.from_numpy(np.ascontiguousarray(neutral)).to(device), torch.from_numpy(bases).to(device)

    def mode_bases(self, modes: np.ndarray, subset: np.ndarray) -> np.ndarray:
        """(len(modes), 3 len(subset)) float32: the bases of ``modes`` (indices into identity then expression, as the
        weights :meth:`vertices` takes) at the vertices ``subset``, flattened per mode (x, y, z per vertex)."""
        k = self.n_identity + self.n_expression
        bases = self._flat_bases.reshape(k, self.n_vertices, 3)
        modes, subset = np.asarray(modes, np.int64).reshape(-1), np.asarray(subset)
        out = np.empty((len(modes), len(subset), 3), bases.dtype)
        # run by run of consecutive modes, each a view of the bases gathered straight into ``out`` (the same values;
        # taking the modes first copied their whole rows, ~30 MB, at a process's first frame: ~40 ms)
        breaks = np.flatnonzero(np.diff(modes) != 1) + 1
        for a, b in zip(np.r_[0, breaks].tolist(), np.r_[breaks, len(modes)].tolist()):
            rows = bases[modes[a] : modes[b - 1] + 1] if 0 <= modes[a] and modes[b - 1] < k else bases[modes[a:b]]
            np.take(rows, subset, axis=1, out=out[a:b])
        return out.reshape(len(modes), -1)

    def vertices_moved(self, prefix: np.ndarray, identity: np.ndarray, expression: np.ndarray,
                       start_identity: np.ndarray, start_expression: np.ndarray) -> np.ndarray:
        """The whole mesh of one face's weights ``identity`` / ``expression`` (full length), float64 (V, 3), where
        ``prefix`` holds the first rows of the mesh of ``start_identity`` / ``start_expression`` (e.g. a face the
        check already made): those rows are ``prefix`` moved by the weights' change over only the modes that changed
        (a fit of the leading 40 identity modes reads a quarter of the bases there); the rest are the product over all
        modes from row ``len(prefix)`` on; both :meth:`vertices`'s values to float32 rounding."""
        n = len(prefix)
        w = np.r_[np.asarray(identity, np.float32), np.asarray(expression, np.float32)]
        dw = w - np.r_[np.asarray(start_identity, np.float32), np.asarray(start_expression, np.float32)]
        if w.shape != (self.n_identity + self.n_expression,) or dw.shape != w.shape:
            raise ValueError("vertices_moved: full-length weights of one face")
        ni = self.n_identity
        changed_id, changed_ex = np.flatnonzero(dw[:ni]), np.flatnonzero(dw[ni:])
        hi_id = changed_id[-1] + 1 if len(changed_id) else 0  # rows up to the last changed mode: views, not copies
        hi_ex = changed_ex[-1] + 1 if len(changed_ex) else 0
        out = np.empty((self.n_vertices, 3))
        bases = self._flat_bases
        step = 3 * _BLOCK_VERTICES
        if n < self.n_vertices:  # the rows past the prefix, from row n (the blocked product from its block's start
            # gave the whole mesh's bits, for ~12 % more of the 155-mode product: memory-bound, ~0.35 ms a frame)
            flat = np.concatenate([w @ bases[:, i : i + step] for i in range(3 * n, 3 * self.n_vertices, step)])
            out[n:] = (flat.reshape(-1, 3) + self.neutral[n:]).astype(np.float32)
        move = np.zeros(3 * n, np.float32)
        if hi_id:
            move += dw[:hi_id] @ bases[:hi_id, : 3 * n]
        if hi_ex:
            move += dw[ni : ni + hi_ex] @ bases[ni : ni + hi_ex, : 3 * n]
        out[:n] = np.asarray(prefix, np.float64) + move.reshape(n, 3)
        return out

    def vertices_torch(self, identity, expression=None, subset: np.ndarray | None = None):
        """Differentiable torch version of :meth:`vertices` for (B, <=100) and (B, <=55) weights."""
        import torch

        key = None if subset is None else hash(np.asarray(subset).tobytes())
        cache = self.__dict__.setdefault("_torch_cache", {})
        if key not in cache:
            cache[key] = self.torch_bases(subset)
        neutral, bases = cache[key]
        b = identity.shape[0]
        ident = torch.nn.functional.pad(identity, (0, self.n_identity - identity.shape[-1]))
        if expression is None:
            expression = identity.new_zeros(b, self.n_expression)
        expr = torch.nn.functional.pad(expression, (0, self.n_expression - expression.shape[-1]))
        w = torch.cat([ident, expr], dim=-1).to(bases.dtype)
        return (w @ bases).reshape(b, -1, 3) + neutral

    def polygon_lists(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The original quads/triangles (and their UV indices) as lists, for OBJ export.

        Built once and shared (~0.1 s each time otherwise, for every frame written; the same
        objects also let the mesh writers reuse what they derive from them): do not modify."""
        cached = self.__dict__.get("_polygon_lists")
        if cached is None:
            keep = self.polygons >= 0
            cached = ([row[k] for row, k in zip(self.polygons, keep)], [row[k] for row, k in zip(self.polygon_uv, keep)])
            self.__dict__["_polygon_lists"] = cached
        return cached

    def landmarks(self, vertices: np.ndarray) -> np.ndarray:
        """The 68 landmark positions (..., 68, 3) of full-model vertices (..., V, 3)."""
        return np.asarray(vertices)[..., self.landmarks_68, :]

    @cached_property
    def reference_vertices(self) -> np.ndarray:
        """The reference (mean) face: identity and expression weights all zero."""
        return self.neutral.copy()


def vertex_normals(v: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """(V, 3) unit vertex normals of the mesh ``(v, tris)``: the sum of the area-weighted normals
    of the triangles around each vertex (outward for ICT's winding); 0-length for unused vertices."""
    if np.asarray(v).dtype == np.float64:
        # float64 (every per-frame caller): one numba pass with numpy's arithmetic in numpy's order
        # (the cross product's terms, the corners' sums k = 0, 1, 2 in turn as ``np.bincount`` /
        # ``np.add.at`` add them, the norm's squares left to right): bit-identical, ~5x faster
        return _vertex_normals64(np.ascontiguousarray(v), np.ascontiguousarray(tris, np.int64))
    fn = np.cross(v[tris[:, 1]] - v[tris[:, 0]], v[tris[:, 2]] - v[tris[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, tris[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


@njit(cache=True, nogil=True)
def triangle_normals(v: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """(T, 3) area-weighted normals of the triangles ``tris`` of float64 vertices ``v``: NumPy's
    ``np.cross(v[t1] - v[t0], v[t2] - v[t0])``, term for term (the vertex normals here and the GLB writer's)."""
    nt = len(tris)
    fn = np.empty((nt, 3))
    for t in range(nt):
        i0, i1, i2 = tris[t, 0], tris[t, 1], tris[t, 2]
        a0, a1, a2 = v[i1, 0] - v[i0, 0], v[i1, 1] - v[i0, 1], v[i1, 2] - v[i0, 2]
        b0, b1, b2 = v[i2, 0] - v[i0, 0], v[i2, 1] - v[i0, 1], v[i2, 2] - v[i0, 2]
        fn[t, 0] = a1 * b2 - a2 * b1
        fn[t, 1] = a2 * b0 - a0 * b2
        fn[t, 2] = a0 * b1 - a1 * b0
    return fn


@njit(cache=True, nogil=True)
def csr_unit_normals(fn, indptr, indices, data, degenerate_minus_z):
    """Unit vertex normals ``op @ fn`` for a (rows, T) CSR matrix ``op`` (``indptr, indices, data``: which
    triangles' area normals ``fn`` (:func:`triangle_normals`) each row sums): scipy's ``csr_matvecs`` (per row, its
    entries in stored order, ``y += a * x``), then divided by the norm (squares summed left to right), in one pass: the
    same float64 operations in the same order as the sparse product and NumPy's norm, so the same normals bit for bit.
    A norm below 1e-12: ``(0, 0, -1)`` with ``degenerate_minus_z`` (the GLB's unused vertices), else ``n / 1e-12``
    (``n / np.maximum(norm, 1e-12)``: the check's)."""
    nv = indptr.shape[0] - 1
    out = np.empty((nv, 3))
    for i in range(nv):
        x = y = z = 0.0
        for jj in range(indptr[i], indptr[i + 1]):
            j, a = indices[jj], data[jj]
            x += a * fn[j, 0]
            y += a * fn[j, 1]
            z += a * fn[j, 2]
        s = np.sqrt(x * x + y * y + z * z)
        if s < 1e-12 and degenerate_minus_z:
            out[i, 0], out[i, 1], out[i, 2] = 0.0, 0.0, -1.0
        else:
            s = max(s, 1e-12)
            out[i, 0], out[i, 1], out[i, 2] = x / s, y / s, z / s
    return out


@dataclass(eq=False)  # not frozen: the correction scales its system's data in place
class Csr:
    """A sparse matrix in compressed-sparse-row form: scipy's ``csr_matrix`` arrays (``indptr``, ``indices``, ``data``)
    and ``shape``, with the one product a frame needs (``@`` a vector or the columns of a 2-D array).  The frame path
    holds these instead of scipy matrices: ``import scipy.sparse`` is ~10 ms of a cold start beyond what numba's own
    start-up imports of scipy (docs/speed.md round 8); the matrices are built once (with scipy where that is simpler)
    and kept on disk."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    shape: tuple[int, int]

    def __matmul__(self, x: np.ndarray) -> np.ndarray:
        """``self @ x``: scipy's ``csr_matvec`` per column (each row's products added to 0.0 in stored order), so the
        same sums bit for bit."""
        x = np.asarray(x, np.float64)
        if x.ndim == 1:
            return csr_matvec(self.indptr, self.indices, self.data, x)
        return np.stack([csr_matvec(self.indptr, self.indices, self.data, np.ascontiguousarray(c)) for c in x.T], axis=1)

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    @property
    def has_sorted_indices(self) -> bool:
        """Every row's column indices strictly increasing (scipy's canonical form: sorted, no duplicates)."""
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
        same_row = rows[1:] == rows[:-1]
        return bool(np.all(self.indices[1:][same_row] > self.indices[:-1][same_row]))

    def diagonal(self) -> np.ndarray:
        """The stored diagonal entries (0 where none; duplicates summed), as scipy's ``diagonal()``."""
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
        on = self.indices == rows
        return np.bincount(rows[on], self.data[on], minlength=min(self.shape))


def incidence_csr(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> Csr:
    """The matrix with ones at (``rows``, ``cols``): the same arrays as scipy's
    ``csr_matrix((np.ones(len(rows)), (rows, cols)), shape=shape)`` (int32 indices, columns sorted within a row, a
    repeated pair summed)."""
    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    nc = np.int64(max(int(shape[1]), 1))
    key = np.sort(rows * nc + cols)  # one int64 sort (a lexsort of the pairs is ~3x slower)
    first = np.ones(len(key), bool)
    first[1:] = key[1:] != key[:-1]
    data = np.ones(len(key))
    if not first.all():  # a pair given more than once: its count, as scipy sums the duplicates
        data = np.diff(np.r_[np.flatnonzero(first), len(key)]).astype(np.float64)
        key = key[first]
    r = key // nc
    indptr = np.zeros(shape[0] + 1, np.int32)
    np.cumsum(np.bincount(r, minlength=shape[0]), out=indptr[1:])
    return Csr(indptr, (key - r * nc).astype(np.int32), data, (int(shape[0]), int(shape[1])))


@njit(cache=True, nogil=True)
def csr_matvec(indptr, indices, data, x):
    """``A @ x`` of the CSR arrays of ``A`` (each row's products added to 0.0 in stored order, as scipy's): the
    kernel behind :meth:`Csr.__matmul__`, callable from other compiled loops (the correction's conjugate gradients)."""
    # unsigned positions: numba then drops the negative-index wraparound of each load (with signed ones this loop was
    # ~50 % slower than scipy's; now ~30 % faster: docs/speed.md round 8); the sums are the same
    n = indptr.shape[0] - 1
    y = np.empty(n)
    lo = np.uint64(indptr[0])
    for i in range(n):
        s = 0.0
        hi = np.uint64(indptr[i + 1])
        for jj in range(lo, hi):
            s += data[jj] * x[np.uint64(indices[jj])]
        y[i] = s
        lo = hi
    return y


@njit(cache=True, nogil=True)
def _vertex_normals64(v: np.ndarray, tris: np.ndarray) -> np.ndarray:
    nt = len(tris)
    fn = triangle_normals(v, tris)
    n = np.zeros((len(v), 3))
    for k in range(3):
        for t in range(nt):
            i = tris[t, k]
            n[i, 0] += fn[t, 0]
            n[i, 1] += fn[t, 1]
            n[i, 2] += fn[t, 2]
    for i in range(len(v)):
        s = np.sqrt(n[i, 0] * n[i, 0] + n[i, 1] * n[i, 1] + n[i, 2] * n[i, 2])
        s = max(s, 1e-12)
        n[i, 0] /= s
        n[i, 1] /= s
        n[i, 2] /= s
    return n


def _pad(w: np.ndarray, n: int) -> np.ndarray:
    if w.shape[-1] > n:
        raise ValueError(f"got {w.shape[-1]} weights, the model has {n} modes")
    if w.shape[-1] == n:
        return w
    pad = [(0, 0)] * (w.ndim - 1) + [(0, n - w.shape[-1])]
    return np.pad(w, pad)


def content_fingerprint(model) -> str:
    """CRC-32s of the model's arrays and its names, as text: the key of what is built from a model and kept on
    disk (GLB templates, the UV raster); cached on the model (~5 ms once; a model changed in place after the
    first call keeps its first fingerprint, as its other caches keep their values)."""
    import zlib

    cache = model.__dict__.setdefault("_content_fingerprint", {})
    if "text" not in cache:
        parts = []
        for name in ("neutral", "expression_basis", "triangles", "triangle_uv", "triangle_material", "uv"):
            a = np.ascontiguousarray(getattr(model, name))
            parts.append(f"{name}:{a.dtype.str}:{a.shape}:{zlib.crc32(memoryview(a).cast('B')):08x}")
        parts.append(json.dumps([list(model.expression_names), list(model.materials)]))
        cache["text"] = "|".join(parts)
    return cache["text"]
