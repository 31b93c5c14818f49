"""CPU depth rendering: an exact z-buffer rasteriser (numba) and a point splatter.

Conventions: camera frame x right, y down, z forward, millimetres; pixel ``(u, v)`` has
its centre at integer coordinates (see :mod:`facerecon.camera`).  A pixel is covered by
a triangle when its centre lies inside the triangle's projection (edges inclusive, so
meshes have no cracks); its depth is the exact ray/plane intersection (1/z is affine in
screen space for a planar triangle).  Triangles with a corner closer than ``near`` mm are
skipped (no clipping), so build scenes in front of the camera.

``render_mesh`` works for any mesh (the ICT head, a real scan such as ``james.obj``);
``splat_points`` turns a point cloud into a depth image (z-buffered discs).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from ..camera import Intrinsics

_EDGE_EPS = 1e-9  # inclusive edges: a pixel centre on a shared edge is covered by both sides


@njit(cache=True)
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


@njit(cache=True)
def _raster(uvz, tris, cull, near, zbuf, tid, tri_offset):
    """Z-buffer ``tris`` into ``zbuf``/``tid`` (in place).  cull: 0 none, 1 drop back faces.

    Front faces are counter-clockwise as seen by the camera (image y down), i.e. the
    screen-space signed area below is negative for them.
    """
    h, w = zbuf.shape
    eps = _EDGE_EPS
    for t in range(tris.shape[0]):
        i0, i1, i2 = tris[t, 0], tris[t, 1], tris[t, 2]
        z0, z1, z2 = uvz[i0, 2], uvz[i1, 2], uvz[i2, 2]
        if z0 < near or z1 < near or z2 < near:
            continue
        u0, v0, u1, v1, u2, v2 = uvz[i0, 0], uvz[i0, 1], uvz[i1, 0], uvz[i1, 1], uvz[i2, 0], uvz[i2, 1]
        area = (u1 - u0) * (v2 - v0) - (u2 - u0) * (v1 - v0)
        if area == 0.0 or (cull == 1 and area > 0.0):
            continue
        xmin = max(int(np.ceil(min(u0, u1, u2))), 0)
        xmax = min(int(np.floor(max(u0, u1, u2))), w - 1)
        ymin = max(int(np.ceil(min(v0, v1, v2))), 0)
        ymax = min(int(np.floor(max(v0, v1, v2))), h - 1)
        if xmin > xmax or ymin > ymax:
            continue
        inv = 1.0 / area
        iz0, iz1, iz2 = 1.0 / z0, 1.0 / z1, 1.0 / z2
        for y in range(ymin, ymax + 1):
            fy_ = np.float64(y)
            for x in range(xmin, xmax + 1):
                fx_ = np.float64(x)
                b0 = ((u1 - fx_) * (v2 - fy_) - (u2 - fx_) * (v1 - fy_)) * inv
                if b0 < -eps:
                    continue
                b1 = ((u2 - fx_) * (v0 - fy_) - (u0 - fx_) * (v2 - fy_)) * inv
                if b1 < -eps:
                    continue
                b2 = 1.0 - b0 - b1
                if b2 < -eps:
                    continue
                z = 1.0 / (b0 * iz0 + b1 * iz1 + b2 * iz2)
                if z < zbuf[y, x]:
                    zbuf[y, x] = z
                    tid[y, x] = t + tri_offset


@njit(cache=True)
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


@njit(cache=True)
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


def rasterize(
    vertices_cam: np.ndarray,
    triangles: np.ndarray,
    intrinsics: Intrinsics,
    *,
    cull_backfaces: bool = False,
    near: float = 1.0,
    zbuf: np.ndarray | None = None,
    triangle_id: np.ndarray | None = None,
    triangle_offset: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Low-level z-buffer pass; returns (zbuf with inf = empty, triangle_id, projected uvz).

    Pass ``zbuf``/``triangle_id`` from a previous call to composite several meshes; ids
    of this mesh are shifted by ``triangle_offset``.
    """
    k = intrinsics
    if zbuf is None:
        zbuf = np.full((k.height, k.width), np.inf, np.float64)
    if triangle_id is None:
        triangle_id = np.full((k.height, k.width), -1, np.int32)
    uvz = _project(np.ascontiguousarray(vertices_cam), float(k.fx), float(k.fy), float(k.cx), float(k.cy))
    tris = np.ascontiguousarray(triangles, dtype=np.int32)
    _raster(uvz, tris, 1 if cull_backfaces else 0, float(near), zbuf, triangle_id, int(triangle_offset))
    return zbuf, triangle_id, uvz


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
    zbuf, tid, uvz = rasterize(vertices_cam, triangles, intrinsics, cull_backfaces=cull_backfaces, near=near)
    depth = np.where(np.isfinite(zbuf), zbuf, 0.0).astype(np.float32)
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
