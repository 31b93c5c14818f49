"""CPU depth rendering: an exact z-buffer rasteriser (numba) and a point splatter.

Conventions: camera frame x right, y down, z forward, millimetres; pixel ``(u, v)`` has
its centre at integer coordinates (see :mod:`facerecon.geometry.camera`).  A pixel is covered by
a triangle when its centre lies inside the triangle's projection (edges inclusive, so
meshes have no cracks); its depth is the exact ray/plane intersection (1/z is affine in
screen space for a planar triangle).  Triangles crossing the plane z = ``near`` (mm) are
clipped to it, so scenes may extend behind the camera.

``render_mesh`` works for any mesh (the ICT head, a real scan such as ``james.obj``);
``splat_points`` turns a point cloud into a depth image (z-buffered discs).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from .camera import Intrinsics

_EDGE_EPS = 1e-9  # inclusive edges: a pixel centre on a shared edge is covered by both sides


@njit(cache=True, nogil=True)  # nogil: a batch rasterises on its writer thread (detail maps) beside the frame pipeline
def _project(vertices, fx, fy, cx, cy):
    n = vertices.shape[0]
    uvz = np.empty((n, 3), np.float64)
    for i in range(n):
        z = np.float64(vertices[i, 2])
        if z > 0.0:
            uvz[i, 0] = fx * vertices[i, 0] / z + cx
            uvz[i, 1] = fy * vertices[i, 1] / z + cy
        else:
            uvz[i, 0] = np.nan
            uvz[i, 1] = np.nan
        uvz[i, 2] = z
    return uvz


@njit(cache=True, nogil=True, inline="always")  # inlined into _raster: a call per triangle cost ~10 % of a face's render
def _fill(u0, v0, iz0, u1, v1, iz1, u2, v2, iz2, t, cull, izbuf, tid):
    """Z-buffer one projected triangle (corners (u, v) with inverse depth 1/z) with id ``t``."""
    h, w = izbuf.shape
    eps = _EDGE_EPS
    # the pixel span first: most of a dense mesh's triangles cover no pixel centre (the check's face: 13,120
    # triangles, ~5,800 pixels), and a triangle that covers none is skipped whatever its area
    xmin = max(int(np.ceil(min(u0, u1, u2))), 0)
    xmax = min(int(np.floor(max(u0, u1, u2))), w - 1)
    if xmin > xmax:
        return
    ymin = max(int(np.ceil(min(v0, v1, v2))), 0)
    ymax = min(int(np.floor(max(v0, v1, v2))), h - 1)
    if ymin > ymax:
        return
    area = (u1 - u0) * (v2 - v0) - (u2 - u0) * (v1 - v0)
    if area == 0.0 or (cull == 1 and area > 0.0):
        return
    inv = 1.0 / area
    s0 = (v1 - v2) * inv  # d b0 / dx
    s1 = (v2 - v0) * inv
    s2 = -s0 - s1
    r0 = (u2 - u1) * inv  # d b0 / dy
    r1 = (u0 - u2) * inv
    r2 = -r0 - r1
    sz = s0 * iz0 + s1 * iz1 + s2 * iz2  # d (1/z) / dx
    rz = r0 * iz0 + r1 * iz1 + r2 * iz2
    fx0, fy0 = np.float64(xmin), np.float64(ymin)
    c0 = ((u1 - fx0) * (v2 - fy0) - (u2 - fx0) * (v1 - fy0)) * inv  # b0 at (xmin, ymin)
    c1 = ((u2 - fx0) * (v0 - fy0) - (u0 - fx0) * (v2 - fy0)) * inv
    c2 = 1.0 - c0 - c1
    cz = c0 * iz0 + c1 * iz1 + c2 * iz2
    wide = xmax - xmin > 4
    for y in range(ymin, ymax + 1):
        dy = np.float64(y - ymin)
        k0, k1, k2, kz = c0 + r0 * dy, c1 + r1 * dy, c2 + r2 * dy, cz + rz * dy
        xa, xb = xmin, xmax
        ia, ib = 1, 0  # interior (all barycentrics safely > -eps): no per-pixel tests there
        if wide:  # the span where all three barycentrics are >= -eps (then +-1 px margin)
            lo, hi = 0.0, np.float64(xmax - xmin)
            for s_, k_ in ((s0, k0), (s1, k1), (s2, k2)):
                if s_ > 0.0:
                    lo = max(lo, (-eps - k_) / s_)
                elif s_ < 0.0:
                    hi = min(hi, (-eps - k_) / s_)
                elif k_ < -eps:
                    hi = -1.0
            if hi < lo - 2.0:
                continue
            xa = xmin + max(int(np.floor(lo)) - 1, 0)
            xb = min(xmin + int(np.ceil(hi)) + 1, xmax)
            ia = xmin + int(np.ceil(lo + 1e-6))
            ib = min(xmin + int(np.floor(hi - 1e-6)), xb)
        dx = np.float64(xa - xmin)
        b0, b1, b2, iz = k0 + s0 * dx, k1 + s1 * dx, k2 + s2 * dx, kz + sz * dx
        x = xa
        while x <= xb:
            if ia <= x <= ib:  # interior run: depth test only
                for xi in range(x, ib + 1):
                    if iz > izbuf[y, xi]:
                        izbuf[y, xi] = iz
                        tid[y, xi] = t
                    iz += sz
                n = ib + 1 - x
                b0 += s0 * n
                b1 += s1 * n
                b2 += s2 * n
                x = ib + 1
                continue
            if b0 >= -eps and b1 >= -eps and b2 >= -eps and iz > izbuf[y, x]:
                izbuf[y, x] = iz
                tid[y, x] = t
            b0 += s0
            b1 += s1
            b2 += s2
            iz += sz
            x += 1


@njit(cache=True, nogil=True)
def _raster(uvz, verts, tris, cull, near, izbuf, tid, tri_offset, fx, fy, cx, cy):
    """Z-buffer ``tris`` into ``izbuf`` (1/z, 0 = empty) and ``tid`` in place.

    cull: 0 none, 1 drop back faces.  Front faces are counter-clockwise as seen by the
    camera (outward normal (b-a)x(c-a) towards it); their screen-space signed area is
    negative.  Barycentrics and 1/z are affine in screen space, so they are stepped
    incrementally along each row; rows of large triangles only visit the span their edges
    allow.  Triangles crossing the plane z = near are clipped to it (1-2 sub-triangles
    with the same id); :func:`barycentrics_of` is exact only for unclipped triangles.
    """
    hmax, wmax = izbuf.shape[0] - 1, izbuf.shape[1] - 1
    # each vertex's 1/z once (a vertex is shared by ~6 triangles); only in front of the near plane (the rest is clipped)
    iz = np.zeros(uvz.shape[0])
    for i in range(uvz.shape[0]):
        if uvz[i, 2] >= near:
            iz[i] = 1.0 / uvz[i, 2]
    cz = np.empty(4)
    cu = np.empty(4)
    cv = np.empty(4)
    for t in range(tris.shape[0]):
        i0, i1, i2 = tris[t, 0], tris[t, 1], tris[t, 2]
        z0, z1, z2 = uvz[i0, 2], uvz[i1, 2], uvz[i2, 2]
        if z0 >= near and z1 >= near and z2 >= near:
            # a triangle that covers no pixel centre (most of a dense mesh's) is skipped here, before _fill: the
            # test _fill makes first, on the same projected corners
            ua, ub, uc = uvz[i0, 0], uvz[i1, 0], uvz[i2, 0]
            if max(int(np.ceil(min(ua, ub, uc))), 0) > min(int(np.floor(max(ua, ub, uc))), wmax):
                continue
            va, vb, vc = uvz[i0, 1], uvz[i1, 1], uvz[i2, 1]
            if max(int(np.ceil(min(va, vb, vc))), 0) > min(int(np.floor(max(va, vb, vc))), hmax):
                continue
            _fill(uvz[i0, 0], uvz[i0, 1], iz[i0], uvz[i1, 0], uvz[i1, 1], iz[i1], uvz[i2, 0], uvz[i2, 1], iz[i2],
                  t + tri_offset, cull, izbuf, tid)  # fmt: skip
            continue
        if z0 < near and z1 < near and z2 < near:
            continue
        # Sutherland-Hodgman against z >= near, in camera space, then project
        n = 0
        idx = (i0, i1, i2)
        for k in range(3):
            a, b = idx[k], idx[(k + 1) % 3]
            za, zb = verts[a, 2], verts[b, 2]
            if za >= near:
                cz[n] = za
                cu[n] = fx * verts[a, 0] / za + cx
                cv[n] = fy * verts[a, 1] / za + cy
                n += 1
            if (za >= near) != (zb >= near):
                s = (near - za) / (zb - za)
                x = verts[a, 0] + s * (verts[b, 0] - verts[a, 0])
                y = verts[a, 1] + s * (verts[b, 1] - verts[a, 1])
                cz[n] = near
                cu[n] = fx * x / near + cx
                cv[n] = fy * y / near + cy
                n += 1
        for k in range(1, n - 1):
            _fill(cu[0], cv[0], 1.0 / cz[0], cu[k], cv[k], 1.0 / cz[k], cu[k + 1], cv[k + 1], 1.0 / cz[k + 1], t + tri_offset, cull,
                  izbuf, tid)


@njit(cache=True, nogil=True)
def _to_depth(izbuf):
    h, w = izbuf.shape
    out = np.zeros((h, w), np.float32)
    for y in range(h):
        for x in range(w):
            if izbuf[y, x] > 0.0:
                out[y, x] = 1.0 / izbuf[y, x]
    return out


@njit(cache=True, nogil=True)
def _barycentrics(uvz, tris, tid, out):
    """Perspective-correct barycentrics of the visible triangle at every covered pixel."""
    h, w = tid.shape
    for y in range(h):
        for x in range(w):
            t = tid[y, x]
            if t < 0:
                out[y, x, 0] = 0.0
                out[y, x, 1] = 0.0
                out[y, x, 2] = 0.0
                continue
            i0, i1, i2 = tris[t, 0], tris[t, 1], tris[t, 2]
            u0, v0, u1, v1, u2, v2 = uvz[i0, 0], uvz[i0, 1], uvz[i1, 0], uvz[i1, 1], uvz[i2, 0], uvz[i2, 1]
            inv = 1.0 / ((u1 - u0) * (v2 - v0) - (u2 - u0) * (v1 - v0))
            b0 = ((u1 - x) * (v2 - y) - (u2 - x) * (v1 - y)) * inv
            b1 = ((u2 - x) * (v0 - y) - (u0 - x) * (v2 - y)) * inv
            b2 = 1.0 - b0 - b1
            p0, p1, p2 = b0 / uvz[i0, 2], b1 / uvz[i1, 2], b2 / uvz[i2, 2]
            s = p0 + p1 + p2
            out[y, x, 0] = p0 / s
            out[y, x, 1] = p1 / s
            out[y, x, 2] = p2 / s


@njit(cache=True, nogil=True)
def _splat(uvz, radius_mm, fx, zbuf):
    h, w = zbuf.shape
    for i in range(uvz.shape[0]):
        z = uvz[i, 2]
        if not z > 0.0:
            continue
        u, v = uvz[i, 0], uvz[i, 1]
        r = radius_mm * fx / z
        xmin = max(int(np.ceil(u - r)), 0)
        xmax = min(int(np.floor(u + r)), w - 1)
        ymin = max(int(np.ceil(v - r)), 0)
        ymax = min(int(np.floor(v + r)), h - 1)
        r2 = max(r * r, 0.25)
        for y in range(ymin, ymax + 1):
            for x in range(xmin, xmax + 1):
                if (x - u) ** 2 + (y - v) ** 2 <= r2 and z < zbuf[y, x]:
                    zbuf[y, x] = z


@dataclass
class RenderOutput:
    """What :func:`render_mesh` returns.

    depth: (H, W) float32 mm along z, 0 where no triangle covers the pixel centre.
    triangle_id: (H, W) int32 index into the rendered triangles, -1 = none.
    barycentrics: (H, W, 3) float32 perspective-correct weights of the visible
        triangle's corners (the surface point is ``sum_i b_i * V[tri[i]]``), or None.
    """

    depth: np.ndarray
    triangle_id: np.ndarray
    barycentrics: np.ndarray | None = None

    def surface_points(self, vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
        """(H, W, 3) exact surface points (frame of ``vertices``) of covered pixels, NaN elsewhere.

        Pass the camera-frame vertices to get the camera-frame points, or head-frame
        vertices (same triangles) to get head-frame coordinates of every pixel.
        """
        if self.barycentrics is None:
            raise ValueError("render with barycentrics=True to get surface points")
        tid = self.triangle_id
        ok = tid >= 0
        out = np.full(tid.shape + (3,), np.nan)
        corners = np.asarray(vertices, np.float64)[np.asarray(triangles)[tid[ok]]]  # (n, 3, 3)
        out[ok] = np.einsum("nk,nkc->nc", self.barycentrics[ok].astype(np.float64), corners)
        return out


def rasterize_inverse_depth(
    vertices_cam: np.ndarray, triangles: np.ndarray, intrinsics: Intrinsics, *, cull_backfaces: bool = False, near: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z-buffer pass: (1/z float64 with 0 = empty, triangle_id int32 with -1 = none, projected (u, v, z) per vertex)."""
    k = intrinsics
    izbuf = np.zeros((k.height, k.width), np.float64)
    triangle_id = np.full((k.height, k.width), -1, np.int32)
    uvz = _project(np.ascontiguousarray(vertices_cam), float(k.fx), float(k.fy), float(k.cx), float(k.cy))
    tris = np.ascontiguousarray(triangles, dtype=np.int32)
    _raster(uvz, np.ascontiguousarray(vertices_cam, np.float64), tris, 1 if cull_backfaces else 0, float(near), izbuf,
            triangle_id, 0, float(k.fx), float(k.fy), float(k.cx), float(k.cy))  # fmt: skip
    return izbuf, triangle_id, uvz


def rasterize(
    vertices_cam: np.ndarray,
    triangles: np.ndarray,
    intrinsics: Intrinsics,
    *,
    cull_backfaces: bool = False,
    near: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z-buffer pass: (depth float32 with 0 = empty, triangle_id, projected (u, v, z) per vertex)."""
    izbuf, tid, uvz = rasterize_inverse_depth(vertices_cam, triangles, intrinsics, cull_backfaces=cull_backfaces, near=near)
    return _to_depth(izbuf), tid, uvz


def barycentrics_of(uvz: np.ndarray, triangles: np.ndarray, triangle_id: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 perspective-correct barycentrics for a finished triangle-id buffer."""
    out = np.empty(triangle_id.shape + (3,), np.float32)
    _barycentrics(uvz, np.ascontiguousarray(triangles, dtype=np.int32), triangle_id, out)
    return out


def render_mesh(
    vertices_cam: np.ndarray,
    triangles: np.ndarray,
    intrinsics: Intrinsics,
    *,
    cull_backfaces: bool = False,
    barycentrics: bool = True,
    near: float = 1.0,
) -> RenderOutput:
    """Render any triangle mesh given in the camera frame (mm) to an exact depth image.

    ``cull_backfaces`` drops triangles whose corners appear clockwise on screen
    (counter-clockwise = facing the camera); leave it off for meshes of unknown winding.
    """
    depth, tid, uvz = rasterize(vertices_cam, triangles, intrinsics, cull_backfaces=cull_backfaces, near=near)
    bary = barycentrics_of(uvz, triangles, tid) if barycentrics else None
    return RenderOutput(depth, tid, bary)


def splat_points(points_cam: np.ndarray, intrinsics: Intrinsics, radius_mm: float = 1.0) -> np.ndarray:
    """Z-buffered disc splats of a point cloud (camera frame, mm) -> (H, W) float32 depth, 0 = empty.

    Every point covers the pixel centres within ``radius_mm`` (projected at its depth, at
    least the nearest pixel) with its own z; the nearest point wins.
    """
    k = intrinsics
    pts = np.asarray(points_cam, np.float64)
    pts = pts[np.isfinite(pts).all(axis=1)]
    zbuf = np.full((k.height, k.width), np.inf, np.float64)
    uvz = _project(np.ascontiguousarray(pts), float(k.fx), float(k.fy), float(k.cx), float(k.cy))
    _splat(uvz, float(radius_mm), float(k.fx), zbuf)
    return np.where(np.isfinite(zbuf), zbuf, 0.0).astype(np.float32)
