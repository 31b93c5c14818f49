"""The classical model-fitting baseline: its rigid ICP stage recovers a perturbed pose."""
from __future__ import annotations

import numpy as np
import pytest

from facerecon.geometry.camera import camera_preset
from facerecon.geometry.pose import HeadPose
from facerecon.facemodel import FaceModel
from facerecon.fitting import FitConfig, fit_face
from facerecon.geometry.rotations import euler_to_matrix, geodesic_distance_deg
from facerecon.geometry.raster import render_mesh


def test_rigid_icp_recovers_pose_from_nearby_start():
    m = FaceModel.load()
    rng = np.random.default_rng(3)
    ident = rng.normal(size=100)
    r_true, t_true = euler_to_matrix(25, -10, 5), np.array([30.0, -20.0, 800.0])
    verts = m.vertices(ident).astype(np.float64) @ r_true.T + t_true
    k = camera_preset("kinect-v1")
    pts = k.valid_points(render_mesh(verts, m.region_triangles("face", "head_and_neck", "eyeballs"), k).depth)
    r0, t0 = euler_to_matrix(28, -7, 5), t_true + np.array([6.0, -4.0, 8.0])
    res = fit_face(pts, m, HeadPose(r0, t0), FitConfig(rigid_iterations=12, iterations=0), identity=ident)
    assert geodesic_distance_deg(res.pose.R, r_true) < 0.5
    assert np.linalg.norm(res.pose.t_mm - t_true) < 1.0
    assert res.history[-1] < res.history[0]


def test_jacobian_matches_numpy_bit_for_bit():
    """The joint step's Jacobian (numba, one pass) is numpy's cross product, normals and gathered basis products,
    (x + y) + z, concatenated."""
    from facerecon.fitting.gauss_newton import _NO_BASES, _jacobian

    rng = np.random.default_rng(5)
    bi = tuple(np.ascontiguousarray(rng.normal(size=(300, 12))) for _ in range(3))
    be = tuple(np.ascontiguousarray(rng.normal(size=(300, 4))) for _ in range(3))
    idx, nh = rng.integers(0, 300, 500), rng.normal(size=(500, 3))
    vi, ni, t = rng.normal(size=(500, 3)) * 80 + [0, 0, 600], rng.normal(size=(500, 3)), rng.normal(size=3) * 50
    rows = lambda b: (b[0][idx] * nh[:, 0:1] + b[1][idx] * nh[:, 1:2]) + b[2][idx] * nh[:, 2:3]  # noqa: E731
    want = np.concatenate([np.cross(vi - t, ni), ni, rows(bi), rows(be)], 1)
    assert np.array_equal(_jacobian(vi, ni, t, nh, idx, *bi, *be), want)
    assert np.array_equal(_jacobian(vi, ni, t, nh, idx, *_NO_BASES, *_NO_BASES), want[:, :6])


def test_farthest_point_model_points_spread_over_the_region():
    """The joint stage's ``sampling``: "farthest" is deterministic, inside the region's triangles, no two points
    closer than in a random subsample of the same size, and less of it on nose, eyes and mouth; "stratified" keeps
    the random sample's share there with fewer clumps."""
    from scipy.spatial import cKDTree

    from facerecon.fitting.gauss_newton import model_points

    m = FaceModel.load()
    far = model_points(m, "narrow_face", 1200, "farthest")
    assert np.array_equal(far, model_points(m, "narrow_face", 1200, "farthest")) and len(np.unique(far)) == 1200
    assert np.isin(far, np.unique(m.region_triangles("narrow_face"))).all()
    rand = model_points(m, "narrow_face", 1200, "random", seed=0)
    gap = lambda idx: cKDTree(m.neutral[idx]).query(m.neutral[idx], k=2)[0][:, 1]  # noqa: E731
    assert gap(far).min() > 2.0 * gap(rand).min() and np.median(gap(far)) > np.median(gap(rand))
    strata = model_points(m, "narrow_face", 1200, "stratified")  # ICT's density, without the random sample's clumps
    assert np.array_equal(strata, model_points(m, "narrow_face", 1200, "stratified")) and len(np.unique(strata)) == 1200
    nose = m.neutral[m.landmarks_68[30], :2]
    central = lambda idx: np.mean(np.linalg.norm(m.neutral[idx, :2] - nose, axis=1) < 40.0)  # noqa: E731
    assert abs(central(strata) - central(rand)) < 0.05 and central(far) < central(rand) - 0.1
    assert gap(strata).min() > gap(rand).min() and np.median(gap(strata)) > np.median(gap(rand))
    with pytest.raises(ValueError, match="sampling 'grid'"):
        model_points(m, "narrow_face", 100, "grid")
