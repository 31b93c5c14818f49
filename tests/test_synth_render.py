"""Rasteriser and splatting: exact depth, barycentrics, culling, no cracks."""
from __future__ import annotations

import numpy as np
import pytest

from facerecon.geometry.camera import Intrinsics
from facerecon.synth import meshes as M
from facerecon.geometry.raster import render_mesh, splat_points

K = Intrinsics(500.0, 500.0, 159.5, 119.5, 320, 240)


def test_tilted_plane_depth_is_exact():
    # plane through (0, 0, 1000) with normal n; quad covering the whole view
    n = np.array([0.3, -0.2, -1.0])
    n /= np.linalg.norm(n)
    rays = np.array([[-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1]], float)
    corners = rays * ((np.array([0, 0, 1000.0]) @ n) / (rays @ n))[:, None]
    v, t = M.quad(corners, np.zeros(3))
    r = render_mesh(v, t, K, cull_backfaces=True)
    assert (r.depth > 0).all()
    uu, vv = np.meshgrid(np.arange(K.width), np.arange(K.height))
    ray = np.stack([(uu - K.cx) / K.fx, (vv - K.cy) / K.fy, np.ones_like(uu, float)], -1)
    z_exact = (np.array([0, 0, 1000.0]) @ n) / (ray @ n)
    assert np.abs(r.depth - z_exact).max() < 1e-3
    pts = r.surface_points(v, t)
    assert np.abs(pts[..., 2] - r.depth).max() < 1e-3
    assert np.abs(pts - K.unproject(np.stack([uu, vv], -1), r.depth)).max() < 1e-3


def test_closed_mesh_has_no_cracks_and_culling_keeps_the_front():
    v, t = M.ellipsoid([0, 0, 600.0], (80, 100, 90), n_lat=24, n_lon=48)
    full = render_mesh(v, t, K, cull_backfaces=False)
    culled = render_mesh(v, t, K, cull_backfaces=True)
    inside = full.depth > 0
    assert np.array_equal(inside, culled.depth > 0)
    assert np.allclose(full.depth[inside], culled.depth[inside])
    # the silhouette is filled: no hole inside the projected ellipse interior
    u, vv = np.meshgrid(np.arange(K.width), np.arange(K.height))
    core = ((u - K.cx) / (80 * 500 / 600 * 0.9)) ** 2 + ((vv - K.cy) / (100 * 500 / 600 * 0.9)) ** 2 < 1
    assert inside[core].all()
    # front surface: depth at the centre ~ 600 - 90
    assert abs(culled.depth[120, 160] - 510.0) < 2.0
    # flipping the winding makes the front faces disappear under culling
    back = render_mesh(v, t[:, [0, 2, 1]], K, cull_backfaces=True)
    assert back.depth[120, 160] > 600


def test_triangles_crossing_the_near_plane_are_clipped():
    behind = np.array([[0, 0, -10.0], [100, 0, -5], [0, 100, -20]])
    r = render_mesh(behind, np.array([[0, 1, 2]]), K)
    assert (r.depth == 0).all() and (r.triangle_id == -1).all()
    # a floor plane y = 300 from behind the camera to 5 m: every pixel below the horizon sees it
    floor = np.array([[-5000, 300, -1000.0], [5000, 300, -1000], [5000, 300, 5000], [-5000, 300, 5000]])
    v, t = M.quad(floor, np.zeros(3))
    r = render_mesh(v, t, K, cull_backfaces=True, barycentrics=False)
    rows = np.arange(K.height)
    expect = rows > K.cy + 300 * K.fy / 5000  # below the far edge of the floor
    assert ((r.depth > 0).all(axis=1) == expect).all()
    vv = rows[expect]
    assert np.allclose(r.depth[expect, 100], 300 * K.fy / (vv - K.cy), rtol=1e-6)


def test_splat_points_nearest_wins():
    pts = np.array([[0, 0, 800.0], [0, 0, 700.0], [50, 0, 900.0], [np.nan, 0, 1.0]])
    d = splat_points(pts, K, radius_mm=3.0)
    assert d[120, 160] == pytest.approx(700.0) or d[int(round(K.cy)), int(round(K.cx))] == pytest.approx(700.0)
    u = int(round(50 * 500 / 900 + K.cx))
    assert d[int(round(K.cy)), u] == pytest.approx(900.0)
    assert (d > 0).sum() < 60


def test_real_scan_and_point_cloud_render(real_dir):
    """The general helpers on real data: james.obj (mesh) and TrueDepth Expected.ply (points)."""
    from facerecon.geometry.camera import camera_preset
    from facerecon.io.mesh import read_mesh
    from facerecon.io.truedepth import read_ply_points

    mesh = read_mesh(real_dir / "scan-james" / "james.obj")
    v = mesh.vertices - mesh.vertices.mean(0)
    v = v * np.array([1.0, -1.0, -1.0]) + np.array([0.0, 0.0, 700.0])  # scan's y up / z out -> camera frame
    k = camera_preset("kinect-v1")
    r = render_mesh(v, mesh.faces, k)
    assert (r.depth > 0).sum() > 15_000
    assert 550 < np.median(r.depth[r.depth > 0]) < 800
    pts = r.surface_points(v, mesh.faces)
    ok = r.depth > 0
    assert np.abs(pts[ok][:, 2] - r.depth[ok]).max() < 1e-2
    cloud = read_ply_points(real_dir / "truedepth-mannequin" / "Expected.ply")
    d = splat_points(cloud, camera_preset("truedepth-320x240"), radius_mm=1.5)
    assert (d > 0).sum() > 5_000
    assert d[d > 0].min() >= cloud[:, 2].min() - 1e-3
