"""HeadPose: quaternion / matrix / Euler round trips in the project convention."""
from __future__ import annotations

import json

import numpy as np
import pytest

from facerecon.geometry.pose import HeadPose
from facerecon.geometry.rotations import euler_to_matrix, random_rotation


def test_quaternion_roundtrip():
    rng = np.random.default_rng(0)
    for r in random_rotation(rng, 50):
        p = HeadPose(r, [1.0, 2.0, 3.0])
        q = p.quaternion_wxyz
        assert q[0] >= 0 and np.linalg.norm(q) == pytest.approx(1.0)
        for qq in (q, -q, 3.0 * q):  # sign and scale do not matter
            np.testing.assert_allclose(HeadPose.from_quaternion(qq, p.t_mm).R, r, atol=1e-9)


def test_euler_convention_and_roundtrip():
    p = HeadPose.from_euler(30.0, -20.0, 10.0, [0, 0, 800])
    np.testing.assert_allclose(p.euler_deg, [30.0, -20.0, 10.0], atol=1e-9)
    assert (p.yaw, p.pitch, p.roll) == pytest.approx((30.0, -20.0, 10.0))
    np.testing.assert_allclose(p.matrix, euler_to_matrix(30.0, -20.0, 10.0))
    # frontal = identity, quaternion (1, 0, 0, 0)
    np.testing.assert_allclose(HeadPose.identity().quaternion_wxyz, [1, 0, 0, 0])
    # yaw about the camera y axis: w = cos(15 deg), y = sin(15 deg)
    np.testing.assert_allclose(HeadPose.from_euler(30, 0, 0, [0, 0, 0]).quaternion_wxyz,
                               [np.cos(np.pi / 12), 0, np.sin(np.pi / 12), 0], atol=1e-12)


def test_apply_and_json():
    p = HeadPose.from_euler(10.0, 5.0, -3.0, [10.0, -20.0, 700.0])
    v = np.array([[0.0, 0.0, -100.0], [40.0, 10.0, 0.0]])
    np.testing.assert_allclose(p.inverse_apply(p.apply(v)), v, atol=1e-9)
    np.testing.assert_allclose(p.apply(v), v @ p.R.T + p.t_mm)
    d = json.loads(json.dumps(p.to_json()))
    q = HeadPose.from_json(d)
    np.testing.assert_allclose(q.R, p.R, atol=1e-12)
    np.testing.assert_allclose(q.t_mm, p.t_mm)
    assert "yaw" in repr(p)


def test_test_time_flip_mirror_geometry():
    from facerecon.nets.decode import flip_average, mirror_position_images
    from facerecon.geometry.rotations import quat_to_matrix

    rng = np.random.default_rng(0)
    img = rng.normal(size=(2, 3, 8, 8)).astype(np.float32)
    m = mirror_position_images(img)
    np.testing.assert_array_equal(m[:, 0], -img[:, 0, :, ::-1])
    np.testing.assert_array_equal(m[:, 1:], img[:, 1:, :, ::-1])
    np.testing.assert_array_equal(mirror_position_images(m), img)
    # the mirror scene P p holds the head at P R P: quaternion (w, x, -y, -z)
    P = np.diag([-1.0, 1, 1])
    q = HeadPose(random_rotation(rng, 1)[0], np.zeros(3)).quaternion_wxyz
    qm = q * np.array([1, 1, -1, -1])
    np.testing.assert_allclose(quat_to_matrix(qm), P @ quat_to_matrix(q) @ P, atol=1e-12)
    # outputs that agree exactly average to the direct prediction, whatever the mirrored sign
    qt = np.stack([q, -qm])
    tt = np.array([[10.0, 2, 3], [-10.0, 2, 3]])
    qa, ta = flip_average(qt, tt)
    np.testing.assert_allclose(qa[0], q, atol=1e-12)
    np.testing.assert_allclose(ta[0], [10, 2, 3])
    # disagreeing ones meet half-way (rotation angle between them halves)
    q2 = HeadPose(quat_to_matrix(q) @ quat_to_matrix(np.array([np.cos(0.1), 0, np.sin(0.1), 0])), np.zeros(3)).quaternion_wxyz
    qa, _ = flip_average(np.stack([q, q2 * np.array([1, 1, -1, -1])]), tt)
    half = 2 * np.degrees(np.arccos(min(1.0, abs(float(np.dot(qa[0], q))))))
    assert half == pytest.approx(np.degrees(0.2) / 2, abs=1e-6)
