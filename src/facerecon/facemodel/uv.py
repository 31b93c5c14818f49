"""ICT's face UV layout as texels: the one UV rasteriser (the photo texture and the detail maps use it).

The face skin (the ``M_Face`` material) owns the UV tile [0, 1]^2.  :func:`uv_raster` rasterises
its triangles in UV space once per texture size (cached on the model): every covered texel gets
its triangle and barycentric coordinates, and the texel of its mirror point (x -> -x).  Rows
follow the OBJ convention: texel row ``r`` holds ``v = 1 - (r + 0.5) / size`` (image top = v 1),
column ``c`` holds ``u = (c + 0.5) / size``; glTF's texture coordinate is then ``(u, 1 - v)``,
the same image.

:func:`uv_tangents` gives the tangent frame of that layout on any mesh of the model's topology
(per UV corner, glTF's ``TANGENT`` convention), so a tangent-space normal map baked here and
the one a glTF viewer reads use the same frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from ..geometry.camera import Intrinsics
from ..geometry.raster import render_mesh

FACE_MATERIAL = "M_Face"


@dataclass
class UVRaster:
    """The covered texels of the face UV tile at one size."""

    size: int
    rows: np.ndarray  # (N,) texel row
    cols: np.ndarray  # (N,) texel column
    triangle: np.ndarray  # (N,) index into model.triangles
    bary: np.ndarray  # (N, 3) float32
    mirror: np.ndarray  # (N,) index of the mirror texel in this list, -1 = none

    @property
    def covered(self) -> np.ndarray:
        m = np.zeros((self.size, self.size), bool)
        m[self.rows, self.cols] = True
        return m


def _cache(model) -> dict:
    return model.__dict__.setdefault("_uv_cache", {})


def face_triangles(model) -> np.ndarray:
    """Indices (into ``model.triangles``) of the triangles of the textured material."""
    return np.nonzero(model.triangle_material == model.materials.index(FACE_MATERIAL))[0]


def vertex_mirror(model) -> np.ndarray:
    """(V,) index of each vertex's mirror image (x -> -x) on the mean face, nearest vertex."""
    cache = _cache(model)
    if "mirror" not in cache:
        from scipy.spatial import cKDTree

        v = model.neutral.astype(np.float64)
        cache["mirror"] = cKDTree(v).query(v * np.array([-1.0, 1.0, 1.0]))[1].astype(np.int64)
    return cache["mirror"]


_RASTER_CACHE_VERSION = 1


def _raster_file(model, size: int):
    """(the disk cache file of the UV raster of ``model`` at ``size``, its key as text), or (None, "")."""
    import hashlib
    import json
    from pathlib import Path

    from .ict import facerecon_home
    from .model import content_fingerprint

    try:
        code = hashlib.sha256(Path(__file__).read_bytes() + Path(__file__).parents[1].joinpath("geometry", "raster.py").read_bytes())
        key = json.dumps({"version": _RASTER_CACHE_VERSION, "size": int(size), "model": content_fingerprint(model),
                          "code": code.hexdigest()[:20], "numpy": np.__version__}, sort_keys=True)
    except (OSError, AttributeError, TypeError, ValueError):
        return None, ""
    return facerecon_home() / "uv" / f"uvraster-{int(size)}-{hashlib.sha256(key.encode()).hexdigest()[:24]}.bin", key


def uv_raster(model, size: int) -> UVRaster:
    """Covered texels of the face UV tile with triangle and barycentrics, and their mirror texels (cached on
    the model, and on disk in ``$FACERECON_HOME/uv`` by the model's arrays, the size and this code: ~0.1 s of
    the first frame of every process otherwise; :func:`facerecon.fileutil.read_cache_file` checks a file)."""
    cache = _cache(model)
    if ("raster", size) in cache:
        return cache[("raster", size)]
    from ..fileutil import read_cache_file, write_cache_file

    path, key = _raster_file(model, size)
    got = read_cache_file(path, key) if path is not None else None
    if got is not None and len(got[1]) == 5:
        rows, cols, tri, bary, mirror = got[1]
        n = len(rows)
        if (all(a.shape == (n,) for a in (cols, tri, mirror)) and bary.shape == (n, 3) and (not n or (
                rows.min() >= 0 and rows.max() < size and cols.min() >= 0 and cols.max() < size and tri.min() >= 0
                and tri.max() < len(model.triangles) and mirror.min() >= -1 and mirror.max() < n))):
            out = UVRaster(size, rows, cols, tri, bary, mirror)
            cache[("raster", size)] = out
            return out
    out = _uv_raster(model, size)
    if path is not None:
        write_cache_file(path, key, {}, [out.rows, out.cols, out.triangle, out.bary, out.mirror])
    cache[("raster", size)] = out
    return out


def _uv_raster(model, size: int) -> UVRaster:
    tris = face_triangles(model)
    tuv = model.triangle_uv[tris]
    # UV corners as points on the plane z = 1 seen by a unit pinhole: screen = texel coordinates
    pts = np.c_[model.uv[:, 0] * size - 0.5, (1.0 - model.uv[:, 1]) * size - 0.5, np.ones(len(model.uv))]
    r = render_mesh(pts, tuv, Intrinsics(1.0, 1.0, 0.0, 0.0, size, size))
    rows, cols = np.nonzero(r.triangle_id >= 0)
    tid = r.triangle_id[rows, cols]
    bary = r.barycentrics[rows, cols].astype(np.float32)
    # mirror texel: the same barycentric point of the mirrored corners, through their UVs
    corner_v = model.triangles[tris[tid]]  # (N, 3)
    mirror_v = vertex_mirror(model)[corner_v]
    vuv = vertex_uv(model)
    muv = np.einsum("nk,nkc->nc", bary, vuv[mirror_v])
    muv = np.where(np.isfinite(muv), muv, -1.0)  # a corner without a face UV: no mirror
    mc = np.rint(muv[:, 0] * size - 0.5).astype(np.int64)
    mr = np.rint((1.0 - muv[:, 1]) * size - 0.5).astype(np.int64)
    lookup = np.full((size, size), -1, np.int64)
    lookup[rows, cols] = np.arange(len(rows))
    ok = (muv >= 0).all(1) & (mc >= 0) & (mc < size) & (mr >= 0) & (mr < size)
    mirror = np.full(len(rows), -1, np.int64)
    mirror[ok] = lookup[mr[ok], mc[ok]]
    return UVRaster(size, rows, cols, tris[tid], bary, mirror)


def vertex_uv(model) -> np.ndarray:
    """(V, 2) one UV per vertex of the face material (NaN elsewhere; at a seam, any one of its UVs)."""
    tris = face_triangles(model)
    out = np.full((model.n_vertices, 2), np.nan)
    out[model.triangles[tris].ravel()] = model.uv[model.triangle_uv[tris].ravel()]
    return out


def uv_tangents(model, vertices: np.ndarray, normals: np.ndarray, derivatives=None) -> np.ndarray:
    """(U, 4) float64 unit tangents per UV index of the face material (glTF ``TANGENT``: xyz, w = +-1).

    Per triangle, ``T = dP/du`` and ``B = dP/dv`` of the layout (OBJ v, up in the image); summed
    (area weighted) at each UV corner, ``T`` made orthogonal to that corner's vertex normal
    (``normals``: (V, 3) unit, e.g. :func:`facerecon.facemodel.vertex_normals`), and
    ``w = sign((N x T) . B)``, so the bitangent ``w N x T`` points up the image (+v): the glTF
    convention "+X right, +Y up" of a tangent-space normal texture.  UV indices outside the face
    material get (1, 0, 0, 1).  ICT gives every face UV index one vertex (a seam splits the vertex).
    ``derivatives``: :func:`uv_derivatives` of the same ``vertices`` where the caller has them.
    """
    uv_vertex = _tangent_layout(model)[2]
    acc = (derivatives or uv_derivatives(model, vertices))[2]  # (U, 6): the sums of T and B at each UV corner
    out = np.empty((len(model.uv), 4))
    n = np.ascontiguousarray(normals, np.float64)
    bad = np.zeros(len(model.uv), bool)
    _orthogonalise(acc, uv_vertex, n, out, bad)
    if bad.any():  # a corner with no UV area: any unit vector perpendicular to its normal, w = +1
        nb = n[uv_vertex[bad]]
        tt = _any_perpendicular(nb)
        out[bad] = np.c_[tt, np.where(np.einsum("nc,nc->n", np.cross(nb, tt), acc[bad, 3:]) < 0, -1.0, 1.0)]
    return out


@njit(cache=True, nogil=True)
def _orthogonalise(acc, uv_vertex, normals, out, bad):
    """Per UV index: T minus its part along the vertex normal, unit, and w = sign((N x T) . B); (1, 0, 0, 1)
    outside the face material; ``bad`` where T has no length left.  The float64 operations of the NumPy
    expressions it replaced, in their order (``np.linalg.norm`` summed left to right, ``np.cross``'s formula)."""
    for u in range(acc.shape[0]):
        vi = uv_vertex[u]
        if vi < 0:
            out[u, 0], out[u, 1], out[u, 2], out[u, 3] = 1.0, 0.0, 0.0, 1.0
            continue
        n0, n1, n2 = normals[vi, 0], normals[vi, 1], normals[vi, 2]
        t0, t1, t2 = acc[u, 0], acc[u, 1], acc[u, 2]
        dot = (t0 * n0 + t2 * n2) + t1 * n1  # np.einsum's order for 3 (its two-lane sum), so the same bits
        t0, t1, t2 = t0 - dot * n0, t1 - dot * n1, t2 - dot * n2
        norm = np.sqrt(t0 * t0 + t1 * t1 + t2 * t2)
        if norm <= 1e-12:
            bad[u] = True
            continue
        t0, t1, t2 = t0 / norm, t1 / norm, t2 / norm
        c0 = n1 * t2 - n2 * t1
        c1 = n2 * t0 - n0 * t2
        c2 = n0 * t1 - n1 * t0
        out[u, 0], out[u, 1], out[u, 2] = t0, t1, t2
        out[u, 3] = -1.0 if (c0 * acc[u, 3] + c2 * acc[u, 5]) + c1 * acc[u, 4] < 0 else 1.0


def uv_derivatives(model, vertices: np.ndarray):
    """Per face triangle the Jacobian of the layout on ``vertices`` ((V, 3)): ``dP/du``, ``dP/dv`` ((T, 3)
    each, mm per unit of UV; 0 where the triangle has no UV area), and the (U, 6) sums at each UV corner of
    the triangles' area-weighted ``T``, ``B`` that :func:`uv_tangents` orthogonalises.  One pass over the
    triangles (a numba kernel: the same float64 operations, in the same order, as NumPy's per-array ones)."""
    tv, tu, _ = _tangent_layout(model)
    d1, d2, sgn, inv = _uv_constants(model)
    v = np.ascontiguousarray(vertices, np.float64)
    pu = np.empty((len(tv), 3))
    pv = np.empty((len(tv), 3))
    acc = np.zeros((len(model.uv), 6))
    _triangle_derivatives(v, tv, tu, d1, d2, sgn, inv, pu, pv, acc)
    return pu, pv, acc


@njit(cache=True, nogil=True)
def _triangle_derivatives(v, tv, tu, d1, d2, sgn, inv, pu, pv, acc):
    for t in range(tv.shape[0]):
        a, b, c = tv[t, 0], tv[t, 1], tv[t, 2]
        for j in range(3):
            e1 = v[b, j] - v[a, j]
            e2 = v[c, j] - v[a, j]
            x = e1 * d2[t, 1] - e2 * d1[t, 1]
            y = e2 * d1[t, 0] - e1 * d2[t, 0]
            pu[t, j] = x * inv[t]
            pv[t, j] = y * inv[t]
            # area weighting: T * det (un-normalised by |det|) keeps the orientation and weighs by UV area
            tx = x * sgn[t]
            by = y * sgn[t]
            for k in range(3):
                acc[tu[t, k], j] += tx
                acc[tu[t, k], 3 + j] += by


def _uv_constants(model):
    """The face triangles' UV edges d1, d2 ((T, 2)), the sign of their UV area and 1 / det (0 where none); cached."""
    cache = _cache(model)
    if "uv_constants" not in cache:
        _, tu, _ = _tangent_layout(model)
        uv = np.asarray(model.uv, np.float64)
        d1, d2 = uv[tu[:, 1]] - uv[tu[:, 0]], uv[tu[:, 2]] - uv[tu[:, 0]]
        det = d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1]
        sgn = np.where(det < 0, -1.0, 1.0)
        inv = np.where(np.abs(det) > 1e-14, 1.0 / np.where(det == 0, 1.0, det), 0.0)
        cache["uv_constants"] = tuple(np.ascontiguousarray(a) for a in (d1, d2, sgn, inv))
    return cache["uv_constants"]


def _tangent_layout(model):
    """(face triangles' vertices, their UV indices, the vertex of each UV index (-1: none)); cached on the model."""
    cache = _cache(model)
    if "tangent_layout" not in cache:
        tris = face_triangles(model)
        tv = np.ascontiguousarray(np.asarray(model.triangles)[tris], dtype=np.int64)
        tu = np.ascontiguousarray(np.asarray(model.triangle_uv)[tris], dtype=np.int64)
        uv_vertex = np.full(len(model.uv), -1, np.int64)
        uv_vertex[tu.ravel()] = tv.ravel()
        cache["tangent_layout"] = (tv, tu, uv_vertex)
    return cache["tangent_layout"]


def _any_perpendicular(n: np.ndarray) -> np.ndarray:
    """A unit vector perpendicular to each row of ``n`` (for corners with no UV area)."""
    a = np.where(np.abs(n[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    p = np.cross(n, a)
    return p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
