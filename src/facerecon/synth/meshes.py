"""Small procedural meshes for synthetic scenes (mm): ellipsoids, ring stacks, capsules, boxes, quads.

Every mesh is ``(vertices (N, 3) float64, triangles (M, 3) int32)`` with outward normals
``(b - a) x (c - a)`` (right-handed), which is what back-face culling in
:mod:`facerecon.geometry.raster` expects.  Topologies are cached and their orientation is
fixed once, so building a scene costs little more than the vertex arithmetic.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

Mesh = tuple[np.ndarray, np.ndarray]


def cross3(a, b) -> np.ndarray:
    """Cross product of two 3-vectors (much cheaper than np.cross for single vectors)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def euler(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Scalar fast path of :func:`facerecon.geometry.rotations.euler_to_matrix` (R = Ry Rx Rz, degrees)."""
    y, p, r = np.deg2rad(yaw_deg), np.deg2rad(pitch_deg), np.deg2rad(roll_deg)
    cy, sy, cp, sp, cr, sr = np.cos(y), np.sin(y), np.cos(p), np.sin(p), np.cos(r), np.sin(r)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return ry @ rx @ rz


@lru_cache(maxsize=32)
def _circle(k: int) -> tuple[np.ndarray, np.ndarray]:
    ang = np.linspace(0, 2 * np.pi, k, endpoint=False)[:, None]
    return np.cos(ang), np.sin(ang)


@lru_cache(maxsize=64)
def _grid(rows: int, cols: int, wrap: bool) -> np.ndarray:
    r, c = np.meshgrid(np.arange(rows - 1), np.arange(cols if wrap else cols - 1), indexing="ij")
    r, c = r.ravel(), c.ravel()
    c1 = (c + 1) % cols
    a, b, d, e = r * cols + c, r * cols + c1, (r + 1) * cols + c, (r + 1) * cols + c1
    t = np.concatenate([np.stack([a, b, d], 1), np.stack([b, e, d], 1)]).astype(np.int32)
    t.setflags(write=False)
    return t


def grid_triangles(rows: int, cols: int, wrap: bool = True) -> np.ndarray:
    """Triangles of a rows x cols vertex grid (row-major), columns wrapping around if ``wrap``.

    For a grid whose rows advance along +axis and whose columns turn counter-clockwise
    about +axis (right-handed), the normals point outwards.
    """
    return _grid(int(rows), int(cols), bool(wrap)).copy()


def orient_outward(vertices: np.ndarray, triangles: np.ndarray, inside_point: np.ndarray) -> np.ndarray:
    """Flip triangles whose normal points towards ``inside_point`` (valid for star-shaped meshes)."""
    a, b, c = (vertices[triangles[:, i]] for i in range(3))
    n = np.cross(b - a, c - a)
    flip = np.einsum("ij,ij->i", n, (a + b + c) / 3 - inside_point) < 0
    tri = triangles.copy()
    tri[flip] = tri[flip][:, [0, 2, 1]]
    return tri


@lru_cache(maxsize=16)
def _sphere_dirs(n_lat: int, n_lon: int) -> np.ndarray:
    theta = np.linspace(0, np.pi, n_lat + 1)
    phi = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    # rows from y = -1 (top) to y = +1; columns counter-clockwise about +y seen from +y
    v = np.stack([np.sin(t) * np.cos(p), -np.cos(t), -np.sin(t) * np.sin(p)], -1).reshape(-1, 3)
    v.setflags(write=False)
    return v


def unit_sphere(n_lat: int = 12, n_lon: int = 24) -> Mesh:
    """UV sphere of radius 1 with outward normals."""
    return _sphere_dirs(n_lat, n_lon), grid_triangles(n_lat + 1, n_lon)


def ellipsoid(centre, radii, rotation=None, n_lat: int = 12, n_lon: int = 24) -> Mesh:
    v, t = unit_sphere(n_lat, n_lon)
    v = v * np.asarray(radii, np.float64)
    if rotation is not None:
        v = v @ np.asarray(rotation).T
    return v + np.asarray(centre, np.float64), t


def _frame_from_axis(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Right-handed (e1, e2, axis) with e1 x e2 = axis."""
    axis = axis / np.linalg.norm(axis)
    helper = np.array([1.0, 0, 0]) if abs(axis[0]) < 0.9 else np.array([0, 0, 1.0])
    e1 = cross3(axis, helper)
    e1 /= np.linalg.norm(e1)
    return e1, cross3(axis, e1), axis


def ring_stack(rings: np.ndarray) -> Mesh:
    """Open tube through closed rings (R, k, 3), rings advancing along +axis and turning
    counter-clockwise about it (as :func:`ellipse_ring` makes with right-handed u, v, axis)."""
    r, k = rings.shape[:2]
    return rings.reshape(-1, 3), grid_triangles(r, k)


def ellipse_ring(centre, axis_u, axis_v, ru: float, rv: float, k: int = 20) -> np.ndarray:
    """k points on an ellipse, counter-clockwise about ``axis_u x axis_v``."""
    c, s = _circle(int(k))
    return np.asarray(centre) + (ru * c) * np.asarray(axis_u) + (rv * s) * np.asarray(axis_v)


@lru_cache(maxsize=16)
def _capsule_template(n_lat: int, n_lon: int):
    half = n_lat // 2
    theta = np.concatenate([np.linspace(0, np.pi / 2, half + 1), np.linspace(np.pi / 2, np.pi, half + 1)])
    phi = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    offs = np.where(np.arange(len(theta)) <= half, 0.0, 1.0)[:, None] * np.ones_like(p)
    return (-np.cos(t)).ravel(), offs.ravel(), (np.sin(t) * np.cos(p)).ravel(), (np.sin(t) * np.sin(p)).ravel(), len(theta)


def capsule(p0, p1, radius: float, n_lat: int = 8, n_lon: int = 16) -> Mesh:
    """Cylinder with hemispherical caps from p0 to p1."""
    p0, p1 = np.asarray(p0, np.float64), np.asarray(p1, np.float64)
    length = float(np.linalg.norm(p1 - p0))
    if length < 1e-9:
        return ellipsoid(p0, (radius, radius, radius), n_lat=n_lat, n_lon=n_lon)
    e1, e2, ax = _frame_from_axis(p1 - p0)
    ct, offs, cp, sp, rows = _capsule_template(n_lat, n_lon)
    along = ct * radius + offs * length
    v = p0 + along[:, None] * ax + (radius * cp)[:, None] * e1 + (radius * sp)[:, None] * e2
    return v, grid_triangles(rows, n_lon)


_BOX_V = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], np.float64)
_BOX_T = orient_outward(
    _BOX_V,
    np.array(
        [[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
         [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]],
        np.int32,
    ),
    np.zeros(3),
)  # fmt: skip


def box(centre, size, rotation=None) -> Mesh:
    """Box with full edge lengths ``size`` (sx, sy, sz)."""
    v = _BOX_V * (np.asarray(size, np.float64) / 2)
    if rotation is not None:
        v = v @ np.asarray(rotation).T
    return v + np.asarray(centre, np.float64), _BOX_T.copy()


def quad(corners: np.ndarray, facing_point: np.ndarray) -> Mesh:
    """Two triangles over 4 corners (in order around the quad), normal towards ``facing_point``."""
    v = np.asarray(corners, np.float64)
    t = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
    n = cross3(v[1] - v[0], v[2] - v[0])
    if n @ (np.asarray(facing_point) - v[0]) < 0:
        t = t[:, [0, 2, 1]]
    return v, t


def closed_tube(path: np.ndarray, radius: float, k: int = 6) -> Mesh:
    """A thin tube of radius ``radius`` around a closed planar loop ``path`` (n, 3) (e.g. a glasses rim)."""
    n = path.shape[0]
    tang = np.roll(path, -1, 0) - np.roll(path, 1, 0)
    tang /= np.linalg.norm(tang, axis=1, keepdims=True)
    out = path - path.mean(0)
    out -= np.einsum("ij,ij->i", out, tang)[:, None] * tang
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
    bin_ = np.cross(tang, out)
    ang = np.linspace(0, 2 * np.pi, k, endpoint=False)
    v = path[:, None] + radius * (np.cos(ang)[None, :, None] * out[:, None] + np.sin(ang)[None, :, None] * bin_[:, None])
    rows = np.concatenate([np.arange(n), [0]])  # close the loop by repeating the first ring's indices
    tri = grid_triangles(n + 1, k)
    idx = (rows[:, None] * k + np.arange(k)[None]).ravel()
    tri = idx[tri].astype(np.int32)
    # orientation is fixed by the loop direction: check one triangle against the local tube axis
    a, b, c = v.reshape(-1, 3)[tri[0]]
    if np.cross(b - a, c - a) @ ((a + b + c) / 3 - path[tri[0, 0] // k]) < 0:
        tri = tri[:, [0, 2, 1]]
    return v.reshape(-1, 3), tri


def merge(meshes: list[Mesh]) -> Mesh:
    """Concatenate meshes into one."""
    if not meshes:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int32)
    vs, ts, off = [], [], 0
    for v, t in meshes:
        vs.append(v)
        ts.append(t + off)
        off += len(v)
    return np.concatenate(vs), np.concatenate(ts).astype(np.int32)
