"""Exact point-to-surface distance: brute force agreement and known answers on spheres."""
from __future__ import annotations

import time

import numpy as np
import pytest
import trimesh

from facerecon.metrics.surface import SurfaceIndex, closest_points_on_triangles, point_to_surface, triangulate_faces


def _brute_closest(p, a, b, c):
    """Independent reference: best of the 3 vertices, 3 edges and the interior projection."""
    def seg(p, a, b):
        ab = b - a
        den = np.einsum("ij,ij->i", ab, ab)
        t = np.clip(np.einsum("ij,ij->i", p - a, ab) / np.where(den > 0, den, 1), 0, 1)
        return a + t[:, None] * ab

    cands = [seg(p, a, b), seg(p, b, c), seg(p, c, a)]
    n = np.cross(b - a, c - a)
    nn = np.einsum("ij,ij->i", n, n)
    ok = nn > 1e-20
    nu = n / np.sqrt(np.where(ok, nn, 1))[:, None]
    proj = p - np.einsum("ij,ij->i", p - a, nu)[:, None] * nu
    # Inside test with barycentric signs.
    s1 = np.einsum("ij,ij->i", np.cross(b - a, proj - a), n)
    s2 = np.einsum("ij,ij->i", np.cross(c - b, proj - b), n)
    s3 = np.einsum("ij,ij->i", np.cross(a - c, proj - c), n)
    inside = ok & (s1 >= 0) & (s2 >= 0) & (s3 >= 0)
    proj = np.where(inside[:, None], proj, cands[0])
    cands.append(proj)
    d = np.stack([np.linalg.norm(q - p, axis=1) for q in cands])
    return d.min(axis=0)


def test_point_triangle_matches_brute_force_random():
    rng = np.random.default_rng(0)
    m = 20000
    p = rng.normal(size=(m, 3)) * 3
    a, b, c = (rng.normal(size=(m, 3)) for _ in range(3))
    # Some degenerate triangles: collinear, and all three vertices equal.
    c[:200] = a[:200] + 0.37 * (b[:200] - a[:200])
    b[200:300] = a[200:300]
    c[200:300] = a[200:300]
    q = closest_points_on_triangles(p, a, b, c)
    d = np.linalg.norm(q - p, axis=1)
    np.testing.assert_allclose(d, _brute_closest(p, a, b, c), rtol=0, atol=1e-9)
    # The returned point lies on the triangle: its barycentric residual is ~0.
    n = np.cross(b - a, c - a)
    nondeg = np.linalg.norm(n, axis=1) > 1e-6
    assert np.abs(np.einsum("ij,ij->i", q - a, n)[nondeg]).max() < 1e-9


def test_surface_query_exact_on_mixed_triangle_sizes():
    """A soup mixing tiny and huge triangles (exercises the certificate and its fallback)."""
    rng = np.random.default_rng(1)
    small = rng.uniform(-50, 50, size=(3000, 1, 3)) + rng.normal(scale=0.5, size=(3000, 3, 3))
    big = rng.uniform(-50, 50, size=(20, 1, 3)) + rng.normal(scale=40, size=(20, 3, 3))
    tri = np.concatenate([small, big])
    v = tri.reshape(-1, 3)
    f = np.arange(v.shape[0]).reshape(-1, 3)
    pts = rng.uniform(-80, 80, size=(150, 3))
    res = point_to_surface(pts, v, f)
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    brute = np.array([_brute_closest(np.repeat(p[None], len(f), 0), a, b, c).min() for p in pts])
    np.testing.assert_allclose(res.distances, brute, rtol=0, atol=1e-9)
    # The reported face really attains the distance and the point is consistent.
    np.testing.assert_allclose(np.linalg.norm(res.points - pts, axis=1), res.distances, atol=1e-12)
    fd = _brute_closest(pts, a[res.face_index], b[res.face_index], c[res.face_index])
    np.testing.assert_allclose(fd, res.distances, atol=1e-9)


def _max_sagitta(mesh: trimesh.Trimesh, r: float) -> float:
    """How far the inscribed polyhedron falls inside the sphere: r - min face-plane distance."""
    tri = mesh.vertices[mesh.faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    return float(r - np.abs(np.einsum("ij,ij->i", n, tri[:, 0])).min())


def test_sphere_displaced_one_mm_along_normals():
    """Vertices of an icosphere of radius r + 1 against the tessellated sphere of radius r.

    The tessellated sphere is inscribed in the true one, so every distance is >= 1 mm
    exactly, and <= 1 mm + the largest sagitta (r minus the smallest face-plane distance),
    computed from the mesh itself: 100 mm radius, 5 subdivisions -> sagitta ~0.018 mm.
    """
    r = 100.0
    gt = trimesh.creation.icosphere(subdivisions=5, radius=r)
    pred_v = gt.vertices * ((r + 1.0) / r)  # each vertex moved 1 mm along its (radial) normal
    sag = _max_sagitta(gt, r)
    assert 0 < sag < 0.03
    d = point_to_surface(pred_v, gt.vertices, gt.faces).distances
    assert d.min() >= 1.0 - 1e-9
    assert d.max() <= 1.0 + sag + 1e-9
    # The other way: the tessellated r+1 sphere lies between r+1-sag' and r+1 from the centre.
    sag2 = _max_sagitta(trimesh.Trimesh(pred_v, gt.faces, process=False), r + 1)
    d2 = point_to_surface(gt.vertices, pred_v, gt.faces).distances
    assert d2.max() <= 1.0 + 1e-9 and d2.min() >= 1.0 - sag2 - 1e-9
    # Points exactly on the surface (the vertices themselves) are at distance 0.
    assert point_to_surface(gt.vertices, gt.vertices, gt.faces).distances.max() < 1e-9


def test_face_mask_and_quads():
    # A unit square as one quad, and as two triangles; a point above its middle.
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], float)
    quad = np.array([[0, 1, 2, 3]])
    assert triangulate_faces(quad).shape == (2, 3)
    d = point_to_surface(np.array([[0.25, 0.75, 2.0], [3.0, 0.5, 0.0]]), v, quad).distances
    np.testing.assert_allclose(d, [2.0, 2.0])
    # Restricting to the lower-right triangle (0, 1, 2): the point (0.25, 0.75) projects outside it.
    idx = SurfaceIndex(v, triangulate_faces(quad), face_mask=np.array([True, False]))
    res = idx.query(np.array([[0.25, 0.75, 0.0]]))
    assert res.face_index[0] == 0
    assert res.distances[0] == pytest.approx(np.sqrt(0.125))


def test_speed_30k_points_50k_triangles():
    """The size of a scan-vs-reconstruction comparison must take seconds, not minutes."""
    rng = np.random.default_rng(3)
    m = trimesh.creation.icosphere(subdivisions=6, radius=100.0)
    f = m.faces[:50000]
    q = m.vertices[rng.integers(0, len(m.vertices), 30000)] + rng.normal(scale=2.0, size=(30000, 3))
    t0 = time.perf_counter()
    res = SurfaceIndex(m.vertices, f).query(q)
    elapsed = time.perf_counter() - t0
    assert np.isfinite(res.distances).all()
    assert elapsed < 10.0, f"30k x 50k surface query took {elapsed:.1f} s"
