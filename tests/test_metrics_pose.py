"""Pose metrics: known answers in the facerecon Euler convention, wrapping, gimbal lock."""
from __future__ import annotations

import numpy as np
import pytest

from facerecon.metrics.pose import PoseErrors, euler_abs_errors_deg, pose_errors, wrap_deg
from facerecon.geometry.rotations import euler_to_matrix, matrix_to_euler, random_rotation


def test_identical_poses_give_zero():
    rng = np.random.default_rng(0)
    r = random_rotation(rng, 50)
    t = rng.normal(size=(50, 3)) * 100
    e = pose_errors(r, r, t, t)
    assert e.n == 50
    assert max(e.yaw_mae, e.pitch_mae, e.roll_mae, e.mae, e.geodesic_mean, e.translation_mean_mm) < 1e-5


def test_known_per_axis_errors():
    # One sample off by (yaw 20, pitch -10, roll 5) against the identity: each axis error is
    # exactly that angle, because matrix_to_euler inverts euler_to_matrix.
    r_pred = euler_to_matrix(20.0, -10.0, 5.0)[None]
    r_true = np.eye(3)[None]
    e = pose_errors(r_pred, r_true, np.array([[0, 0, 1000.0]]), np.array([[3.0, 4.0, 1000.0]]))
    assert isinstance(e, PoseErrors)
    np.testing.assert_allclose([e.yaw_mae, e.pitch_mae, e.roll_mae], [20, 10, 5], atol=1e-9)
    assert e.mae == pytest.approx((20 + 10 + 5) / 3)
    assert e.translation_mean_mm == pytest.approx(5.0)
    # Geodesic angle of Ry(20) Rx(-10) Rz(5): from the trace.
    expect = np.degrees(np.arccos((np.trace(r_pred[0]) - 1) / 2))
    assert e.geodesic_mean == pytest.approx(expect)
    assert "MAE" in e.format_table() and e.to_dict()["mae"] == pytest.approx(e.mae)


def test_mae_is_mean_of_axis_maes_and_median():
    r_true = np.stack([np.eye(3)] * 3)
    r_pred = np.stack([euler_to_matrix(y, 0, 0) for y in (1.0, 2.0, 6.0)])
    e = pose_errors(r_pred, r_true)
    assert e.yaw_mae == pytest.approx(3.0)
    assert e.mae == pytest.approx(1.0)
    assert e.geodesic_median == pytest.approx(2.0)
    assert e.translation_mean_mm is None


def test_wrap_across_180():
    assert wrap_deg(358.0) == pytest.approx(-2.0)
    # yaw 179 vs -179 is 2 degrees apart, not 358.
    err = euler_abs_errors_deg(euler_to_matrix(179.0, 0, 0)[None], euler_to_matrix(-179.0, 0, 0)[None])
    np.testing.assert_allclose(err[0], [2.0, 0.0, 0.0], atol=1e-9)


@pytest.mark.parametrize("pitch", [0.0, 45.0, 89.9999, -89.9999, 89.99999, -89.99999, 90.0, -90.0])
def test_euler_roundtrip_rebuilds_matrix_incl_gimbal_lock(pitch):
    """matrix -> euler -> matrix reproduces the rotation (compare matrices, not angles)."""
    rng = np.random.default_rng(1)
    yaw = rng.uniform(-180, 180, 200)
    roll = rng.uniform(-180, 180, 200)
    r = euler_to_matrix(yaw, np.full(200, pitch), roll)
    e = matrix_to_euler(r)
    rebuilt = euler_to_matrix(e[:, 0], e[:, 1], e[:, 2])
    # When cos(pitch) < 1e-6 (within ~6e-5 deg of +-90) matrix_to_euler switches to its
    # gimbal-lock branch (roll = 0), which drops terms of order cos(pitch): <= ~2e-6.
    np.testing.assert_allclose(rebuilt, r, atol=5e-6)
    assert np.all(np.abs(e[:, 1]) <= 90.0)


def test_euler_roundtrip_random_rotations():
    r = random_rotation(np.random.default_rng(2), 2000)
    e = matrix_to_euler(r)
    np.testing.assert_allclose(euler_to_matrix(e[:, 0], e[:, 1], e[:, 2]), r, atol=1e-9)
    # The pose metric of a rotation against itself is zero for all of them.
    assert pose_errors(r, r).geodesic_mean < 1e-5


def test_shape_errors():
    with pytest.raises(ValueError):
        pose_errors(np.eye(3)[None], np.stack([np.eye(3)] * 2))
    with pytest.raises(ValueError):
        pose_errors(np.eye(3)[None], np.eye(3)[None], np.zeros((1, 3)), None)


def test_geodesic_accurate_for_tiny_angles():
    r = euler_to_matrix(0.0, 0.0, 1e-7)[None]
    e = pose_errors(r, np.eye(3)[None])
    assert e.geodesic_mean == pytest.approx(1e-7, rel=1e-6)
    big = pose_errors(euler_to_matrix(170.0, 0, 0)[None], np.eye(3)[None])
    assert big.geodesic_mean == pytest.approx(170.0)


def test_euler_roundtrip_random_offsets_within_1e4_deg_of_gimbal_lock():
    rng = np.random.default_rng(3)
    n = 500
    pitch = np.where(rng.random(n) < 0.5, 1, -1) * (90.0 - rng.uniform(0, 1e-4, n))
    r = euler_to_matrix(rng.uniform(-180, 180, n), pitch, rng.uniform(-180, 180, n))
    e = matrix_to_euler(r)
    np.testing.assert_allclose(euler_to_matrix(e[:, 0], e[:, 1], e[:, 2]), r, atol=5e-6)  # see above
    # A pose compared with its own Euler round trip has (almost) no geodesic error.
    assert pose_errors(euler_to_matrix(e[:, 0], e[:, 1], e[:, 2]), r).geodesic_mean < 1e-4
