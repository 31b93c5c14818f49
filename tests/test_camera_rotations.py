"""Cameras and the rotation conventions."""
from __future__ import annotations

import numpy as np
import pytest

from facerecon.geometry import rotations as rot
from facerecon.geometry.camera import Intrinsics, camera_preset, camera_presets, fit_intrinsics, parse_intrinsics
from facerecon.errors import ConfigError


def test_presets():
    k = camera_preset("kinect-v1-biwi")
    assert (k.fx, k.cx, k.cy, k.width, k.height) == (575.816, 320.0, 240.0, 640, 480)
    assert camera_preset("kinect-v1").cx == 319.5
    for name in ("kinect-v2", "realsense-d435", "truedepth-320x240"):
        assert name in camera_presets() and camera_presets()[name]
    with pytest.raises(ConfigError):
        camera_preset("nope")


def test_project_unproject_roundtrip():
    k = camera_preset("kinect-v1")
    rng = np.random.default_rng(0)
    p = rng.uniform([-300, -200, 500], [300, 200, 1500], size=(100, 3))
    uv = k.project(p)
    np.testing.assert_allclose(k.unproject(uv, p[:, 2]), p, atol=1e-9)


def test_depth_to_points_and_fit():
    k = Intrinsics(500.0, 510.0, 100.3, 80.7, 200, 160)
    depth = np.full((160, 200), 1000.0, np.float32)
    pts = k.depth_to_points(depth)
    assert pts[80, 100, 0] == pytest.approx((100 - 100.3) * 1000 / 500, abs=1e-3)
    assert pts[0, 0, 1] == pytest.approx((0 - 80.7) * 1000 / 510, abs=1e-3)
    fitted = fit_intrinsics(pts)
    assert fitted.fx == pytest.approx(500, abs=1e-2) and fitted.cy == pytest.approx(80.7, abs=1e-2)


def test_crop_and_resize_keep_geometry():
    k = camera_preset("kinect-v1")
    p = np.array([[120.0, -40.0, 900.0]])
    u, v = k.project(p)[0]
    c = k.crop(100, 50, 300, 200)
    np.testing.assert_allclose(c.project(p)[0], [u - 100, v - 50])
    r = k.resize(320, 240)
    np.testing.assert_allclose(r.project(p)[0], [(u + 0.5) / 2 - 0.5, (v + 0.5) / 2 - 0.5])


def test_parse_intrinsics():
    k = parse_intrinsics("525,525,319.5,239.5", 640, 480)
    assert k == camera_preset("kinect-v1")
    with pytest.raises(ConfigError):
        parse_intrinsics("1,2,3", 640, 480)


def test_quaternion_matrix_roundtrip():
    rng = np.random.default_rng(0)
    q = rot.quat_normalize(rng.normal(size=(500, 4)))
    assert (q[:, 0] >= 0).all()
    np.testing.assert_allclose(rot.matrix_to_quat(rot.quat_to_matrix(q)), q, atol=1e-9)
    r = rot.quat_to_matrix(q)
    np.testing.assert_allclose(r @ np.swapaxes(r, 1, 2), np.broadcast_to(np.eye(3), r.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-12)


def test_euler_convention_and_roundtrip():
    rng = np.random.default_rng(1)
    ang = np.stack([rng.uniform(-179, 179, 1000), rng.uniform(-89, 89, 1000), rng.uniform(-179, 179, 1000)], 1)
    r = rot.euler_to_matrix(ang[:, 0], ang[:, 1], ang[:, 2])
    np.testing.assert_allclose(rot.matrix_to_euler(r), ang, atol=1e-7)
    # near gimbal lock: the angles are not unique, the rotation is
    for pitch in (90 - 1e-5, -90 + 1e-5, 90.0, -90.0):
        rr = rot.euler_to_matrix(37.0, pitch, -21.0)
        e = rot.matrix_to_euler(rr)
        np.testing.assert_allclose(rot.euler_to_matrix(*e), rr, atol=1e-6)
    # documented signs: positive yaw turns the face (head -z axis) towards image left (-x)
    face_dir = rot.euler_to_matrix(30, 0, 0) @ np.array([0, 0, -1.0])
    assert face_dir[0] < 0
    face_dir = rot.euler_to_matrix(0, 30, 0) @ np.array([0, 0, -1.0])
    assert face_dir[1] > 0  # positive pitch: face turns down (y down)
    right = rot.euler_to_matrix(0, 0, 30) @ np.array([1.0, 0, 0])
    assert right[1] > 0  # positive roll: clockwise as displayed


def test_geodesic():
    a = rot.euler_to_matrix(10, 0, 0)
    b = rot.euler_to_matrix(-15, 0, 0)
    assert rot.geodesic_distance_deg(a, b) == pytest.approx(25.0)
